"""Log-mel features with torchaudio's MelSpectrogram numerics (Vocos / F5-TTS front end), in plain torch.

|STFT| (power 1, periodic Hann of win_length zero-padded to n_fft, reflect padding when `center`) ->
HTK mel filterbank (norm None, f_min..f_max, frequencies linspace(0, sr//2, n_fft//2+1)) ->
log(clip(x, min=log_floor)). F5-TTS uses log_floor 1e-5; Vocos' own feature extractor 1e-7.
Submodule and buffer names follow torchaudio (`mel_spec.spectrogram.window`, `mel_spec.mel_scale.fb`)
so Vocos checkpoints, which hold those buffers, load strictly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def hz_to_mel_htk(f: float) -> float:
    return 2595.0 * math.log10(1.0 + f / 700.0)


def htk_mel_filterbank(n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int) -> torch.Tensor:
    """[n_freqs, n_mels] triangular HTK mel filters without area normalisation (torchaudio's melscale_fbanks)."""
    all_freqs = torch.linspace(0, sample_rate // 2, n_freqs)
    m_pts = torch.linspace(hz_to_mel_htk(f_min), hz_to_mel_htk(f_max), n_mels + 2)
    f_pts = 700.0 * (10 ** (m_pts / 2595.0) - 1.0)
    f_diff = f_pts[1:] - f_pts[:-1]                      # [n_mels + 1]
    slopes = f_pts.unsqueeze(0) - all_freqs.unsqueeze(1)  # [n_freqs, n_mels + 2]
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return torch.clamp(torch.minimum(down, up), min=0.0)


class Spectrogram(nn.Module):
    """|STFT|^power of [..., N] -> [..., n_fft//2+1, frames]."""

    def __init__(self, n_fft: int, hop_length: int, win_length: int, center: bool = True, power: float = 1.0):
        super().__init__()
        self.n_fft, self.hop_length, self.win_length = n_fft, hop_length, win_length
        self.center, self.power = center, power
        self.register_buffer("window", torch.hann_window(win_length, periodic=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        if self.center:
            x = F.pad(x.unsqueeze(1), (self.n_fft // 2, self.n_fft // 2), mode="reflect").squeeze(1)
        spec = torch.stft(x, self.n_fft, self.hop_length, self.win_length, self.window, center=False,
                          normalized=False, onesided=True, return_complex=True)
        mag = spec.abs() if self.power == 1.0 else spec.abs().pow(self.power)
        return mag.reshape(shape[:-1] + mag.shape[-2:])


class MelScale(nn.Module):
    """[..., n_freqs, frames] -> [..., n_mels, frames] through the `fb` buffer [n_freqs, n_mels]."""

    def __init__(self, n_mels: int, sample_rate: int, f_min: float, f_max: float, n_freqs: int):
        super().__init__()
        self.register_buffer("fb", htk_mel_filterbank(n_freqs, f_min, f_max, n_mels, sample_rate))

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        return torch.matmul(spec.transpose(-1, -2), self.fb).transpose(-1, -2)


class MelSpectrogram(nn.Module):
    def __init__(self, sample_rate: int, n_fft: int, hop_length: int, win_length: int, n_mels: int,
                 f_min: float, f_max: float, center: bool, power: float):
        super().__init__()
        self.spectrogram = Spectrogram(n_fft, hop_length, win_length, center, power)
        self.mel_scale = MelScale(n_mels, sample_rate, f_min, f_max, n_fft // 2 + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mel_scale(self.spectrogram(x))


class LogMelFeatures(nn.Module):
    """Audio [..., N] -> log-mel [..., n_mels, N//hop + 1] (center) with a configurable log floor."""

    def __init__(self, sample_rate: int = 24000, n_fft: int = 1024, hop_length: int = 256,
                 win_length: int | None = None, n_mels: int = 100, f_min: float = 0.0, f_max: float | None = None,
                 center: bool = True, power: float = 1.0, log_floor: float = 1e-5):
        super().__init__()
        win_length = win_length or n_fft
        if win_length > n_fft:
            raise ValueError(f"win_length {win_length} must not exceed n_fft {n_fft}")
        self.sample_rate, self.n_fft, self.hop_length, self.n_mels = sample_rate, n_fft, hop_length, n_mels
        self.log_floor = float(log_floor)
        self.mel_spec = MelSpectrogram(sample_rate, n_fft, hop_length, win_length, n_mels, f_min,
                                       float(f_max if f_max is not None else sample_rate / 2), center, power)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return torch.log(torch.clamp(self.mel_spec(audio), min=self.log_floor))
