"""Per-frame input projection of a DiT: Linear over concatenated features + conv position embedding."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .conv_position import ConvPositionEmbedding


class ConcatInputEmbedding(nn.Module):
    """h = proj(cat(parts, -1)); return conv_pos_embed(h) + h. Keys `proj`, `conv_pos_embed.conv1d.*`.

    The order of `parts` is part of the checkpoint format (the projection's input columns).
    """

    def __init__(self, in_dim: int, dim: int, kernel_size: int = 31, groups: int = 16):
        super().__init__()
        self.proj = nn.Linear(in_dim, dim)
        self.conv_pos_embed = ConvPositionEmbedding(dim, kernel_size, groups)

    def forward(self, parts: Sequence[torch.Tensor], mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.proj(torch.cat(list(parts), dim=-1))
        return self.conv_pos_embed(h, mask) + h
