"""Frame-aligned token ids -> features: embedding table + sinusoid positions + ConvNeXt-V2 blocks."""

from __future__ import annotations

import torch
from torch import nn

from .convnext import ConvNeXtV2Block
from .sinusoid_table import sinusoid_position_table


class ConvTextEmbedding(nn.Module):
    """Token ids [B, T] (0 = filler) -> [B, T, dim]; keys `text_embed`, `text_blocks.{i}`.

    With conv_layers > 0 the absolute table cat(cos, sin) (positions clamped to max_positions - 1, a
    non-persistent buffer) is added, then `conv_layers` ConvNeXt-V2 blocks run. GRN inside the blocks
    normalises over the whole time axis, so every frame (fillers included) affects every other one.

    forward(tokens, drop=None, valid=None, pad=None):
      drop  [B] bool: per-item classifier-free-guidance drop -> that item's tokens become filler (0);
      valid [B, T] bool: positions outside get no position embedding (F5-TTS per-item lengths);
      pad   [B, T] bool: frames zeroed before and after every block (F5-TTS text padding mask, which the
            caller computes before dropping).
    DiffRhythm uses none of valid/pad.
    """

    def __init__(self, num_embeds: int, dim: int, conv_layers: int = 0, conv_mult: int = 2,
                 max_positions: int = 4096):
        super().__init__()
        self.dim = dim
        self.max_positions = max_positions
        self.text_embed = nn.Embedding(num_embeds, dim)
        self.conv_layers = conv_layers
        if conv_layers > 0:
            self.register_buffer("freqs_cis", sinusoid_position_table(max_positions, dim), persistent=False)
            self.text_blocks = nn.Sequential(*(ConvNeXtV2Block(dim, dim * conv_mult) for _ in range(conv_layers)))

    def reset_buffers(self) -> None:
        """Recompute the position table (after `to_empty` from the meta device)."""
        if self.conv_layers > 0:
            table = sinusoid_position_table(self.max_positions, self.dim, device=self.freqs_cis.device)
            self.freqs_cis = table.to(self.freqs_cis.dtype)

    def forward(self, tokens: torch.Tensor, drop: torch.Tensor | None = None,
                valid: torch.Tensor | None = None, pad: torch.Tensor | None = None) -> torch.Tensor:
        if drop is not None:
            tokens = tokens.masked_fill(drop[:, None], 0)
        h = self.text_embed(tokens)
        if self.conv_layers == 0:
            return h
        t = tokens.shape[1]
        pos = torch.arange(t, device=tokens.device).clamp(max=self.max_positions - 1)
        table = self.freqs_cis[pos]
        if valid is not None:
            table = table * valid[..., None].to(table.dtype)
        h = h + table
        for block in self.text_blocks:
            if pad is not None:
                h = h.masked_fill(pad[..., None], 0.0)
            h = block(h)
        if pad is not None:
            h = h.masked_fill(pad[..., None], 0.0)
        return h
