"""Gaussian noise streams for samplers that draw more than their initial noise (SDE and ping-pong steps).

Item i of a batch draws from its own torch.Generator seeded `seed + i`, continued from draw to draw, so an
item is reproduced alone with seed + i and the first draw equals `samplers.draw_noise(..., seed)`. Without a
seed, torch's global generator is used.
"""

from __future__ import annotations

import torch


class ItemNoise:
    """draw(*item_shape) -> [batch, *item_shape] standard normal noise, one continued generator per item."""

    def __init__(self, batch: int, seed: int | None = None, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu"):
        self.batch, self.dtype, self.device = batch, dtype, device
        self.generators = None if seed is None else [torch.Generator().manual_seed(seed + i) for i in range(batch)]

    def draw(self, *item_shape: int) -> torch.Tensor:
        if self.generators is None:
            return torch.randn(self.batch, *item_shape).to(device=self.device, dtype=self.dtype)
        items = [torch.randn(*item_shape, generator=g) for g in self.generators]
        return torch.stack(items).to(device=self.device, dtype=self.dtype)
