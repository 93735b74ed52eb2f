"""Weight-free mel vocoding: invert the mel filterbank (non-negative least squares), then Griffin-Lim.

Phase recovery is the fast Griffin-Lim of Perraudin et al. (2013): alternate projections between
consistent spectrograms and the target magnitude, with momentum. The random initial phase comes from a
seeded generator, so decoding is deterministic.
"""

from __future__ import annotations

import torch


def mel_to_linear(mel: torch.Tensor, fb: torch.Tensor, iters: int = 30) -> torch.Tensor:
    """Mel magnitudes [..., n_mels, T] -> linear magnitudes [..., n_freqs, T] >= 0 with fb^T @ S ~= mel.

    Starts from the clamped pseudo-inverse and refines with multiplicative (Lee-Seung) updates, which keep
    S non-negative and decrease ||fb^T S - mel||^2. fb is [n_freqs, n_mels].
    """
    fb = fb.to(mel.dtype)
    pinv = torch.linalg.pinv(fb.T)                    # [n_freqs, n_mels]
    s = torch.clamp(pinv @ mel, min=0.0) + 1e-8
    gram = fb @ fb.T                                   # [n_freqs, n_freqs]
    target = fb @ mel                                  # [..., n_freqs, T]
    for _ in range(iters):
        s = s * target / (gram @ s + 1e-10)
    # frequencies no filter covers (e.g. empty low bands) stay at what the pseudo-inverse gave: zero
    return s


def griffin_lim(magnitude: torch.Tensor, n_fft: int, hop_length: int, win_length: int, window: torch.Tensor,
                n_iter: int = 64, momentum: float = 0.99, seed: int = 0) -> torch.Tensor:
    """Magnitudes [..., n_fft//2+1, T] -> waveform [..., (T-1)*hop] (centred STFT convention)."""
    shape = magnitude.shape
    mag = magnitude.reshape(-1, shape[-2], shape[-1])
    length = (shape[-1] - 1) * hop_length
    gen = torch.Generator(device="cpu").manual_seed(seed)
    phase = torch.rand(mag.shape, generator=gen).to(mag.device, mag.dtype) * (2 * torch.pi)
    angles = torch.polar(torch.ones_like(mag), phase)
    stft = dict(n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window, center=True)
    previous = torch.zeros_like(angles)
    for _ in range(n_iter):
        wav = torch.istft(mag * angles, length=length, **stft)
        rebuilt = torch.stft(wav, return_complex=True, pad_mode="reflect", **stft)
        angles = rebuilt - previous * (momentum / (1 + momentum))
        angles = angles / (angles.abs() + 1e-16)
        previous = rebuilt
    wav = torch.istft(mag * angles, length=length, **stft)
    return wav.reshape(shape[:-2] + wav.shape[-1:])
