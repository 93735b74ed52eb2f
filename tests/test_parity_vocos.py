"""Parity of the native Vocos (features, backbone, ISTFT head) and the mel codec's Vocos path with the
golden fixtures of vocos 0.1.0. Tolerances are those golden/vocos/README.txt suggests."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from golden import golden_file, load_cases, load_golden_weights, select_cases

from toolkit.codecs.loading import load_strict
from toolkit.codecs.mel_features import LogMelFeatures
from toolkit.codecs.vocos import ISTFT, VOCOS_LOG_FLOOR, Vocos
from toolkit.registry import CODECS

SET = "vocos"
AUDIO = dict(atol=1e-5, rtol=0)
INTERMEDIATE = dict(atol=1e-4, rtol=0)
FEATURES = dict(atol=3e-4, rtol=0)
EXACTISH = dict(atol=1e-6, rtol=0)


@pytest.fixture(scope="module")
def cases():
    return load_cases(SET)


@pytest.fixture(scope="module")
def hparams():
    return yaml.safe_load(golden_file(SET, "config.yaml").read_text())


@pytest.fixture(scope="module")
def weights():
    return load_golden_weights(golden_file(SET, "state_dict.pt"))


@pytest.fixture(scope="module")
def vocos(weights):
    model = Vocos.from_hparams(golden_file(SET, "config.yaml"))
    return load_strict(model, weights, "golden Vocos weights").eval()


def test_config_json_matches_yaml(hparams):
    assert json.loads(golden_file(SET, "config.json").read_text())["hparams_yaml"] == hparams


def test_feature_extraction(cases, vocos, hparams):
    fe = hparams["feature_extractor"]["init_args"]
    for name in select_cases(cases, "feature_extraction"):
        inputs, want = cases[name]["inputs"], cases[name]["outputs"]
        # the standalone front end with Vocos' floor equals the one inside the vocoder
        standalone = LogMelFeatures(fe["sample_rate"], fe["n_fft"], fe["hop_length"], n_mels=fe["n_mels"],
                                    log_floor=VOCOS_LOG_FLOOR)
        for extractor in (vocos.feature_extractor, standalone):
            torch.testing.assert_close(extractor(inputs["audio"]), want["features"], **FEATURES)
            torch.testing.assert_close(extractor.mel_spec.mel_scale.fb, want["fb"], **EXACTISH)
            torch.testing.assert_close(extractor.mel_spec.spectrogram.window, want["window"], **EXACTISH)


def test_decode(cases, vocos):
    for name in select_cases(cases, "decode"):
        features, want = cases[name]["inputs"]["features"], cases[name]["outputs"]
        with torch.no_grad():
            hidden = vocos.backbone(features)
            torch.testing.assert_close(hidden, want["backbone_out"], **INTERMEDIATE)
            torch.testing.assert_close(vocos.head.out(hidden), want["head_linear_out"], **INTERMEDIATE)
            torch.testing.assert_close(vocos.decode(features), want["audio"], **AUDIO)


def test_copy_synthesis(cases, vocos):
    for name in select_cases(cases, "copy_synthesis"):
        with torch.no_grad():
            out = vocos(cases[name]["inputs"]["audio"])
        torch.testing.assert_close(out, cases[name]["outputs"]["audio"], **AUDIO)


def test_istft(cases, hparams):
    head = hparams["head"]["init_args"]
    for name in select_cases(cases, "istft"):
        spec = torch.view_as_complex(cases[name]["inputs"]["spec_real_imag"].contiguous())
        for padding in ("same", "center"):
            assert padding in cases[name]["outputs"], f"{name} records no '{padding}' output"
            got = ISTFT(head["n_fft"], head["hop_length"], head["n_fft"], padding)(spec)
            torch.testing.assert_close(got, cases[name]["outputs"][padding], **EXACTISH)


@pytest.mark.parametrize("file_name", ["pytorch_model.bin", "model.safetensors"])
def test_mel_codec_decodes_with_local_vocos(tmp_path, cases, weights, file_name):
    """The mel codec loads a Vocos directory (config.yaml + weights) and decodes exactly like Vocos."""
    (tmp_path / "config.yaml").write_text(golden_file(SET, "config.yaml").read_text())
    if file_name.endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in weights.items()}, str(tmp_path / file_name))
    else:
        torch.save(weights, tmp_path / file_name)
    codec = CODECS.build({"type": "mel", "vocoder": "vocos", "vocoder_path": str(tmp_path),
                          "latent_mean": 0.0, "latent_std": 1.0})
    for name in select_cases(cases, "decode"):
        features, want = cases[name]["inputs"]["features"], cases[name]["outputs"]["audio"]
        out = codec.decode(features.transpose(1, 2))          # [B, T, n_mels] -> [B, 1, T*hop]
        torch.testing.assert_close(out[:, 0], want, **AUDIO)
    # normalised latents decode to the same audio
    normed = CODECS.build({"type": "mel", "vocoder": "vocos", "vocoder_path": str(tmp_path),
                           "latent_mean": -2.0, "latent_std": 4.0})
    features = cases[select_cases(cases, "decode")[0]]["inputs"]["features"]
    torch.testing.assert_close(normed.decode((features.transpose(1, 2) + 2.0) / 4.0)[:, 0],
                               cases[select_cases(cases, "decode")[0]]["outputs"]["audio"], **AUDIO)


def test_vocos_strict_load_reports_problems(tmp_path, weights):
    (tmp_path / "config.yaml").write_text(golden_file(SET, "config.yaml").read_text())
    broken = dict(weights)
    broken.pop("head.out.bias")
    broken["backbone.embed.weight"] = broken["backbone.embed.weight"][:, :, :5]
    broken["extra.thing"] = torch.zeros(1)
    torch.save(broken, tmp_path / "pytorch_model.bin")
    with pytest.raises(RuntimeError) as err:
        Vocos.from_pretrained(tmp_path)
    message = str(err.value)
    assert "missing keys (in the model, not in the file) (1)" in message and "head.out.bias" in message
    assert "unexpected keys (in the file, not in the model) (1)" in message and "extra.thing" in message
    assert "wrong-shape keys (file shape vs model shape) (1)" in message and "backbone.embed.weight" in message


def test_mel_codec_rejects_contradicting_settings(tmp_path, weights, hparams):
    (tmp_path / "config.yaml").write_text(golden_file(SET, "config.yaml").read_text())
    torch.save(weights, tmp_path / "pytorch_model.bin")
    other = 2 * hparams["feature_extractor"]["init_args"]["hop_length"]
    with pytest.raises(ValueError, match=f"hop_length={other}"):
        CODECS.build({"type": "mel", "vocoder": "vocos", "vocoder_path": str(tmp_path), "hop_length": other})
