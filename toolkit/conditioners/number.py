"""A number (seconds_start, seconds_total, ...) as one learned-Fourier token: stable-audio-tools' NumberConditioner.

    v = clamp(value, min_val, max_val); n = (v - min_val) / (max_val - min_val)
    f = n * w * 2 pi   (w: 128 learned frequencies, `embedder.embedding.0.weights`)
    token = Linear(257, output_dim)(cat(n, sin f, cos f))       (`embedder.embedding.1`; n FIRST, then SIN, COS)

With `derive` ("start" or "total") the value is Stable Audio's timing of the frames it is prepared for, as
stable-audio-tools' dataset computes it: a training window's start in its song (seconds_start) or the whole
song's length (seconds_total), in seconds; nothing is cached at extraction (`source: null` in a config). At
generation a request's value is used, else 0 for the start and the planned length for the total.

Output: (tokens [B, 1, output_dim], mask [B, 1] float ones). Bound to a cross-attention or prepend input the
token is used as it is; bound to a global input its single token is the vector (upstream squeezes it).
Unlike `scalar_time` (a fixed sinusoid of a [0, 1] fraction, DiffRhythm), the frequencies are learned and the
value is normalised by a configured range. Keys after `conditioner.conditioners.<id>.` of a published Stable
Audio Open checkpoint: `embedder.embedding.0.weights`, `embedder.embedding.1.{weight,bias}`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..protocols import OUT_TOKENS, Conditioner
from ..registry import CONDITIONERS

FOURIER_DIM = 256
DERIVED = (None, "start", "total")  # where a derived number comes from: a window's start, its song's length


class LearnedPositionalEmbedding(nn.Module):
    """[B] -> [B, dim + 1] = cat(x, sin(x w 2 pi), cos(x w 2 pi)); key `weights` [dim / 2]."""

    def __init__(self, dim: int = FOURIER_DIM):
        super().__init__()
        if dim % 2:
            raise ValueError(f"the Fourier embedding width must be even, got {dim}")
        self.weights = nn.Parameter(torch.randn(dim // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, None]
        freqs = x * self.weights[None, :] * 2 * math.pi
        return torch.cat((x, freqs.sin(), freqs.cos()), dim=-1)


class NumberEmbedder(nn.Module):
    """`embedding` = Sequential(LearnedPositionalEmbedding, Linear(dim + 1, features))."""

    def __init__(self, features: int, dim: int = FOURIER_DIM):
        super().__init__()
        self.embedding = nn.Sequential(LearnedPositionalEmbedding(dim), nn.Linear(dim + 1, features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding(x)


@CONDITIONERS.register("number")
class NumberConditioner(Conditioner):
    """A number clamped to [min_val, max_val], normalised, embedded as one learned token (stable-audio-tools).

    Args:
        output_dim: token width (Stable Audio Open: 768, its cond_dim).
        min_val, max_val: the range (Stable Audio Open 1.0: 0, 512 seconds; Small: 0, 256).
        key: the request / metadata field (e.g. "seconds_total"; default "number").
        derive: None (the value comes from the data), "start" or "total" (from the window, see above).
    prepare(value): a number, a 0-dim tensor or a one-element list / tuple (upstream unwraps those) ->
        a 0-dim float32 tensor of the raw value. forward(prepared [B]) -> (tokens [B, 1, output_dim],
        mask [B, 1] float ones). null(B) -> zeros of both.
    """

    output_kind = OUT_TOKENS

    def __init__(self, output_dim: int = 768, min_val: float = 0.0, max_val: float = 512.0, *, key: str = "number",
                 derive: str | None = None):
        super().__init__()
        if not max_val > min_val:
            raise ValueError(f"number conditioner: max_val ({max_val}) must be greater than min_val ({min_val})")
        if derive not in DERIVED:
            raise ValueError(f"number conditioner: derive must be one of {DERIVED}, not {derive!r}")
        self.output_dim, self.min_val, self.max_val, self.key = int(output_dim), min_val, max_val, key
        self.derive = derive
        self.embedder = NumberEmbedder(self.output_dim)

    def prepare(self, value: Any, *, num_frames: int | None = None) -> torch.Tensor:
        if isinstance(value, (list, tuple)):
            if len(value) != 1:
                raise ValueError(f"{self.key}: expected one number, got a sequence of {len(value)}")
            value = value[0]
        if isinstance(value, Mapping) or value is None:
            raise ValueError(f"{self.key}: expected a number (e.g. seconds), got {value!r}")
        number = float(value.item() if torch.is_tensor(value) else value)
        if not math.isfinite(number):
            raise ValueError(f"{self.key}: {value!r} is not a finite number")
        return torch.tensor(number, dtype=torch.float32)

    # ------------------------------------------------------------------------------------- data path
    def extract(self, value: Any, span: Any) -> Any:
        return None if self.derive else self.prepare(value)

    def crop(self, cached: Any, span: Any) -> torch.Tensor:
        """A training window's value: its start (floor seconds) or its song's length (ceil seconds), as
        stable-audio-tools' dataset gives seconds_start / seconds_total; a cached value otherwise."""
        if self.derive == "start":
            return torch.tensor(float(math.floor(span.start / span.frame_rate)))
        if self.derive == "total":
            return torch.tensor(float(math.ceil(span.total / span.frame_rate)))
        return cached

    def from_request(self, value: Any, span: Any) -> torch.Tensor:
        if value is None and self.derive == "start":
            return torch.tensor(0.0)
        if value is None and self.derive == "total":
            return torch.tensor(float(span.start_seconds + span.seconds))
        return self.prepare(value)

    def normalize(self, prepared: torch.Tensor) -> torch.Tensor:
        """[B] raw values -> clamped and scaled to [0, 1] (float32, as upstream, then the embedder's dtype)."""
        values = prepared.float().clamp(self.min_val, self.max_val)
        values = (values - self.min_val) / (self.max_val - self.min_val)
        return values.to(self.embedder.embedding[1].weight.dtype)

    def forward(self, prepared: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if prepared.dim() != 1:
            raise ValueError(f"{self.key}: forward takes a [B] batch of prepared numbers, not {list(prepared.shape)}")
        tokens = self.embedder(self.normalize(prepared)).unsqueeze(1)
        return tokens, torch.ones(tokens.shape[0], 1, device=tokens.device)

    def null(self, batch_size: int, num_frames: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero tokens and a zero mask: upstream's null embedding (it never drops numbers itself)."""
        weight = self.embedder.embedding[1].weight
        return (torch.zeros(batch_size, 1, self.output_dim, dtype=weight.dtype, device=weight.device),
                torch.zeros(batch_size, 1, device=weight.device))

    def extra_repr(self) -> str:
        derive = f", derive={self.derive}" if self.derive else ""
        return f"key={self.key}, output_dim={self.output_dim}, min_val={self.min_val}, max_val={self.max_val}{derive}"
