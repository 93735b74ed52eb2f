"""The `dac` codec with small random configurations: shapes, chunking, stereo, the quantised path, strict
loading, and the codec swapped into a DiffRhythm recipe."""

from __future__ import annotations

import math

import pytest
import torch
from tiny_recipes import song_batch, song_conditions

from toolkit.codecs.dac import DACCodec
from toolkit.codecs.loading import WeightsMismatchError
from toolkit.protocols import StepContext
from toolkit.registry import CODECS

# the released rates and kernels (so the same reach, ~10 latent frames) with tiny widths: latent 4 * 16 = 64
TINY = {"encoder_dim": 4, "decoder_dim": 32, "n_codebooks": 3, "codebook_size": 16, "codebook_dim": 4}


def tiny(**kw) -> DACCodec:
    kw.setdefault("random_weights", True)
    return DACCodec(arch=kw.pop("arch", TINY), **kw)


def audio(channels: int, n: int, seed: int = 0, batch: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(batch, channels, n, generator=g)


@pytest.fixture(scope="module")
def codec16():
    return tiny(model="16khz", chunk_frames=48, overlap_frames=32)


def test_round_trip_shapes_frame_rate_and_determinism(codec16):
    codec = codec16
    assert (codec.sample_rate, codec.channels, codec.hop_length, codec.latent_dim) == (16000, 1, 320, 64)
    assert codec.frame_rate == 50.0 and codec.random_weights
    x = audio(1, 320 * 25 + 11)  # padded to 26 frames
    z = codec.encode(x)
    assert z.shape == (2, 26, 64) and torch.isfinite(z).all()
    y = codec.decode(z)
    # the 16 kHz decoder emits 8 samples fewer than T * hop; the codec pads to exactly T * hop
    assert y.shape == (2, 1, 26 * 320) and torch.isfinite(y).all()
    assert codec.encode(y).shape == z.shape
    assert torch.equal(codec.encode(x), z) and torch.equal(codec.decode(z), y)
    assert torch.equal(tiny(model="16khz", chunk_frames=48, overlap_frames=32).encode(x), z)
    assert not torch.allclose(tiny(model="16khz", seed=1).encode(x), z)
    big = CODECS.build({"type": "dac", "random_weights": True, "arch": TINY})  # 44.1 kHz rates
    assert (big.sample_rate, big.hop_length) == (44100, 512) and math.isclose(big.frame_rate, 86.1328125)


def test_chunked_equals_unchunked(codec16):
    codec = codec16  # 48-frame chunks, 16 frames dropped at each seam > the ~10-frame reach
    x = audio(1, 320 * 80)
    z = codec.encode(x)
    torch.testing.assert_close(z, codec.encode(x, chunked=False), rtol=0, atol=1e-6)
    y = codec.decode(z)
    yu = codec.decode(z, chunked=False)
    torch.testing.assert_close(y[..., :-320], yu[..., :-320], rtol=0, atol=1e-6)  # the last few samples: padding
    # seams without overlap are visible: the test can tell the two apart
    bare = tiny(model="16khz", chunk_frames=48, overlap_frames=0)
    assert (bare.encode(x) - bare.encode(x, chunked=False)).abs().max() > 1e-4


def test_stereo_codes_channels_separately():
    mono = tiny()
    stereo = tiny(channels=2)
    assert stereo.latent_dim == 2 * mono.latent_dim == 128
    x = audio(2, 512 * 12)
    z = stereo.encode(x)
    torch.testing.assert_close(z[..., :64], mono.encode(x[:, :1]), rtol=0, atol=1e-6)
    torch.testing.assert_close(z[..., 64:], mono.encode(x[:, 1:]), rtol=0, atol=1e-6)
    y = stereo.decode(z)
    assert y.shape == (2, 2, 512 * 12)
    torch.testing.assert_close(y[:, 1:], mono.decode(z[..., 64:]), rtol=0, atol=1e-6)


def test_quantised_path_is_the_rvq_of_the_continuous_latent():
    # random projections make no residual shrink, so with random weights only the plumbing is checkable
    cont = tiny()
    x = audio(1, 512 * 12)
    z = cont.encode(x)
    out = {}
    for n in (1, 3):
        q = tiny(quantize=True, n_quantizers=n)
        zq = q.encode(x)
        assert zq.shape == z.shape and torch.equal(q.encode(x), zq)
        expected = cont.model.quantizer(z.transpose(1, 2), n)[0].transpose(1, 2)
        torch.testing.assert_close(zq, expected, rtol=0, atol=1e-6)
        assert not torch.allclose(zq, z)
        out[n] = zq
    assert not torch.allclose(out[1], out[3])
    assert q.decode(out[3]).shape == (2, 1, 512 * 12)
    with pytest.raises(ValueError, match="n_quantizers must be in 1..3"):
        tiny(quantize=True, n_quantizers=4)


def test_bad_inputs_say_what_to_do():
    codec = tiny()
    with pytest.raises(ValueError, match="1-channel audio but got 2"):
        codec.encode(audio(2, 512))
    with pytest.raises(ValueError, match="resample"):
        codec.encode(audio(1, 512), sample_rate=16000)
    with pytest.raises(ValueError, match=r"\[batch, frames, 64\]"):
        codec.decode(torch.zeros(1, 5, 128))
    with pytest.raises(ValueError, match="random_weights=true"):
        DACCodec()
    with pytest.raises(ValueError, match="model=44khz / 24khz / 16khz"):
        DACCodec(random_weights=True, sample_rate=48000)
    with pytest.raises(ValueError, match="unknown DAC model"):
        DACCodec(model="8khz", random_weights=True)


def test_strict_loading_and_the_mismatch_report(tmp_path):
    source = tiny(seed=3)
    path = tmp_path / "weights_tiny.pth"
    # DAC's own file layout: {"state_dict": ..., "metadata": {"kwargs": ...}}
    kwargs = {"encoder_rates": [2, 4, 8, 8], "decoder_rates": [8, 8, 4, 2], "n_codebooks": 3, "sample_rate": 44100}
    torch.save({"state_dict": source.model.state_dict(), "metadata": {"kwargs": kwargs}}, path)
    loaded = DACCodec(arch=TINY, weights=str(path))
    x = audio(1, 512 * 6)
    assert torch.equal(loaded.encode(x), source.encode(x)) and not loaded.random_weights

    state = source.model.state_dict()
    state["encoder.block.0.renamed"] = state.pop("encoder.block.0.bias")
    torch.save({"state_dict": state, "metadata": {"kwargs": {**kwargs, "n_codebooks": 9}}}, path)
    with pytest.raises(WeightsMismatchError) as err:
        DACCodec(arch={**TINY, "n_codebooks": 2}, weights=str(path))
    e = err.value
    assert e.missing == ["encoder.block.0.bias"]
    assert "encoder.block.0.renamed" in e.unexpected
    assert any(k.startswith("quantizer.quantizers.2.") for k in e.unexpected)  # a third codebook in the file
    text = str(e)
    for needle in ("encoder.block.0.bias", "encoder.block.0.renamed", "'n_codebooks': 9", "pick the matching model="):
        assert needle in text, needle


RECIPE = {
    "recipe": "diffrhythm",
    "max_frames": 64,
    "codec": {"type": "mel", "sample_rate": 8000, "channels": 2, "n_fft": 256, "hop_length": 128, "n_mels": 16},
    "conditions": song_conditions(),
    "backbone": {"type": "dit_diffrhythm", "dim": 32, "depth": 2, "ff_mult": 2, "conv_layers": 1, "num_heads": 2},
    "sampler": {"type": "flow", "steps": 3, "cfg_strength": 2.0},
}


def test_codec_override_sizes_the_backbone_and_trains():
    from omegaconf import OmegaConf

    from toolkit.config import apply_overrides
    from toolkit.models.factory import build_recipe

    assert apply_overrides(OmegaConf.create(RECIPE), ["codec=dac"]).codec == "dac"
    overrides = ["codec.type=dac", "codec.random_weights=true", "codec.model=16khz", "codec.channels=2",
                 "codec.arch={encoder_dim: 2, decoder_dim: 16, n_codebooks: 2, codebook_size: 16, codebook_dim: 4}"]
    torch.manual_seed(0)
    recipe = build_recipe(apply_overrides(OmegaConf.create(RECIPE), overrides))
    assert type(recipe.codec).__name__ == "DACCodec"
    assert recipe.codec.latent_dim == recipe.transformer.latent_dim == 64  # 2 channels x 32
    assert recipe.frame_rate == 50.0
    b, t = 2, 24
    latent = recipe.codec.encode(audio(2, t * 320, batch=b))
    batch = {**song_batch(recipe, b, t), "latent": latent, "lens": torch.tensor([t, t - 5])}
    out = recipe.training_step(batch, StepContext(step=0, seed=0))
    out["loss"].backward()
    assert math.isfinite(out["loss"].item())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in recipe.transformer.parameters())
    with pytest.raises(ValueError, match="weights=PATH"):
        build_recipe(apply_overrides(OmegaConf.create(RECIPE), ["codec=dac"]))
