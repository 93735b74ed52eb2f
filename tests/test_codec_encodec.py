"""The `encodec` codec with small random configurations: shapes, chunking, normalisation, the quantised path,
strict loading, and the codec swapped into a DiffRhythm recipe."""

from __future__ import annotations

import math

import pytest
import torch
from tiny_recipes import song_batch, song_conditions

from toolkit.codecs.encodec import EncodecCodec
from toolkit.codecs.loading import WeightsMismatchError
from toolkit.protocols import StepContext
from toolkit.registry import CODECS

# hop 8; no LSTM, so the causal network's reach is finite and chunked == unchunked away from seams
TINY = {"n_filters": 4, "ratios": [4, 2], "lstm": 0, "dimension": 16, "bins": 64}


def tiny(**kw) -> EncodecCodec:
    kw.setdefault("random_weights", True)
    return EncodecCodec(arch=kw.pop("arch", TINY), **kw)


def audio(channels: int, n: int, seed: int = 0, batch: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(batch, channels, n, generator=g)


def test_round_trip_shapes_frame_rate_and_determinism():
    codec = CODECS.build({"type": "encodec", "random_weights": True, "arch": TINY})
    assert (codec.sample_rate, codec.channels, codec.hop_length, codec.latent_dim) == (24000, 1, 8, 16)
    assert codec.frame_rate == 3000.0 and codec.random_weights
    x = audio(1, 8 * 50 + 3)  # not a multiple of the hop: padded to 51 frames
    z = codec.encode(x)
    assert z.shape == (2, 51, 16) and torch.isfinite(z).all()
    y = codec.decode(z)
    assert y.shape == (2, 1, 51 * 8) and torch.isfinite(y).all()
    assert codec.encode(y).shape == z.shape  # encode(decode(z)) keeps the frame count
    assert torch.equal(codec.encode(x), z) and torch.equal(codec.decode(z), y)
    again = tiny()  # same seed -> same random model
    assert torch.equal(again.encode(x), z)
    other = tiny(seed=1)
    assert not torch.allclose(other.encode(x), z)
    assert not any(p.requires_grad for p in codec.parameters())


def test_chunked_equals_unchunked_without_lstm_and_differs_with_it():
    codec = tiny(chunk_frames=40, overlap_frames=32)  # margin 16 frames > the tiny net's reach (~9 frames)
    x = audio(1, 8 * 130)
    z, zu = codec.encode(x), codec.encode(x, chunked=False)
    torch.testing.assert_close(z, zu, rtol=0, atol=1e-6)
    torch.testing.assert_close(codec.decode(z), codec.decode(z, chunked=False), rtol=0, atol=1e-6)
    # with no overlap the seams are visible: the test can tell the two apart
    bare = tiny(chunk_frames=40, overlap_frames=0)
    assert (bare.encode(x) - bare.encode(x, chunked=False)).abs().max() > 1e-3
    # an LSTM's memory is unbounded: chunking changes the output slightly
    lstm = tiny(arch={**TINY, "lstm": 1}, chunk_frames=40, overlap_frames=32)
    diff = (lstm.encode(x) - lstm.encode(x, chunked=False)).abs().max()
    assert 0 < diff < 0.1 * lstm.encode(x).abs().max()


def test_48khz_normalisation_carries_the_loudness_in_an_extra_channel():
    codec = tiny(model="48khz", chunk_frames=30, overlap_frames=4)
    assert (codec.sample_rate, codec.channels, codec.latent_dim, codec.normalize) == (48000, 2, 17, True)
    x = audio(2, 8 * 60)
    z, z_quiet = codec.encode(x), codec.encode(0.5 * x)
    # the network sees RMS-normalised chunks: the embedding is level-independent, the scale channel is not
    torch.testing.assert_close(z_quiet[..., :16], z[..., :16], rtol=0, atol=1e-4)
    torch.testing.assert_close(z_quiet[..., 16], z[..., 16] + math.log(0.5), rtol=0, atol=1e-5)
    first = x[:, :, :8 * 30].mean(1).pow(2).mean(-1).sqrt()  # the first chunk's scale (mono mix RMS)
    torch.testing.assert_close(z[:, 0, 16], first.log(), rtol=0, atol=1e-5)
    torch.testing.assert_close(codec.decode(z_quiet), 0.5 * codec.decode(z), rtol=1e-4, atol=1e-6)
    assert codec.decode(z).shape == (2, 2, 8 * 60)
    plain = tiny(model="48khz", normalize=False)
    assert plain.latent_dim == 16


def test_quantised_path_stays_continuous_and_improves_with_bandwidth():
    # 8 kHz, hop 8 -> 1000 frames/s, 6 bits per codebook = 6 kbps per codebook: 24 kbps = 4 codebooks
    kw = {"sample_rate": 8000}
    cont = tiny(**kw)
    x = audio(1, 8 * 40)
    z = cont.encode(x)
    err = {}
    for bw in (6.0, 24.0):
        q = tiny(quantize=True, bandwidth=bw, **kw)
        zq = q.encode(x)
        assert zq.shape == z.shape and zq.dtype == torch.float32
        assert torch.equal(q.encode(x), zq)
        err[bw] = (zq - z).pow(2).mean().item()
    assert 0 < err[24.0] < err[6.0]
    assert q.decode(zq).shape == (2, 1, 8 * 40)
    with pytest.raises(ValueError, match="bandwidths"):
        EncodecCodec(random_weights=True, quantize=True, bandwidth=5.0)


def test_bad_inputs_say_what_to_do():
    codec = tiny()
    with pytest.raises(ValueError, match="1-channel audio but got 2"):
        codec.encode(audio(2, 80))
    with pytest.raises(ValueError, match="resample"):
        codec.encode(audio(1, 80), sample_rate=44100)
    with pytest.raises(ValueError, match=r"\[batch, frames, 16\]"):
        codec.decode(torch.zeros(1, 5, 17))
    with pytest.raises(ValueError, match="random_weights=true"):
        EncodecCodec()
    with pytest.raises(ValueError, match="24khz: 24000 Hz mono"):
        EncodecCodec(random_weights=True, sample_rate=44100)
    with pytest.raises(ValueError, match="unknown EnCodec model"):
        EncodecCodec(model="32khz", random_weights=True)


def test_released_layouts_match_the_encodec_package():
    """The published checkpoints are state dicts of encodec_model_24khz / _48khz: same keys and shapes."""
    from encodec import EncodecModel

    for model, build in (("24khz", EncodecModel.encodec_model_24khz), ("48khz", EncodecModel.encodec_model_48khz)):
        ours = EncodecCodec(model=model, random_weights=True).model.state_dict()
        theirs = build(pretrained=False).state_dict()
        assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in theirs.items()}


def test_strict_loading_and_the_mismatch_report(tmp_path):
    source = tiny(seed=3)
    path = tmp_path / "encodec_tiny.th"
    torch.save(source.model.state_dict(), path)
    loaded = EncodecCodec(arch=TINY, weights=str(path))
    assert not loaded.random_weights
    x = audio(1, 8 * 20)
    assert torch.equal(loaded.encode(x), source.encode(x))

    state = source.model.state_dict()
    state["encoder.model.0.conv.conv.renamed"] = state.pop("encoder.model.0.conv.conv.bias")
    state["decoder.model.0.conv.conv.bias"] = torch.zeros(3)
    torch.save(state, path)
    with pytest.raises(WeightsMismatchError) as err:
        EncodecCodec(arch=TINY, weights=str(path))
    e = err.value
    assert e.missing == ["encoder.model.0.conv.conv.bias"]
    assert e.unexpected == ["encoder.model.0.conv.conv.renamed"]
    assert [k for k, _, _ in e.wrong_shape] == ["decoder.model.0.conv.conv.bias"]
    text = str(e)
    for needle in ("encoder.model.0.conv.conv.bias", "encoder.model.0.conv.conv.renamed",
                   "decoder.model.0.conv.conv.bias", "encodec_24khz-d7cc33bc.th"):
        assert needle in text, needle


# -- the codec swapped into a DiffRhythm recipe --------------------------------------------------------------------
RECIPE = {
    "recipe": "diffrhythm",
    "max_frames": 64,
    "codec": {"type": "mel", "sample_rate": 8000, "channels": 2, "n_fft": 256, "hop_length": 128, "n_mels": 16},
    "conditions": song_conditions(),
    "backbone": {"type": "dit_diffrhythm", "dim": 32, "depth": 2, "ff_mult": 2, "conv_layers": 1, "num_heads": 2},
    "sampler": {"type": "flow", "steps": 3, "cfg_strength": 2.0},
}
RECIPE_ARCH = "{n_filters: 4, ratios: [4, 4], lstm: 0, dimension: 24, bins: 64}"


def recipe_step(overrides: list[str]):
    from omegaconf import OmegaConf

    from toolkit.config import apply_overrides
    from toolkit.models.factory import build_recipe

    torch.manual_seed(0)
    recipe = build_recipe(apply_overrides(OmegaConf.create(RECIPE), overrides))
    codec = recipe.codec
    b, t = 2, 30
    latent = codec.encode(audio(codec.channels, t * codec.hop_length, batch=b))
    batch = {**song_batch(recipe, b, t), "latent": latent, "lens": torch.tensor([t, t - 5])}
    out = recipe.training_step(batch, StepContext(step=0, seed=0))
    out["loss"].backward()
    assert math.isfinite(out["loss"].item())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in recipe.transformer.parameters())
    return recipe


@pytest.mark.parametrize("model, latent_dim", [("24khz", 24), ("48khz", 25)])
def test_codec_override_sizes_the_backbone_and_trains(model, latent_dim):
    recipe = recipe_step(["codec.type=encodec", "codec.random_weights=true", f"codec.model={model}",
                          f"codec.arch={RECIPE_ARCH}"])
    assert type(recipe.codec).__name__ == "EncodecCodec"
    assert recipe.codec.latent_dim == recipe.transformer.latent_dim == latent_dim
    assert recipe.frame_rate == recipe.codec.sample_rate / 16


def test_bare_override_asks_for_weights():
    from omegaconf import OmegaConf

    from toolkit.config import apply_overrides
    from toolkit.models.factory import build_recipe

    cfg = apply_overrides(OmegaConf.create(RECIPE), ["codec=encodec"])
    assert cfg.codec == "encodec"
    with pytest.raises(ValueError, match="weights=PATH"):
        build_recipe(cfg)


def test_the_codec_evaluation_reads_the_random_weights_flag(tmp_path):
    from toolkit.audio import save_audio
    from toolkit.eval.codec_eval import evaluate_codec

    save_audio(tmp_path / "clip.wav", audio(1, 4800, batch=1)[0], 24000)
    row = evaluate_codec(tiny(), [tmp_path / "clip.wav"], "encodec-tiny", log=lambda *_: None)
    assert row["random_weights"] and row["label"] == "encodec-tiny (random weights)"
    assert row["si_sdr"] is None and row["encode_rtf"] > 0 and row["files"][0]["frames"] == 600
