"""The training window rule: a random crop of a song's latent with its lyric lines shifted into it.

Following upstream DiffRhythm's dataset (docs/reference/diffrhythm.md §11), with two changes:
songs without lyrics are kept (upstream drops them), and the window is not cut at the last lyric line
unless `end_at_last_line` (upstream's base-model rule, where the last LRC line marks the song end).

    start  ~ uniform integer in [0, max(0, T - max_frames)]            (from the item's keyed generator)
    lines  -> (t - start / frame_rate, tokens), kept when 0 <= t' < window seconds
    start_time (condition) = start / T       (fraction of the song before the window)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..conditioners.lyrics_lrc import lines_in_window


@dataclass
class Window:
    start: int
    frames: int
    lines: list[tuple[float, list[int]]]
    start_time: float


def choose_window(total_frames: int, max_frames: int, lines: list[tuple[float, list[int]]], frame_rate: float,
                  generator: torch.Generator, end_at_last_line: bool = False, min_frames: int = 1) -> Window:
    if total_frames < 1:
        raise ValueError("a song with no latent frames cannot be windowed")
    span = max(0, total_frames - max_frames)
    start = int(torch.randint(0, span + 1, (1,), generator=generator))
    frames = min(max_frames, total_frames - start)
    kept = lines_in_window(sorted(lines, key=lambda line: line[0]), start / frame_rate, frames / frame_rate)
    if end_at_last_line and len(kept) > 1:
        end = int(kept[-1][0] * frame_rate)
        if end >= min_frames:
            frames, kept = end, kept[:-1]
    return Window(start=start, frames=frames, lines=kept, start_time=start / total_frames)
