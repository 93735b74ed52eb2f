"""The VAE bottleneck of stable-audio-tools / DiffRhythm: mean||scale -> latents (sampled or the mean)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def vae_stdev(scale: torch.Tensor) -> torch.Tensor:
    return F.softplus(scale) + 1e-4


def vae_kl(mean: torch.Tensor, stdev: torch.Tensor) -> torch.Tensor:
    """(mean^2 + stdev^2 - log(stdev^2) - 1) summed over channels (dim 1), averaged over the rest."""
    var = stdev * stdev
    return (mean * mean + var - torch.log(var) - 1).sum(1).mean()


class VAEBottleneck(nn.Module):
    """Splits the encoder output [B, 2D, T] into mean and scale along dim 1 (first half = mean).

    `sample=True` returns mean + (softplus(scale) + 1e-4) * noise (noise ~ N(0, 1), or the given
    `noise`, or drawn from `generator`); `sample=False` returns the mean (deterministic encoding).
    No parameters, so no state-dict keys.
    """

    def encode(self, x: torch.Tensor, *, sample: bool = True, noise: torch.Tensor | None = None,
               generator: torch.Generator | None = None, return_info: bool = False):
        if x.shape[1] % 2:
            raise ValueError(f"VAE bottleneck input needs an even channel count (mean||scale), got {x.shape[1]}")
        mean, scale = x.chunk(2, dim=1)
        stdev = vae_stdev(scale)
        if sample:
            if noise is None:
                noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            latents = mean + stdev * noise
        else:
            latents = mean
        if not return_info:
            return latents
        return latents, {"mean": mean, "scale": scale, "stdev": stdev, "kl": vae_kl(mean, stdev)}

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z
