"""Start time and duration conditions: one scalar in [0, 1] per item (docs/reference/diffrhythm.md §3.3).

Both are derived from the frames a value is prepared for (a training window, a generated song), so a
`conditions:` entry gives them `source: null`: nothing is cached at extraction.

Upstream feeds both through sinusoidal timestep embeddings added to the time embedding:
  start_time = start_frame / total_song_frames   (where a training crop starts in its song; 0 at inference)
  duration   = end_frame / max_frames            (the generated length; only the 6144-frame model reads it)
A time in seconds becomes a frame as upstream does, floor(seconds * frame_rate); we add 1e-6 frame
before the floor so a time computed from a frame index (frame / frame_rate) maps back to that frame
despite rounding.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from ..protocols import OUT_SCALAR, Conditioner
from ..registry import CONDITIONERS

KINDS = ("start_time", "duration")
FRAME_EPS = 1e-6


class TimeConditionError(ValueError):
    """A start time or duration that does not fit the song or the model."""


@CONDITIONERS.register("scalar_time")
class ScalarTime(Conditioner):
    """Start time or duration as a [B] scalar in [0, 1] (upstream start_time / duration conditions).

    kind: "start_time" or "duration" (also the default `key`).
    max_frames: the model's frame window; the default normaliser for durations.
    frame_rate: latent frames per second (derived from the codec by the recipe).
    prepare(value, num_frames): value is seconds (a number), {"seconds": s} or {"frames": n}, or None for 0;
      num_frames is the total frames of the song for start_time, and the model window for duration
      (default max_frames).
    """

    output_kind = OUT_SCALAR
    default_source = None  # derived from the window or the planned length
    output_dim = 1

    def __init__(self, kind: str = "start_time", *, max_frames: int | None = None, frame_rate: float | None = None):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"scalar_time: kind must be one of {', '.join(KINDS)}, not {kind!r}")
        self.kind = kind
        self.max_frames = None if max_frames is None else int(max_frames)
        self.frame_rate = None if frame_rate is None else float(frame_rate)

    def to_frame(self, value: Any) -> int:
        """Seconds / {"seconds": s} / {"frames": n} / None -> a frame index (floor)."""
        if value is None:
            return 0
        if isinstance(value, Mapping):
            if "frames" in value:
                return int(value["frames"])
            if "seconds" not in value:
                raise TimeConditionError(f"{self.kind}: a mapping needs 'seconds' or 'frames' (got {sorted(value)})")
            value = value["seconds"]
        if isinstance(value, torch.Tensor):
            value = value.item()
        seconds = float(value)
        if not math.isfinite(seconds) or seconds < 0:
            raise TimeConditionError(f"{self.kind} must be a finite, non-negative number of seconds, not {value!r}")
        if seconds == 0:
            return 0
        if self.frame_rate is None:
            raise TimeConditionError(f"scalar_time ({self.kind}) needs the codec's frame_rate to turn seconds into "
                                     "frames; the recipe passes it when it builds the conditioner")
        return math.floor(seconds * self.frame_rate + FRAME_EPS)

    def prepare(self, value: Any, *, num_frames: int | None = None) -> torch.Tensor:
        """-> a 0-dim float32 tensor in [0, 1]."""
        frame = self.to_frame(value)
        if self.kind == "start_time":
            if frame == 0:
                return torch.tensor(0.0)
            if num_frames is None or num_frames <= 0:
                raise TimeConditionError("start_time needs num_frames: the total number of frames of the song "
                                         "the crop was taken from")
            if frame >= num_frames:
                raise TimeConditionError(f"start_time: frame {frame} is not inside the song ({num_frames} frames)")
            return torch.tensor(frame / num_frames, dtype=torch.float32)
        window = num_frames if num_frames is not None else self.max_frames
        if window is None or window <= 0:
            raise TimeConditionError("duration needs the model's frame window: set max_frames or pass num_frames")
        if frame > window:
            limit = f" ({window / self.frame_rate:.1f} s)" if self.frame_rate else ""
            raise TimeConditionError(f"duration: {frame} frames is longer than the model's window of {window} "
                                     f"frames{limit}")
        return torch.tensor(frame / window, dtype=torch.float32)

    # ------------------------------------------------------------------------------------- data path
    def extract(self, value: Any, span: Any) -> None:
        return None  # derived from the window, nothing to cache

    def crop(self, cached: Any, span: Any) -> torch.Tensor:
        """A training window: start time = window start / song frames; duration = window frames / max_frames
        (upstream's training values)."""
        if self.kind == "start_time":
            return torch.tensor(span.start / span.total, dtype=torch.float32)
        return torch.tensor(span.frames / span.max_frames, dtype=torch.float32)

    def from_request(self, value: Any, span: Any) -> torch.Tensor:
        """A generated song starts at 0 (upstream's inference) unless a start is given; its duration is its
        planned length over the model window."""
        if self.kind == "start_time":
            return self.prepare(value, num_frames=span.total)
        return self.prepare({"frames": span.frames}, num_frames=span.max_frames)

    def forward(self, prepared: torch.Tensor) -> torch.Tensor:
        if prepared.dim() != 1:
            raise TimeConditionError(f"scalar_time.forward takes [B] scalars, not {list(prepared.shape)}")
        return prepared

    def null(self, batch_size: int, num_frames: int | None = None) -> torch.Tensor:
        """Zeros [B]. Upstream never drops these (guidance keeps them); 0 is its inference start time."""
        return torch.zeros(batch_size)

    def extra_repr(self) -> str:
        return f"kind={self.kind}, max_frames={self.max_frames}, frame_rate={self.frame_rate}"
