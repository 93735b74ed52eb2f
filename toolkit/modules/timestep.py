"""Sinusoidal embedding of a scalar in [0, 1] (flow time, start time, duration) followed by an MLP."""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_embedding(t: torch.Tensor, dim: int = 256, scale: float = 1000.0) -> torch.Tensor:
    """[B] -> [B, dim] as cat(sin(a), cos(a)), a_k = (scale * t) * exp(-k * ln(10000) / (dim/2 - 1)).

    The float32 op order is part of the numerics (arguments reach ~1000 rad, so one ulp of a frequency
    moves the result by ~1e-5): the exponent `k * -ln(10000)/(half-1)` is formed in float32, and its exp
    is evaluated in float64 and rounded, i.e. the correctly rounded float32 exp (SIMD float32 exp
    kernels differ by an ulp between torch builds); `scale * t` is formed in t's dtype first, then
    multiplied by the frequencies (which promotes fp16 t to float32).
    """
    half = dim // 2
    step = math.log(10000) / (half - 1)
    exponent = torch.arange(half, device=t.device, dtype=torch.float32) * -step
    freqs = torch.exp(exponent.double()).float()
    args = (scale * t[:, None]) * freqs[None, :]
    return torch.cat((args.sin(), args.cos()), dim=-1)


class TimestepEmbedding(nn.Module):
    """Sinusoid (freq_dim) -> Linear -> SiLU -> Linear (dim); keys `time_mlp.0`, `time_mlp.2`."""

    def __init__(self, dim: int, freq_dim: int = 256, scale: float = 1000.0):
        super().__init__()
        self.freq_dim = freq_dim
        self.scale = scale
        self.time_mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """t: [B] (any float dtype) -> [B, dim] in the MLP's dtype.

        The sinusoid is computed from t as given, then cast to the MLP's weights. A bf16 model should be
        handed fp32 times: bf16 keeps 8 significant bits, so t = 0.7948 becomes 0.7930, which moves the
        1000 * t arguments by ~2 rad (measured: 7 % of the released DiT's output, docs/performance.md);
        an fp16 model handed fp16 times (upstream's fp16 inference) computes exactly as before.
        """
        h = sinusoidal_embedding(t, self.freq_dim, self.scale).to(self.time_mlp[0].weight.dtype)
        return self.time_mlp(h)
