"""Time-stamped lyrics -> frame-aligned phoneme tokens (DiffRhythm's lyric condition).

The placement rule (upstream `get_lrc_token`, identical in its dataset):
each line's tokens (its inner periods turned into commas, a period appended as line terminator)
take one frame per token from the line's start frame `int(t * frame_rate)`, pushed right if the
previous line has not finished, cut at the sequence end; every other frame is 0. Only lines with
t < max_secs count; with the base model (max_frames == 2048) the last of them is dropped, because
upstream treats the last timestamp as the end-of-song marker. An empty line (instrumental gap)
places nothing here (upstream crashes on it) but still counts as a line for that rule.

`window_lines` is the training-window rule of upstream's dataset: line times shifted by the
window start, lines outside [0, window) dropped, and the latent cropped at the last kept line.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from ..protocols import FRAME_ALIGNED, Conditioner
from ..registry import CONDITIONERS
from .lrc import Lrc, LrcLine, looks_like_lrc, parse_lrc, plain_lines, time_evenly

UPSTREAM_SAMPLE_RATE, UPSTREAM_HOP = 44100, 2048
UPSTREAM_FRAME_RATE = UPSTREAM_SAMPLE_RATE / UPSTREAM_HOP  # 21.533203125, exact in binary
BASE_MAX_FRAMES = 2048
COMMA_TOKEN, PERIOD_TOKEN = 1, 2

TokenLine = tuple[float, Sequence[int]]


def time_to_frame(seconds: float, frame_rate: float = UPSTREAM_FRAME_RATE) -> int:
    """Frame of a time: floor(t * frame_rate), as upstream's int(t * 44100 / 2048)."""
    return int(seconds * frame_rate)


def song_frames(audio_length: float, max_frames: int, frame_rate: float = UPSTREAM_FRAME_RATE) -> int:
    """Generated length L: max_frames for the base model, else min(int(len * frame_rate), max_frames)."""
    if max_frames == BASE_MAX_FRAMES:
        return BASE_MAX_FRAMES
    return min(int(audio_length * frame_rate), max_frames)


def line_tokens(tokens: Sequence[int]) -> list[int]:
    """A line's tokens as placed: inner periods become commas, a period ends the line."""
    values = [int(t) for t in tokens]  # lists, tuples or 1-D tensors
    if not values:
        return []
    return [COMMA_TOKEN if t == PERIOD_TOKEN else t for t in values] + [PERIOD_TOKEN]


def kept_lines(lines: Sequence[TokenLine], max_secs: float | None, max_frames: int | None) -> list[TokenLine]:
    """Lines with t < max_secs, in the given order; the base model drops the last one."""
    kept = [(float(t), tok) for t, tok in lines if max_secs is None or t < max_secs]
    if max_frames == BASE_MAX_FRAMES and kept:
        kept = kept[:-1]
    return kept


def place_tokens(lines: Sequence[TokenLine], num_frames: int, *, frame_rate: float = UPSTREAM_FRAME_RATE,
                 max_secs: float | None = None, max_frames: int | None = None, shift_frames: int = 0) -> torch.Tensor:
    """[(seconds, tokens), ...] in file order -> int64 [num_frames] (0 = no token).

    max_secs / max_frames apply `kept_lines`; shift_frames moves every start left (upstream's
    dataset draws it as randint(-0, 0), i.e. 0).
    """
    out = torch.zeros(num_frames, dtype=torch.long)
    last_end = 0
    for t, tokens in kept_lines(lines, max_secs, max_frames):
        placed = line_tokens(tokens)
        if not placed:
            continue  # an instrumental gap
        start = max(time_to_frame(t, frame_rate) - shift_frames, last_end)
        n = max(0, min(len(placed), num_frames - start))
        if n:
            out[start:start + n] = torch.tensor(placed[:n], dtype=torch.long)
        last_end = start + n
    return out


class NoLyricsInWindowError(ValueError):
    """No lyric line falls inside the training window (upstream then draws another item)."""


@dataclass
class WindowedLyrics:
    tokens: torch.Tensor        # int64 [max_frames]
    end_frame: int              # latent frames to keep from the window start (crop point)
    start_time: float           # window start in seconds
    lines: list[TokenLine]      # shifted lines that were placed


def lines_in_window(lines: Sequence[TokenLine], offset: float, seconds: float) -> list[TokenLine]:
    """Lines moved `offset` seconds earlier, kept (in the given order) when they start in [0, seconds)."""
    return [(t - offset, tok) for t, tok in lines if 0 <= t - offset < seconds]


def window_lines(lines: Sequence[TokenLine], start_frame: int, *, max_frames: int,
                 frame_rate: float = UPSTREAM_FRAME_RATE, shift_frames: int = 0) -> WindowedLyrics:
    """Upstream's training rule for a window of `max_frames` frames starting at `start_frame`.

    Times are shifted by start_time = start_frame / frame_rate; lines with 0 <= t < max_frames /
    frame_rate are kept; the latent ends at the last kept line's frame; with the base model that
    line (the end marker) is not placed. Raises NoLyricsInWindowError if no line is in the window.
    """
    start_time = start_frame / frame_rate
    inside = lines_in_window(lines, start_time, max_frames / frame_rate)
    if not inside:
        raise NoLyricsInWindowError(f"no lyric line in the window starting at {start_time:.2f} s")
    end_frame = time_to_frame(inside[-1][0], frame_rate)
    tokens = place_tokens(inside, max_frames, frame_rate=frame_rate, max_frames=max_frames,
                          shift_frames=shift_frames)
    return WindowedLyrics(tokens, end_frame, start_time, kept_lines(inside, None, max_frames))


def upstream_lrc_record(lines: Sequence[TokenLine]) -> dict[str, list]:
    """[(seconds, tokens)] -> upstream's per-song `lrc.pt` content {"time": [s], "lrc": [int32 tensors]}."""
    return {"time": [float(t) for t, _ in lines],
            "lrc": [torch.tensor([int(x) for x in tok], dtype=torch.int32) for _, tok in lines]}


def random_window_start(num_latent_frames: int, max_frames: int, rng: random.Random | None = None) -> int:
    """Upstream's draw: randint(0, max(0, T - max_frames))."""
    return (rng or random).randint(0, max(0, num_latent_frames - max_frames))


@CONDITIONERS.register("lyrics_lrc")
class LyricsLrcConditioner(Conditioner):
    """Time-stamped lyrics (LRC, parsed lines or plain text) -> frame-aligned phoneme tokens."""

    key = "lyrics"
    placement = FRAME_ALIGNED

    def __init__(self, max_frames: int = BASE_MAX_FRAMES, language: str = "auto",
                 frame_rate: float = UPSTREAM_FRAME_RATE, strict: bool = False, vocal_start: float = 0.0,
                 sample_rate: int | None = None):
        super().__init__()
        from .g2p.tokenizer import PhonemeTokenizer

        self.max_frames = int(max_frames)
        self.frame_rate = float(frame_rate)
        self.language = language
        self.vocal_start = float(vocal_start)
        self.sample_rate = sample_rate  # given by the recipe with frame_rate; kept for the config dump
        self.tokenizer = PhonemeTokenizer(language, strict=strict)
        from .g2p.vocab import num_symbols

        self.num_tokens = num_symbols() + 1  # embedding size: tokens 0..363

    def lines(self, value: Any, num_frames: int) -> list[LrcLine]:
        """Any accepted value -> timed lines (plain lyrics spread over the sequence)."""
        if isinstance(value, Lrc):
            return list(value.lines)
        if isinstance(value, Path):
            value = value.read_text(encoding="utf-8-sig")
        if isinstance(value, str):
            if looks_like_lrc(value):
                return parse_lrc(value).lines
            plain = plain_lines(value)
            if not plain:
                return []
            if self.max_frames == BASE_MAX_FRAMES:
                # The base model drops the last line as the end-of-song marker: add an empty marker
                # slot after the lyrics so that no lyric is lost.
                plain = plain + [""]
            return time_evenly(plain, self.vocal_start, num_frames / self.frame_rate)
        result = []
        for item in value or []:
            if isinstance(item, LrcLine):
                result.append(item)
            else:
                t, text = item
                result.append(LrcLine(float(t), str(text)))
        return result

    def token_lines(self, value: Any, num_frames: int) -> list[TokenLine]:
        return [(line.time, self.tokenizer.encode(line.text)) for line in self.lines(value, num_frames)]

    def prepare(self, value: Any, *, num_frames: int | None = None, audio_length: float | None = None) -> torch.Tensor:
        """LRC text or file Path / Lrc / [(seconds, text)] / plain lyrics -> int64 [num_frames] tokens.

        Lines at or after `audio_length` seconds (default: the end of the sequence) are left out,
        as upstream's inference does with --audio-length.
        """
        if num_frames is None:
            num_frames = self.max_frames
        max_secs = audio_length if audio_length is not None else num_frames / self.frame_rate
        return place_tokens(self.token_lines(value, num_frames), num_frames, frame_rate=self.frame_rate,
                            max_secs=max_secs, max_frames=self.max_frames)

    def null(self, batch_size: int, num_frames: int | None = None) -> torch.Tensor:
        return torch.zeros(batch_size, num_frames or self.max_frames, dtype=torch.long)
