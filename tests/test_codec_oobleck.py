"""The oobleck codec's loading paths, error messages and Codec-protocol behaviour (tiny configs)."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from golden import golden_file, load_golden_weights
from torch import nn

from toolkit.codecs.loading import WeightsMismatchError
from toolkit.codecs.oobleck import OobleckCodec, codec_kwargs_from_stable_audio_config
from toolkit.codecs.oobleck_blocks import weight_norm_weight
from toolkit.codecs.oobleck_model import infer_oobleck_config, native_oobleck_state
from toolkit.registry import CODECS


@pytest.fixture(scope="module")
def kwargs():
    config = json.loads(golden_file("oobleck", "config.json").read_text())
    return codec_kwargs_from_stable_audio_config(config["stable_audio_tools_model_config"])


@pytest.fixture(scope="module")
def weights():
    return load_golden_weights(golden_file("oobleck", "state_dict.pt"))


def test_infer_config_from_weights(kwargs, weights):
    found = infer_oobleck_config(weights)
    for key in ("channels", "latent_dim", "c_mults", "strides", "use_snake"):
        assert found[key] == kwargs[key], key
    assert found["base_channels"] == kwargs["base_channels"] and found["encoder_latent_dim"] == 2 * kwargs["latent_dim"]


@pytest.mark.parametrize("layout", ["prefixed_checkpoint", "safetensors", "folded"])
def test_weights_files_in_other_layouts_load(tmp_path, kwargs, weights, layout):
    reference = OobleckCodec(**kwargs)
    reference.load_state_dict(weights)
    if layout == "prefixed_checkpoint":  # a stable-audio-tools training checkpoint
        path = tmp_path / "model.ckpt"
        torch.save({"state_dict": {f"pretransform.model.{k}": v for k, v in weights.items()}, "step": 3}, path)
    elif layout == "safetensors":
        from safetensors.torch import save_file

        path = tmp_path / "vae.safetensors"
        save_file(dict(weights), str(path))
    else:
        path = tmp_path / "folded.pt"
        folded = {}
        for key, value in weights.items():
            if key.endswith("weight_v"):
                g = weights[key.replace("weight_v", "weight_g")]
                folded[key.replace("weight_v", "weight")] = weight_norm_weight(g, value)
            elif not key.endswith("weight_g"):
                folded[key] = value
        torch.save(folded, path)
    codec = OobleckCodec(**kwargs, weights=str(path))
    z = torch.randn(1, 5, kwargs["latent_dim"])
    torch.testing.assert_close(codec.decode(z), reference.decode(z), atol=1e-5, rtol=1e-5)


def test_mismatched_weights_are_reported(tmp_path, kwargs, weights):
    path = tmp_path / "vae.pt"
    state = dict(weights)
    state.pop("decoder.layers.0.bias")
    state["decoder.extra"] = torch.zeros(1)
    torch.save(state, path)
    with pytest.raises(WeightsMismatchError) as err:
        OobleckCodec(**kwargs, weights=str(path))
    assert "missing keys (in the model, not in the file) (1)" in str(err.value)
    assert "decoder.layers.0.bias" in str(err.value)
    assert "unexpected keys (in the file, not in the model) (1)" in str(err.value) and "decoder.extra" in str(err.value)
    # a wrong architecture: wrong shapes are listed and the file's own architecture is suggested
    torch.save(weights, path)
    with pytest.raises(WeightsMismatchError) as err:
        OobleckCodec(**{**kwargs, "base_channels": 4}, weights=str(path))
    assert "wrong-shape keys" in str(err.value) and "'base_channels': 8" in str(err.value)


def test_scripted_file_without_export_methods_is_rejected(tmp_path, kwargs):
    class Plain(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2

    path = tmp_path / "plain.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(Plain()).save(str(path))
    with pytest.raises(ValueError, match="lacks encode_export, decode_export"):
        OobleckCodec(**kwargs, scripted_path=str(path))
    plain = tmp_path / "state.pt"
    torch.save({"a": torch.zeros(1)}, plain)
    with pytest.raises(ValueError, match="not a TorchScript archive"):
        OobleckCodec(**kwargs, scripted_path=str(plain))
    with pytest.raises(FileNotFoundError):
        OobleckCodec(**kwargs, scripted_path=str(tmp_path / "absent.pt"))
    with pytest.raises(ValueError, match="either"):
        OobleckCodec(**kwargs, scripted_path=str(path), weights=str(plain))


def test_scripted_geometry_is_checked(kwargs):
    path = str(golden_file("oobleck", "vae_small_scripted.pt"))
    with pytest.raises(ValueError, match="latent_dim"):
        OobleckCodec(**{**kwargs, "latent_dim": kwargs["latent_dim"] * 2}, scripted_path=path)
    codec = CODECS.build({"type": "oobleck", **kwargs, "scripted_path": path})
    assert codec.scripted is not None and codec.latent_dim == kwargs["latent_dim"]


def test_scripted_native_state_dict_is_convertible(kwargs):
    from toolkit.codecs.scripted_vae import ScriptedVAE

    for name in ("vae_small_scripted.pt", "vae_small_scripted_folded.pt"):
        state = ScriptedVAE(golden_file("oobleck", name)).native_state_dict()
        assert set(state) == set(OobleckCodec(**kwargs).state_dict())


def test_encode_pads_samples_and_samples_or_takes_mean(kwargs, weights):
    codec = OobleckCodec(**kwargs)
    codec.load_state_dict(weights)
    hop = codec.hop_length
    wav = torch.randn(2, kwargs["channels"], 3 * hop + 5)
    mean = codec.encode(wav, sample=False)
    assert mean.shape == (2, 4, kwargs["latent_dim"])
    padded = torch.nn.functional.pad(wav, (0, hop - 5))
    torch.testing.assert_close(mean, codec.encode(padded, sample=False))
    a = codec.encode(wav, generator=torch.Generator().manual_seed(1))
    b = codec.encode(wav, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, mean)
    assert codec.decode(mean).shape == (2, kwargs["channels"], 4 * hop)
    with pytest.raises(ValueError, match="expected audio"):
        codec.encode(torch.randn(1, 3, hop))
    with pytest.raises(ValueError, match="expected latents"):
        codec.decode(torch.randn(1, 4, kwargs["latent_dim"] + 1))


def test_native_state_handles_plain_keys(weights):
    assert native_oobleck_state(weights).keys() == weights.keys()


def test_half_precision_latents_are_cast(kwargs, weights):
    codec = OobleckCodec(**kwargs)
    codec.load_state_dict(weights)
    z = torch.randn(1, 6, kwargs["latent_dim"])
    torch.testing.assert_close(codec.decode(z.half()), codec.decode(z.half().float()))
