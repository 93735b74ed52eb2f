"""Convolutional position embedding: two grouped wide convolutions with Mish, over [B, T, dim]."""

from __future__ import annotations

import torch
from torch import nn


class ConvPositionEmbedding(nn.Module):
    """Conv1d(k, groups) -> Mish -> Conv1d(k, groups) -> Mish; keys `conv1d.0`, `conv1d.2`.

    Returns only the embedding (callers add the residual). With a [B, T] bool `mask` (F5-TTS),
    padded frames are zeroed on the input and after each convolution, so they never leak in.
    """

    def __init__(self, dim: int, kernel_size: int = 31, groups: int = 16):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.conv1d = nn.Sequential(
            nn.Conv1d(dim, dim, kernel_size, groups=groups, padding=kernel_size // 2),
            nn.Mish(),
            nn.Conv1d(dim, dim, kernel_size, groups=groups, padding=kernel_size // 2),
            nn.Mish(),
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None and x.dtype == torch.bfloat16:
            return self._bf16_channels_last(x)
        if mask is None:
            return self.conv1d(x.transpose(1, 2)).transpose(1, 2)
        keep = mask[:, None, :]
        h = x.transpose(1, 2).masked_fill(~keep, 0.0)
        for layer in self.conv1d:
            h = layer(h)
            if isinstance(layer, nn.Conv1d):
                h = h.masked_fill(~keep, 0.0)
        return h.transpose(1, 2)

    def _bf16_channels_last(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, C] is the channels-last memory of [B, C, 1, T]: oneDNN convolves it without reordering.

        3x faster in bf16 at the released DiT's size (2048 channels, 16 groups, k31) on an AMX Xeon; in fp32
        the channel-first path was faster there, so only bf16 takes this one (same ops, same layers).
        """
        h = x.transpose(1, 2).unsqueeze(2)
        for layer in self.conv1d:
            if isinstance(layer, nn.Conv1d):
                weight = layer.weight.unsqueeze(2).contiguous(memory_format=torch.channels_last)
                h = nn.functional.conv2d(h, weight, layer.bias, 1, (0, layer.padding[0]), 1, layer.groups)
            else:
                h = layer(h)
        return h.squeeze(2).transpose(1, 2)
