"""Gaussian noise streams for samplers that draw more than their initial noise (SDE and ping-pong steps).

Item i of a batch draws from its own torch.Generator seeded `seed + i`, continued from draw to draw, so an
item is reproduced alone with seed + i and the first draw equals `samplers.draw_noise(..., seed)`. Without a
seed, torch's global generator is used.
"""

from __future__ import annotations

from collections.abc import Callable

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


def initial_noise(noise: torch.Tensor | None, cond: torch.Tensor | None, shape: tuple[int, int, int] | None,
                  seed: int | None) -> tuple[torch.Tensor, ItemNoise]:
    """(start noise, the per-item stream for later draws): the stream's first draw (shape from `shape` or `cond`),
    or the given noise, after which the stream continues from its second draw (as if it had drawn the noise)."""
    if noise is not None:
        stream = ItemNoise(noise.shape[0], seed, device=noise.device)
        if seed is not None:
            stream.draw(*noise.shape[1:])
        return noise.float(), stream
    if shape is None:
        if cond is None:
            raise ValueError("give the initial noise [B, T, D], or shape=(B, T, D) (or a cond tensor of that shape)")
        shape = tuple(cond.shape)
    device = "cpu" if cond is None else cond.device
    b, frames, dim = shape
    stream = ItemNoise(b, seed, device=device)
    return stream.draw(frames, dim), stream


def step_noise_fn(step_noise, stream: ItemNoise, x: torch.Tensor) -> Callable[[int], torch.Tensor]:
    """step i -> N(0, 1) like x: from a given [n, B, T, D] tensor or callable, else the item stream."""
    if step_noise is None:
        return lambda i: stream.draw(*x.shape[1:]).to(x.dtype)
    if callable(step_noise):
        return step_noise
    return lambda i: step_noise[i].to(device=x.device, dtype=x.dtype)
