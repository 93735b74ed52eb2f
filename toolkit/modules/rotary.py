"""Rotary position embedding (RoPE) for attention heads.

Two conventions exist and both are here:
  * "half" (NeoX / Llama, DiffRhythm): angles cat(f, f) over the head dim, rotate_half(x) = cat(-x2, x1)
    where x1, x2 are the two halves of the head dim.
  * "pairs" (GPT-J / x-transformers, F5-TTS): angles interleave-duplicated (f0, f0, f1, f1, ...),
    rotation on adjacent pairs (x[2i], x[2i+1]) -> (-x[2i+1], x[2i]).
"""

from __future__ import annotations

import torch
from torch import nn

STYLES = ("half", "pairs")


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rotate_pairs(x: torch.Tensor) -> torch.Tensor:
    x = x.unflatten(-1, (-1, 2))
    x1, x2 = x.unbind(-1)
    return torch.stack((-x2, x1), dim=-1).flatten(-2)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, style: str = "half") -> torch.Tensor:
    """x: [..., T, head_dim]; cos, sin broadcastable to x -> x * cos + rotate(x) * sin.

    The "half" style adds the rotated products into the halves of x * cos in place: the same products
    and sums as the formula, bit for bit (a - b == a + (-b)), with three new tensors instead of five
    (two of them half-size); 2x faster at DiT sizes.
    """
    if style != "half":
        return x * cos + rotate_pairs(x) * sin
    half = x.shape[-1] // 2
    out = x * cos
    out[..., :half].sub_(x[..., half:] * sin[..., :half])
    out[..., half:].add_(x[..., :half] * sin[..., half:])
    return out


class RotaryEmbedding(nn.Module):
    """cos/sin tables of RoPE for positions 0..T-1 (or given positions).

    `inv_freq = 1 / base**(arange(0, head_dim, 2) / head_dim)` is a buffer (non-persistent by default,
    as in Llama; F5-TTS stores it, pass persistent=True). Angles are computed in float32 from that
    buffer and the tables are returned in the requested dtype; a model cast to fp16 therefore rounds
    inv_freq to fp16 like the upstream implementations do.
    """

    def __init__(self, head_dim: int, base: float = 10000.0, style: str = "half", persistent: bool = False):
        super().__init__()
        if style not in STYLES:
            raise ValueError(f"unknown rotary style '{style}'; choose one of {STYLES}")
        if head_dim % 2:
            raise ValueError(f"rotary head_dim must be even, got {head_dim}")
        self.head_dim = head_dim
        self.base = base
        self.style = style
        self.register_buffer("inv_freq", self._inv_freq(), persistent=persistent)

    def _inv_freq(self, device: torch.device | None = None) -> torch.Tensor:
        exponent = torch.arange(0, self.head_dim, 2, dtype=torch.int64, device=device).float() / self.head_dim
        return 1.0 / (self.base ** exponent)

    def reset_buffers(self) -> None:
        """Recompute inv_freq (after `to_empty` from the meta device)."""
        self.inv_freq = self._inv_freq(self.inv_freq.device).to(self.inv_freq.dtype)

    def forward(self, num_positions: int, dtype: torch.dtype = torch.float32,
                positions: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (cos, sin), each [T, head_dim] (or positions.shape + [head_dim])."""
        if positions is None:
            positions = torch.arange(num_positions, device=self.inv_freq.device)
        angles = positions.float()[..., None] * self.inv_freq.float()
        if self.style == "half":
            angles = torch.cat((angles, angles), dim=-1)
        else:
            angles = angles.repeat_interleave(2, dim=-1)
        return angles.cos().to(dtype), angles.sin().to(dtype)
