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


class AdaLayerNormZero(nn.Module):
    """Per-block AdaLN-Zero of F5-TTS-style DiT blocks: Linear(SiLU(c)) -> 6 modulation vectors.

    forward(x, c) -> (norm(x) * (1 + scale_msa) + shift_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp);
    the chunk order is shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp. Key `linear`.
    """

    def __init__(self, dim: int, cond_dim: int | None = None):
        super().__init__()
        self.linear = nn.Linear(cond_dim or dim, dim * 6)
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)

    def forward(self, x: torch.Tensor, c: torch.Tensor):
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.linear(F.silu(c)).chunk(6, dim=-1)
        x = self.norm(x) * (1 + scale_msa[:, None, :]) + shift_msa[:, None, :]
        return x, gate_msa, shift_mlp, scale_mlp, gate_mlp
