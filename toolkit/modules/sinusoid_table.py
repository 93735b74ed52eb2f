"""Absolute sinusoidal position table cat(cos, sin) (added to text embeddings in DiffRhythm and F5-TTS)."""

from __future__ import annotations

import torch


def sinusoid_position_table(num_positions: int, dim: int, theta: float = 10000.0,
                            device: torch.device | None = None) -> torch.Tensor:
    """[num_positions, dim]: cat(cos(p * w), sin(p * w)) with w_i = 1 / theta**(2i / dim) (blocks, not interleaved)."""
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 2, device=device)[: dim // 2].float() / dim))
    angles = torch.outer(torch.arange(num_positions, device=device, dtype=torch.float32), freqs)
    return torch.cat((angles.cos(), angles.sin()), dim=-1)
