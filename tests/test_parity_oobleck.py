"""Parity of the native Oobleck VAE (and the TorchScript paths) with stable-audio-tools' golden fixtures.

Tolerances are the ones golden/oobleck/README.txt suggests for a from-scratch fp32 implementation.
"""

from __future__ import annotations

import json

import pytest
import torch
from golden import golden_file, load_cases, load_golden_weights, select_cases

from toolkit.codecs.bottleneck import VAEBottleneck
from toolkit.codecs.loading import jit_load, load_strict
from toolkit.codecs.oobleck import OobleckCodec, codec_kwargs_from_stable_audio_config
from toolkit.codecs.oobleck_blocks import SnakeBeta, weight_norm_weight
from toolkit.codecs.oobleck_model import OobleckDecoder, OobleckEncoder, native_oobleck_state

SET = "oobleck"
NET = dict(atol=2e-4, rtol=1e-4)        # single-network cases
CHAINED = dict(atol=3e-3, rtol=1e-3)    # encoder -> sample -> decoder


@pytest.fixture(scope="module")
def cases():
    return load_cases(SET)


@pytest.fixture(scope="module")
def config():
    return json.loads(golden_file(SET, "config.json").read_text())


def codec_kwargs(config) -> dict:
    kwargs = codec_kwargs_from_stable_audio_config(config["stable_audio_tools_model_config"])
    # the plain constructor kwargs describe the same model
    assert kwargs["latent_dim"] == config["decoder"]["latent_dim"] == config["autoencoder"]["latent_dim"]
    assert kwargs["channels"] == config["autoencoder"]["io_channels"]
    return kwargs


@pytest.fixture(scope="module")
def codec(config):
    model = OobleckCodec(**codec_kwargs(config))
    load_strict(model, load_golden_weights(golden_file(SET, "state_dict.pt")), "golden Oobleck weights")
    assert model.hop_length == config["autoencoder"]["downsampling_ratio"]
    return model


def test_constructor_kwargs_are_upstream(config):
    """OobleckEncoder/Decoder take stable-audio-tools' kwargs, and the codec holds the same keys and shapes."""
    enc, dec = OobleckEncoder(**config["encoder"]), OobleckDecoder(**config["decoder"])
    model = OobleckCodec(**codec_kwargs(config))
    ours = {f"encoder.{k}": v.shape for k, v in enc.state_dict().items()}
    ours.update({f"decoder.{k}": v.shape for k, v in dec.state_dict().items()})
    theirs = {k: v.shape for k, v in load_golden_weights(golden_file(SET, "state_dict.pt")).items()}
    assert ours == theirs
    assert list(model.state_dict()) == list(theirs)


def test_encoder_forward(cases, codec):
    for name in select_cases(cases, "encoder_forward"):
        case = cases[name]
        with torch.no_grad():
            out = codec.encoder(case["inputs"]["audio"])
        torch.testing.assert_close(out, case["outputs"]["latents_pre_bottleneck"], **NET)


def test_decoder_forward(cases, codec):
    for name in select_cases(cases, "decoder_forward"):
        case = cases[name]
        out = codec.decode(case["inputs"]["latents"].transpose(1, 2), chunked=False)
        torch.testing.assert_close(out, case["outputs"]["audio"], **NET)


def test_bottleneck_encode(cases):
    for name in select_cases(cases, "bottleneck_encode"):
        case, want = cases[name], cases[name]["outputs"]
        latents, info = VAEBottleneck().encode(case["inputs"]["x"], noise=case["inputs"]["noise"], return_info=True)
        torch.testing.assert_close(latents, want["latents"], **NET)
        for key in ("mean", "scale", "stdev", "kl"):
            torch.testing.assert_close(info[key], want[key], **NET)
        # deterministic encoding is the mean
        torch.testing.assert_close(VAEBottleneck().encode(case["inputs"]["x"], sample=False), want["mean"])


def test_autoencoder_roundtrip(cases, codec):
    for name in select_cases(cases, "autoencoder_roundtrip"):
        case, want = cases[name], cases[name]["outputs"]
        audio, noise = case["inputs"]["audio"], case["inputs"]["noise"]
        with torch.no_grad():
            pre = codec.encoder(audio)
        torch.testing.assert_close(pre, want["pre_bottleneck_latents"], **NET)
        _, info = codec.bottleneck.encode(pre, noise=noise, return_info=True)
        torch.testing.assert_close(info["kl"], want["kl"], **CHAINED)
        for chunked in (False, True):  # the length fits one chunk: chunking must not change anything
            z = codec.encode(audio, noise=noise, chunked=chunked)
            torch.testing.assert_close(z.transpose(1, 2), want["latents"], **NET)
            torch.testing.assert_close(codec.decode(z, chunked=chunked), want["decoded"], **CHAINED)


def test_snake_beta(cases):
    for name in select_cases(cases, "snake_beta"):
        inputs = cases[name]["inputs"]
        act = SnakeBeta(inputs["alpha"].numel())
        act.load_state_dict({"alpha": inputs["alpha"], "beta": inputs["beta"]})
        with torch.no_grad():
            torch.testing.assert_close(act(inputs["x"]), cases[name]["outputs"]["y"], **NET)


def test_weight_norm(cases):
    for name in select_cases(cases, "weight_norm"):
        inputs, outputs = cases[name]["inputs"], cases[name]["outputs"]
        assert outputs, "weight_norm case without outputs"
        for key, want in outputs.items():
            layer = key[: -len(".weight")]
            got = weight_norm_weight(inputs[f"{layer}.weight_g"], inputs[f"{layer}.weight_v"])
            torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


def scripted_variants(case) -> list[str]:
    variants = sorted(k.split(".")[0] for k in case["outputs"] if k.endswith(".encode_export"))
    assert variants, "torchscript case names no variant"
    return variants


def scripted_file(variant: str):
    # README: 'wn' = vae_small_scripted.pt (weight_g/weight_v kept), others = vae_small_scripted_<variant>.pt
    return golden_file(SET, "vae_small_scripted.pt" if variant == "wn" else f"vae_small_scripted_{variant}.pt")


def test_torchscript_files_match_their_recorded_keys(cases):
    for name in select_cases(cases, "torchscript_vae"):
        outputs = cases[name]["outputs"]
        for variant in scripted_variants(cases[name]):
            module = jit_load(scripted_file(variant))
            got = [[k, list(v.shape)] for k, v in module.state_dict().items()]
            assert got == [[k, list(s)] for k, s in outputs[f"{variant}.state_dict_keys"]]


def test_torchscript_run_as_is(cases, config):
    for name in select_cases(cases, "torchscript_vae"):
        inputs, outputs = cases[name]["inputs"], cases[name]["outputs"]
        for variant in scripted_variants(cases[name]):
            codec = OobleckCodec(**codec_kwargs(config), scripted_path=str(scripted_file(variant)))
            assert not any(k.startswith(("encoder.", "decoder.")) for k in codec.state_dict())  # no native copy
            pre = codec.encode_pre_bottleneck(inputs["audio"])
            torch.testing.assert_close(pre, outputs[f"{variant}.encode_export"], **NET)
            # through the Codec protocol: mean encoding and (chunked) decoding
            mean = codec.encode(inputs["audio"], sample=False)
            torch.testing.assert_close(mean.transpose(1, 2), pre.chunk(2, dim=1)[0], **NET)
            out = codec.decode(inputs["latents"].transpose(1, 2))
            torch.testing.assert_close(out, outputs[f"{variant}.decode_export"], **NET)


def test_torchscript_converted_to_native(cases, config):
    for name in select_cases(cases, "torchscript_vae"):
        inputs, outputs = cases[name]["inputs"], cases[name]["outputs"]
        for variant in scripted_variants(cases[name]):
            codec = OobleckCodec(**codec_kwargs(config), weights=str(scripted_file(variant)))
            assert codec.scripted is None
            assert all(k.endswith(("weight_g", "weight_v", "bias", "alpha", "beta")) for k in codec.state_dict())
            with torch.no_grad():
                pre = codec.encoder(inputs["audio"])
            torch.testing.assert_close(pre, outputs[f"{variant}.encode_export"], **NET)
            out = codec.decode(inputs["latents"].transpose(1, 2), chunked=False)
            torch.testing.assert_close(out, outputs[f"{variant}.decode_export"], **NET)


def folded_state(outputs: dict) -> dict[str, torch.Tensor]:
    """The recorded folded weights: one nested dict under 'folded.state_dict' (as the public set stores them) or
    flattened 'folded.state_dict.<key>' entries; neither is a failure, never a skip."""
    prefix = "folded.state_dict."
    nested = outputs.get("folded.state_dict")
    flat = {k[len(prefix):]: v for k, v in outputs.items() if k.startswith(prefix)}
    state = dict(nested) if isinstance(nested, dict) else flat
    if not state:
        pytest.fail("the torchscript_vae case records no folded weights ('folded.state_dict')")
    return state


def test_folded_state_dict_into_native(cases, config):
    """The recorded folded weights (plain '...weight' keys) load into the native module and reproduce it."""
    for name in select_cases(cases, "torchscript_vae"):
        outputs = cases[name]["outputs"]
        folded = folded_state(outputs)
        assert any(k.endswith(".weight") for k in folded) and not any(k.endswith("weight_g") for k in folded)
        listed = {k for k, _ in outputs["folded.state_dict_keys"]}
        assert set(folded) == listed, "the folded weights and the file's key list disagree"
        codec = OobleckCodec(**codec_kwargs(config))
        load_strict(codec, native_oobleck_state(folded), "folded weights")
        with torch.no_grad():
            pre = codec.encoder(cases[name]["inputs"]["audio"])
            out = codec.decode(cases[name]["inputs"]["latents"].transpose(1, 2), chunked=False)
        torch.testing.assert_close(pre, outputs["folded.encode_export"], **NET)
        torch.testing.assert_close(out, outputs["folded.decode_export"], **NET)
