"""The frames a condition value is prepared for: a training window of a song, or a generated song."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Span:
    """`frames` latent frames starting at frame `start` of a song of `total` frames.

    At extraction the span is the whole song (start 0, frames = total); in training a window; at
    generation the song being generated (start 0, frames = total = the planned length).
    `max_frames` is the model's window, `frame_rate` latent frames per second.
    """

    start: int
    frames: int
    total: int
    frame_rate: float
    max_frames: int

    @classmethod
    def whole(cls, frames: int, frame_rate: float, max_frames: int) -> Span:
        return cls(0, int(frames), int(frames), float(frame_rate), int(max_frames))

    @property
    def start_seconds(self) -> float:
        return self.start / self.frame_rate

    @property
    def seconds(self) -> float:
        return self.frames / self.frame_rate

    def shortened(self, frames: int) -> Span:
        return replace(self, frames=int(frames))
