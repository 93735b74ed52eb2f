"""Adaptive layer norm for the output of a DiT: LayerNorm modulated by a conditioning vector."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class AdaLayerNormFinal(nn.Module):
    """LayerNorm(no affine, eps 1e-6)(x) * (1 + scale) + shift, (scale, shift) = Linear(SiLU(c)).

    The projection's output is chunked SCALE FIRST (DiffRhythm and F5-TTS agree). Key `linear`.
    """

    def __init__(self, dim: int, cond_dim: int):
        super().__init__()
        self.linear = nn.Linear(cond_dim, dim * 2)
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """x: [B, T, dim]; c: [B, cond_dim]."""
        scale, shift = self.linear(F.silu(c)).chunk(2, dim=-1)
        return self.norm(x) * (1 + scale[:, None, :]) + shift[:, None, :]
