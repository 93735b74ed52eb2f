"""The mel codec: F5-TTS's log-mel numerics, latent layout and normalisation, Griffin-Lim round trips."""

from __future__ import annotations

import json

import pytest
import torch
from golden import golden_file, load_cases, select_cases

from toolkit.codecs.mel import MelCodec
from toolkit.codecs.mel_features import LogMelFeatures
from toolkit.registry import CODECS


def tones(sample_rate: int, seconds: float, freqs: list[float], channels: int) -> torch.Tensor:
    t = torch.arange(int(sample_rate * seconds)) / sample_rate
    x = sum(torch.sin(2 * torch.pi * f * t) for f in freqs) / len(freqs) * 0.5
    x = x.expand(1, channels, -1).clone()
    for c in range(1, channels):
        x[:, c] *= 0.5 ** c
    return x


def mel_error(codec: MelCodec, ours: torch.Tensor, reference: torch.Tensor) -> float:
    """Relative L1 distance between mel magnitudes (phase-blind), edges excluded."""
    a, b = codec.log_mel(ours).exp()[..., 2:-2], codec.log_mel(reference).exp()[..., 2:-2]
    return float((a - b).abs().sum() / b.abs().sum())


def test_front_end_matches_f5tts_golden_mels():
    cases = load_cases("f5tts")
    mel = json.loads(golden_file("f5tts", "config.json").read_text())["cfm"]["mel_spec_kwargs"]
    assert mel["mel_spec_type"] == "vocos"
    settings = dict(sample_rate=mel["target_sample_rate"], n_fft=mel["n_fft"], hop_length=mel["hop_length"],
                    win_length=mel["win_length"], n_mels=mel["n_mel_channels"])
    for name in select_cases(cases, "mel_spec"):
        wav, want = cases[name]["inputs"]["wav"], cases[name]["outputs"]
        features = LogMelFeatures(**settings, log_floor=1e-5)
        torch.testing.assert_close(features(wav), want["mel"], atol=4e-4, rtol=0)
        torch.testing.assert_close(features.mel_spec.mel_scale.fb, want["fb"], atol=1e-6, rtol=0)
        torch.testing.assert_close(features.mel_spec.spectrogram.window, want["window"], atol=1e-6, rtol=0)
        # the codec (raw latents) gives the same frames
        codec = MelCodec(**settings, latent_mean=0.0, latent_std=1.0)
        torch.testing.assert_close(codec.encode(wav[:, None]).transpose(1, 2), want["mel"], atol=4e-4, rtol=0)


def test_log_floor_is_a_parameter():
    silence = torch.zeros(1, 1, 2048)
    assert torch.allclose(MelCodec(log_floor=1e-7, latent_mean=0, latent_std=1).encode(silence),
                          torch.tensor(1e-7).log())
    assert torch.allclose(MelCodec(latent_mean=0, latent_std=1).encode(silence), torch.tensor(1e-5).log())


def test_stereo_layout_and_normalisation():
    codec = MelCodec(sample_rate=16000, channels=2, n_fft=512, hop_length=128, n_mels=40,
                     latent_mean=-3.0, latent_std=2.0)
    assert codec.latent_dim == 80 and codec.frame_rate == 125.0
    wav = torch.randn(3, 2, 1000) * 0.1
    wav[1, 1] = 0.0  # item 1: silent right channel
    z = codec.encode(wav)
    assert z.shape == (3, 1000 // 128 + 1, 80)
    raw = codec.log_mel(wav)  # [B, C, M, T]
    torch.testing.assert_close(z[..., :40], (raw[:, 0].transpose(1, 2) + 3.0) / 2.0)  # channel 0 first
    torch.testing.assert_close(z[..., 40:], (raw[:, 1].transpose(1, 2) + 3.0) / 2.0)
    assert torch.allclose(z[1, :, 40:], (torch.tensor(1e-5).log() + 3.0) / 2.0)
    torch.testing.assert_close(codec.latents_to_log_mel(z), raw)
    assert codec.decode(z).shape == (3, 2, z.shape[1] * 128)


@pytest.mark.parametrize("setting", ["tone_24k_mono", "chord_44k_stereo"])
def test_griffin_lim_round_trip(setting):
    if setting == "tone_24k_mono":
        codec, freqs = CODECS.build({"type": "mel", "griffin_lim_iters": 32}), [440.0]
    else:
        codec = CODECS.build({"type": "mel", "sample_rate": 44100, "channels": 2, "n_fft": 2048,
                              "hop_length": 512, "n_mels": 128, "griffin_lim_iters": 32})
        freqs = [261.63, 329.63, 392.0]
    wav = tones(codec.sample_rate, 0.5, freqs, codec.channels)
    out = codec.decode(codec.encode(wav))
    assert out.shape[:2] == wav.shape[:2] and out.shape[-1] >= wav.shape[-1]
    out = out[..., : wav.shape[-1]]
    error = mel_error(codec, out, wav)
    assert error < 0.2, error
    assert mel_error(codec, torch.randn_like(wav) * wav.std(), wav) > 1.0  # the measure tells noise apart
    # the strongest partials are the ones played, and the channel balance survives
    spectrum = torch.fft.rfft(out[0, 0]).abs()
    bin_hz = codec.sample_rate / out.shape[-1]
    peaks = sorted(spectrum.topk(len(freqs) * 3).indices.tolist())
    for f in freqs:
        stft_bin = codec.sample_rate / codec.features.n_fft  # the resolution the mels were taken at
        assert any(abs(p * bin_hz - f) <= stft_bin for p in peaks), (f, [p * bin_hz for p in peaks])
    rms = out.pow(2).mean(-1).sqrt()[0]
    want = wav.pow(2).mean(-1).sqrt()[0]
    torch.testing.assert_close(rms, want, rtol=0.1, atol=0)
    # deterministic
    torch.testing.assert_close(codec.decode(codec.encode(wav)), codec.decode(codec.encode(wav)))


def test_bad_settings_are_explained():
    with pytest.raises(ValueError, match="griffin_lim, vocos"):
        MelCodec(vocoder="hifigan")
    with pytest.raises(ValueError, match="vocoder_path"):
        MelCodec(vocoder="vocos")
    with pytest.raises(ValueError, match="latent_std"):
        MelCodec(latent_std=0)
    with pytest.raises(ValueError, match="expected audio"):
        MelCodec(channels=2).encode(torch.zeros(1, 1, 100))
