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
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..lrc import Lrc, LrcLine, lines_in_window, looks_like_lrc, parse_lrc, plain_lines, time_evenly
from ..protocols import OUT_FRAME_IDS, Conditioner
from ..registry import CONDITIONERS

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


def layout(lines: Sequence[TokenLine], num_frames: int, frame_rate: float = UPSTREAM_FRAME_RATE,
           shift_frames: int = 0) -> list[tuple[int, list[int], int]]:
    """Where each line lands: [(start frame, tokens as placed, how many of them fit)] in the given order.

    A line starts at its frame, pushed right while the previous line is still placing, and is cut at the
    sequence end; an empty line (an instrumental gap) places nothing.
    """
    out, last_end = [], 0
    for t, tokens in lines:
        placed = line_tokens(tokens)
        start = max(time_to_frame(t, frame_rate) - shift_frames, last_end)
        n = max(0, min(len(placed), num_frames - start)) if placed else 0
        out.append((start, placed, n))
        if placed:
            last_end = start + n
    return out


def place_tokens(lines: Sequence[TokenLine], num_frames: int, *, frame_rate: float = UPSTREAM_FRAME_RATE,
                 max_secs: float | None = None, max_frames: int | None = None, shift_frames: int = 0) -> torch.Tensor:
    """[(seconds, tokens), ...] in file order -> int64 [num_frames] (0 = no token).

    max_secs / max_frames apply `kept_lines`; shift_frames moves every start left (upstream's
    dataset draws it as randint(-0, 0), i.e. 0).
    """
    out = torch.zeros(num_frames, dtype=torch.long)
    for start, placed, n in layout(kept_lines(lines, max_secs, max_frames), num_frames, frame_rate, shift_frames):
        if n:
            out[start:start + n] = torch.tensor(placed[:n], dtype=torch.long)
    return out


# Tokens that voice nothing: , . ? ! and the word boundary, and : ; ' ... (vocabulary ids + 1)
SILENT_TOKENS = frozenset({1, 2, 3, 4, 5, 360, 361, 362, 363})


@dataclass
class LinePlacement:
    """How one lyric line fares in a song: its status, and how many of its tokens fit.

    status: "placed" (all of it), "cut" (fewer tokens fit than it has), "after_end" (it starts after the
    song ends), "end_marker" (the base model's last line, which marks the end and is not sung), "gap" (no
    text), "silent" (text with nothing the tokenizer can voice; `script` names the script when known).
    """

    time: float
    text: str
    status: str
    tokens: int = 0
    placed: int = 0
    script: str | None = None

    @property
    def sung(self) -> bool:
        return self.status in ("placed", "cut")


class NoLyricsInWindowError(ValueError):
    """No lyric line falls inside the training window (upstream then draws another item)."""


@dataclass
class WindowedLyrics:
    tokens: torch.Tensor        # int64 [max_frames]
    end_frame: int              # latent frames to keep from the window start (crop point)
    start_time: float           # window start in seconds
    lines: list[TokenLine]      # shifted lines that were placed


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

    output_kind = OUT_FRAME_IDS
    default_source = "lyrics"  # a manifest's LRC or plain lyrics

    def __init__(self, max_frames: int = BASE_MAX_FRAMES, language: str = "auto",
                 frame_rate: float = UPSTREAM_FRAME_RATE, strict: bool = False, vocal_start: float = 0.0,
                 end_at_last_line: bool = False, min_frames: int = 1):
        super().__init__()
        from .g2p.tokenizer import PhonemeTokenizer

        self.max_frames = int(max_frames)
        self.frame_rate = float(frame_rate)
        self.language = language
        self.vocal_start = float(vocal_start)
        # Upstream's base-model training rule: a window ends at its last LRC line, which marks the song end.
        self.end_at_last_line, self.min_frames = bool(end_at_last_line), int(min_frames)
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

    def encode_line(self, text: str) -> tuple[list[int], str | None]:
        """(tokens, script) of one line. A line whose letters are mostly in a script no espeak-ng voice reads
        (say Egyptian hieroglyphs, which a forced voice would spell out by their Unicode names) gives no
        tokens and that script's name, so one such line does not stop a song; in strict mode it is an error.
        A line that gives only punctuation tokens gives them, with its script when it has letters."""
        from .g2p.languages import SCRIPT_VOICES, UnsupportedLanguageError, char_script

        if not text:
            return [], None
        scripts = Counter(char_script(ch) for ch in text if ch.isalpha())
        readable = sum(n for script, n in scripts.items() if script == "LATIN" or script in SCRIPT_VOICES)
        unreadable = scripts.most_common(1)[0][0].title() if scripts and readable * 2 < sum(scripts.values()) else None
        tokens: list[int] = []
        if unreadable is None:
            try:
                tokens = self.tokenizer.encode(text)
            except UnsupportedLanguageError:
                unreadable = next(iter(scripts), "UNKNOWN").title()
        if unreadable is not None:
            if self.tokenizer.strict:
                raise UnsupportedLanguageError(f"no espeak-ng voice reads the {unreadable} script of the lyric "
                                               f"line {text!r:.60}")
            return [], unreadable
        if any(t not in SILENT_TOKENS for t in tokens):
            return tokens, None
        return tokens, (scripts.most_common(1)[0][0].title() if scripts else None)

    def token_lines(self, value: Any, num_frames: int) -> list[TokenLine]:
        return [(line.time, self.encode_line(line.text)[0]) for line in self.lines(value, num_frames)]

    def report(self, value: Any, num_frames: int) -> list[LinePlacement]:
        """Every line of `value` for a song of num_frames frames, with what placement does to it (the same
        rule as `prepare`), so a front end can say which lines are sung, cut or left out, and why."""
        lines = self.lines(value, num_frames)
        max_secs = num_frames / self.frame_rate
        inside = [i for i, line in enumerate(lines) if line.time < max_secs]
        marker = inside[-1] if inside and self.max_frames == BASE_MAX_FRAMES else None
        report, placed_lines = [], []  # every kept line with text takes frames, silent ones their punctuation
        for i, line in enumerate(lines):
            if i not in inside:
                report.append(LinePlacement(line.time, line.text, "after_end"))
            elif i == marker:
                report.append(LinePlacement(line.time, line.text, "end_marker"))
            elif not line.text:
                report.append(LinePlacement(line.time, line.text, "gap"))
            else:
                tokens, script = self.encode_line(line.text)
                status = "silent" if script is not None or not any(t not in SILENT_TOKENS for t in tokens) else ""
                report.append(LinePlacement(line.time, line.text, status, script=script))
                placed_lines.append((len(report) - 1, line.time, tokens))
        where = layout([(t, tok) for _, t, tok in placed_lines], num_frames, self.frame_rate)
        for (index, _, _), (_, placed, n) in zip(placed_lines, where, strict=True):
            entry = report[index]
            entry.tokens, entry.placed = len(placed), n
            if not entry.status:
                entry.status = "placed" if n == len(placed) else "cut"
        return report

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

    # ------------------------------------------------------------------------------------- data path
    def extract(self, value: Any, span: Any) -> list[TokenLine]:
        """A song's lyrics (LRC or plain text, None for none) -> its lines as (seconds, token ids), sorted."""
        if value is None or (isinstance(value, str) and not value.strip()):
            return []
        lines = self.token_lines(value, span.frames)
        return sorted(((float(t), [int(x) for x in tok]) for t, tok in lines), key=lambda line: line[0])

    def limit_window(self, cached: list[TokenLine], span: Any) -> Any:
        """With `end_at_last_line`, the window ends at its last line (kept when it leaves min_frames)."""
        if not self.end_at_last_line:
            return span
        inside = lines_in_window(cached, span.start_seconds, span.seconds)
        if len(inside) > 1:
            end = time_to_frame(inside[-1][0], span.frame_rate)
            if end >= self.min_frames:
                return span.shortened(end)
        return span

    def crop(self, cached: list[TokenLine], span: Any) -> torch.Tensor:
        """The lines inside the window, shifted to it and placed on its frames (a line cut at the window end).
        A window shortened at its last line leaves that line (the end marker) out."""
        inside = lines_in_window(cached, span.start_seconds, span.seconds)
        return place_tokens(inside, span.frames, frame_rate=span.frame_rate)

    def collate(self, values: Sequence[torch.Tensor]) -> torch.Tensor:
        """Pad to the longest window with filler 0."""
        n = max(int(v.shape[0]) for v in values)
        out = torch.zeros(len(values), n, dtype=torch.long)
        for i, v in enumerate(values):
            out[i, :v.shape[0]] = v
        return out

    def from_request(self, value: Any, span: Any) -> torch.Tensor:
        """LRC (or plain lyrics) for a generated song of span.frames frames; None or "" is instrumental."""
        if value is None or (isinstance(value, str) and not value.strip()):
            return torch.zeros(span.frames, dtype=torch.long)
        return self.prepare(value, num_frames=span.frames)
