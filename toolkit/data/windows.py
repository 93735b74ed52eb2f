"""The training window: a crop of a song's latent, drawn from the item's keyed generator.

    random: start ~ uniform integer in [0, max(0, T - max_frames)], frames = min(max_frames, T - start)
            (upstream DiffRhythm's dataset, docs/reference/diffrhythm.md §11)
    start:  start = 0, frames = min(max_frames, T)  (whole utterances, cut when too long: F5-TTS)
What the window means for each condition (lyric lines shifted into it, the start-time fraction, a window
ended at its last lyric line) is the conditioners' business (Conditioner.limit_window / crop).
"""

from __future__ import annotations

import torch

from ..conditions import Span

WINDOW_MODES = ("random", "start")


def choose_window(total_frames: int, max_frames: int, frame_rate: float, generator: torch.Generator,
                  mode: str = "random") -> Span:
    if total_frames < 1:
        raise ValueError("a song with no latent frames cannot be windowed")
    if mode not in WINDOW_MODES:
        raise ValueError(f"window must be one of {WINDOW_MODES}, not {mode!r}")
    start = 0
    if mode == "random":
        start = int(torch.randint(0, max(0, total_frames - max_frames) + 1, (1,), generator=generator))
    frames = min(max_frames, total_frames - start)
    return Span(start=start, frames=frames, total=total_frames, frame_rate=frame_rate, max_frames=max_frames)
