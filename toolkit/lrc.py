"""LRC lyrics: reading, writing, and timing plain lyrics.

Reading accepts `[mm:ss]`, `[mm:ss.x]`, `[mm:ss.xx]`, `[mm:ss.xxx]` (also `[mm:ss:xx]`), several
timestamps on one line, metadata tags (`[ti:...]`, `[ar:...]`, ...; `[offset:+/-ms]` is applied),
a byte-order mark, CRLF, blank lines, a timestamp with no text (an instrumental gap) and lines out
of order (sorted by time, file order kept for equal times). Enhanced-LRC word times (`<mm:ss.xx>`)
inside a line are removed.

What fails and what is skipped (docs/lyrics.md has the table):
* LrcError (with the line number and the reason): a timestamp that is malformed (seconds >= 60,
  letters in it, an unclosed `[`), a malformed `[offset:]`, a time that the offset makes negative.
  A typo in a timestamp would otherwise move a lyric silently.
* skipped with a warning (an error with strict=True): a line without a leading timestamp (a stray
  plain line, `[verse]`-style section tags), an unknown tag at the start of a line.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_TAG = re.compile(r"\[([^\[\]]*)\]")
_TIMESTAMP = re.compile(r"^\s*(\d+)\s*:\s*(\d+)(?:[.:](\d+))?\s*$")
_LOOKS_LIKE_TIME = re.compile(r"^\s*[+-]?\d+\s*:")  # a timestamp attempt, maybe malformed
_METADATA = re.compile(r"^\s*([A-Za-z#][A-Za-z0-9#_-]*)\s*:(.*)$", re.S)
_WORD_TIME = re.compile(r"<\s*\d+\s*:\s*\d+(?:[.:]\d+)?\s*>")
KNOWN_METADATA = {"ti", "ar", "al", "au", "by", "re", "ve", "length", "offset", "#", "la", "lr"}


class LrcError(ValueError):
    """A malformed LRC text; names the line and the reason."""

    def __init__(self, line_number: int, reason: str, line: str = ""):
        self.line_number = line_number
        self.reason = reason
        where = f"line {line_number}" + (f" {line.strip()!r}" if line else "")
        super().__init__(f"LRC {where}: {reason}")


@dataclass(frozen=True)
class LrcLine:
    """One timed lyric line; empty text marks an instrumental gap."""

    time: float
    text: str


@dataclass
class Lrc:
    lines: list[LrcLine]
    tags: dict[str, str] = field(default_factory=dict)

    def pairs(self) -> list[tuple[float, str]]:
        return [(line.time, line.text) for line in self.lines]


def _parse_timestamp(body: str, number: int, raw: str) -> float:
    m = _TIMESTAMP.match(body)
    if not m:
        raise LrcError(number, f"malformed timestamp [{body}] (expected [mm:ss], [mm:ss.xx] or [mm:ss.xxx])", raw)
    minutes, seconds, fraction = m.group(1), m.group(2), m.group(3)
    if int(seconds) >= 60:
        raise LrcError(number, f"seconds must be below 60 in [{body}]", raw)
    if fraction is not None and len(fraction) > 3:
        raise LrcError(number, f"more than 3 fraction digits in [{body}]", raw)
    # Upstream's arithmetic, int(mm) * 60 + float("ss.xx"), so times (and the frames they floor to) are
    # bit-identical to its reader: 1*60 + 34.99 is 94.99000000000001, not the nearest double to 94.99.
    return int(minutes) * 60 + float(f"{seconds}.{fraction or 0}")


def _offset_seconds(value: str, number: int, raw: str) -> float:
    if not re.fullmatch(r"\s*[+-]?\d+\s*", value):
        raise LrcError(number, f"[offset:{value}] must be a whole number of milliseconds such as +250 or -120", raw)
    return int(value) / 1000.0


def parse_lrc(text: str, *, strict: bool = False) -> Lrc:
    """Parse LRC text. See the module docstring for what is accepted, skipped and rejected."""
    text = text.lstrip("\ufeff")
    entries: list[tuple[float, int, str, int]] = []  # (time, order, text, line number)
    tags: dict[str, str] = {}
    offset = 0.0

    def skip(number: int, reason: str, raw: str) -> None:
        if strict:
            raise LrcError(number, reason, raw)
        log.warning("LRC line %d %r skipped: %s", number, raw.strip(), reason)

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if not line.startswith("["):
            skip(number, "no timestamp at the start of the line", raw)
            continue
        times: list[float] = []
        pos = 0
        bad_tag = None
        while pos < len(line) and line[pos] == "[":
            m = _TAG.match(line, pos)
            if not m:
                raise LrcError(number, "unclosed '[' at the start of the line", raw)
            body = m.group(1)
            meta = _METADATA.match(body)
            if _TIMESTAMP.match(body) or _LOOKS_LIKE_TIME.match(body):
                times.append(_parse_timestamp(body, number, raw))
            elif meta and not times:
                key, value = meta.group(1).lower(), meta.group(2).strip()
                if key == "offset":
                    offset = _offset_seconds(value, number, raw)
                elif key not in KNOWN_METADATA:
                    log.info("LRC line %d: unknown metadata tag [%s] kept", number, body)
                tags[key] = value
            else:
                bad_tag = body
                break
            pos = m.end()
        if bad_tag is not None and not times:
            skip(number, f"[{bad_tag}] is neither a timestamp nor a metadata tag", raw)
            continue
        if not times:
            continue  # a metadata line
        lyric = _WORD_TIME.sub("", line[pos:]).strip()
        lyric = re.sub(r"\s+", " ", lyric)
        for t in times:
            entries.append((t, len(entries), lyric, number))

    lines = []
    for t, _, lyric, number in sorted(entries):
        shifted = t - offset if offset else t  # a positive offset shows lyrics earlier
        if shifted < 0:
            raise LrcError(number, f"[offset:{tags.get('offset')}] moves its time {format_time(t)} before 0:00")
        lines.append(LrcLine(shifted, lyric))
    return Lrc(lines, tags)


def lines_in_window(lines: Sequence[tuple[float, Any]], offset: float, seconds: float) -> list[tuple[float, Any]]:
    """Timed lines moved `offset` seconds earlier, kept (in the given order) when they start in [0, seconds)."""
    return [(t - offset, value) for t, value in lines if 0 <= t - offset < seconds]


def read_lrc(path: str | Path, *, strict: bool = False) -> Lrc:
    return parse_lrc(Path(path).read_text(encoding="utf-8-sig"), strict=strict)


def looks_like_lrc(text: str) -> bool:
    """True if any line starts with a timestamp tag."""
    return any(re.match(r"^\s*\[\s*\d+\s*:\s*\d+", line) for line in text.lstrip("\ufeff").splitlines())


# --- writing ------------------------------------------------------------------------------------------

def format_time(seconds: float) -> str:
    """83.456 -> '01:23.46' (centiseconds, as most players write)."""
    if seconds < 0:
        raise ValueError(f"a lyric time cannot be negative ({seconds})")
    centi = int(round(seconds * 100))
    return f"{centi // 6000:02d}:{(centi % 6000) // 100:02d}.{centi % 100:02d}"


def format_lrc(lines: Iterable[LrcLine | tuple[float, str]], tags: dict[str, str] | None = None) -> str:
    out = [f"[{key}:{value}]" for key, value in (tags or {}).items() if key != "offset"]
    for line in lines:
        t, lyric = (line.time, line.text) if isinstance(line, LrcLine) else line
        out.append(f"[{format_time(t)}]{lyric}")
    return "\n".join(out) + "\n"


def write_lrc(path: str | Path, lines: Iterable[LrcLine | tuple[float, str]],
              tags: dict[str, str] | None = None) -> Path:
    from .io import atomic_write_text

    return atomic_write_text(path, format_lrc(lines, tags))


# --- plain lyrics -----------------------------------------------------------------------------------------

_SECTION = re.compile(r"^\s*[\[(][^\])]*[\])]\s*$")


def plain_lines(text: str) -> list[str]:
    """Plain lyrics -> lyric lines: blank lines and lone section labels ([Chorus], (verse 2)) left out."""
    lines = []
    for raw in text.lstrip("\ufeff").splitlines():
        line = raw.strip()
        if not line:
            continue
        if _SECTION.match(line):
            log.info("plain lyrics: section label %r left out", line)
            continue
        lines.append(re.sub(r"\s+", " ", line))
    return lines


def time_evenly(lines: Sequence[str], start: float, end: float) -> list[LrcLine]:
    """Spread lines evenly over [start, end): line i starts at start + i * (end - start) / n."""
    if end <= start:
        raise ValueError(f"the vocal span must have end > start (got {start}..{end})")
    step = (end - start) / max(len(lines), 1)
    return [LrcLine(round(start + i * step, 3), line) for i, line in enumerate(lines)]


def beat_times(audio, sample_rate: int) -> list[float]:
    """Beat positions (seconds) that librosa finds in a mono or [channels, samples] clip."""
    import numpy as np

    from .optional import require

    librosa = require("librosa", "all", "placing lyrics on beats")
    y = np.asarray(audio, dtype=np.float32)
    if y.ndim > 1:
        y = y.mean(axis=0)
    _, frames = librosa.beat.beat_track(y=y, sr=sample_rate, units="frames")
    return [float(t) for t in librosa.frames_to_time(frames, sr=sample_rate)]


def time_on_beats(lines: Sequence[str], beats: Sequence[float], start: float = 0.0,
                  end: float | None = None) -> list[LrcLine]:
    """Put line i on beat i * k of the beats inside [start, end), k = beats // lines (at least 1).

    Equal beat strides keep the lines on a regular grid (every bar when k is 4). With fewer beats
    than lines, the lines are spread evenly instead (and a warning says so).
    """
    usable = [b for b in beats if b >= start and (end is None or b < end)]
    if len(usable) < len(lines):
        last = end if end is not None else (max(beats) if beats else start + len(lines))
        log.warning("only %d beats for %d lyric lines: spreading the lines evenly instead", len(usable), len(lines))
        return time_evenly(lines, start, max(last, start + 1e-3))
    stride = len(usable) // max(len(lines), 1)
    return [LrcLine(round(usable[i * stride], 3), line) for i, line in enumerate(lines)]


def time_plain_lyrics(text: str | Sequence[str], *, start: float = 0.0, end: float | None = None,
                      audio=None, sample_rate: int | None = None) -> list[LrcLine]:
    """Timestamps for plain lyrics: on the beats of `audio` if given, else evenly over [start, end)."""
    lines = plain_lines(text) if isinstance(text, str) else [str(s) for s in text]
    if audio is not None:
        if sample_rate is None:
            raise ValueError("placing lyrics on beats needs the clip's sample_rate")
        return time_on_beats(lines, beat_times(audio, sample_rate), start, end)
    if end is None:
        raise ValueError("timing plain lyrics evenly needs the end of the vocal span (end=seconds)")
    return time_evenly(lines, start, end)
