"""ConvNeXt-V2 block over a [B, T, C] sequence, with global response normalisation over time."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class GRN(nn.Module):
    """Global response normalisation; the L2 norm runs over the TIME axis (dim 1) of [B, T, C].

    y = gamma * (x * Nx) + beta + x with Nx = ||x||_time / (mean_C ||x||_time + 1e-6).
    gamma and beta start at zero, so a fresh block is the identity here.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gx = torch.linalg.vector_norm(x, ord=2, dim=1, keepdim=True)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        return self.gamma * (x * nx) + self.beta + x


class ConvNeXtV2Block(nn.Module):
    """x + pwconv2(GRN(GELU(pwconv1(LayerNorm(dwconv_k7(x)))))) on [B, T, dim]."""

    def __init__(self, dim: int, hidden_dim: int, kernel_size: int = 7, dilation: int = 1):
        super().__init__()
        padding = (dilation * (kernel_size - 1)) // 2
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=padding, groups=dim, dilation=dilation)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, hidden_dim)
        self.grn = GRN(hidden_dim)
        self.pwconv2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dwconv(x.transpose(1, 2)).transpose(1, 2)
        h = F.gelu(self.pwconv1(self.norm(h)))
        return x + self.pwconv2(self.grn(h))
