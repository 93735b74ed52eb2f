"""The line-by-line view of an LRC editor: each line of the text with what the LRC format and the recipe's
validation say about it (malformed or untimed, out of order, after the end of the song, nothing voiceable, cut).

The format's findings come from toolkit.lrc (the parser generation uses); the rest are the LineNotes the recipe's
validator returned (`Checked.notes`, or `RequestError.notes` when it refused the request), matched to the lines
by time and text. Notes that match no line (lyrics timed from plain text) get rows of their own.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

from ..lrc import Lrc, LrcError, format_time, parse_lrc
from ..models.requests import LineNote

LEVELS = ("ok", "info", "warning", "error")


@dataclass
class Row:
    number: int | None          # the line number in the editor (None: a line validation made, e.g. timed lyrics)
    source: str
    time: float | None
    level: str
    status: str
    message: str


def _worse(a: str, b: str) -> str:
    return a if LEVELS.index(a) >= LEVELS.index(b) else b


@dataclass
class _Skipped:
    reason: str


def _read(raw: str) -> Lrc | LrcError | _Skipped:
    """A line as generation reads it: parsed, refused (LrcError), or skipped with a log warning (no timestamp)."""
    try:
        return parse_lrc(raw, strict=True)
    except LrcError as err:
        try:
            parse_lrc(raw)
        except LrcError:
            return err
        return _Skipped(err.reason)


def _offset(parsed: Sequence[Lrc | LrcError | _Skipped]) -> float:
    """The [offset:] of the text (the last one wins, as in toolkit.lrc), in seconds."""
    offset = 0.0
    for lrc in parsed:
        if isinstance(lrc, Lrc) and "offset" in lrc.tags:
            try:
                offset = int(lrc.tags["offset"].strip()) / 1000.0
            except ValueError:
                pass
    return offset


def lrc_rows(text: str, notes: Sequence[LineNote] = ()) -> list[Row]:
    """One row per non-blank line of `text` (plus rows for notes that match no line)."""
    pending = list(notes)
    lines = [(number, raw) for number, raw in enumerate((text or "").lstrip("\ufeff").splitlines(), start=1)
             if raw.strip()]
    read = [_read(raw) for _, raw in lines]
    offset = _offset(read)
    rows: list[Row] = []
    last_time: float | None = None
    for (number, raw), parsed in zip(lines, read, strict=True):
        if isinstance(parsed, LrcError):
            rows.append(Row(number, raw, None, "error", "not read", parsed.reason))
            continue
        if isinstance(parsed, _Skipped):
            rows.append(Row(number, raw, None, "warning", "skipped", f"{parsed.reason}: not sung"))
            continue
        if not parsed.lines:
            rows.append(Row(number, raw, None, "info", "tag", "a metadata tag"))
            continue
        times = [line.time - offset for line in parsed.lines]
        row = Row(number, raw, times[0], "ok", "", "")
        if last_time is not None and times[0] < last_time:
            row.level, row.status = "warning", "out of order"
            row.message = (f"its time {format_time(max(times[0], 0.0))} is before the line above "
                           f"({format_time(last_time)}): it is sung at its own time, not in this place")
        last_time = max(times[0], last_time if last_time is not None else times[0])
        for line in parsed.lines:
            for note in [n for n in pending if _matches(n, line.time - offset, line.text)]:
                pending.remove(note)
                row.level = _worse(row.level, note.level)
                row.status = ", ".join(s for s in (row.status, note.status) if s)
                row.message = "; ".join(s for s in (row.message, note.message) if s)
        rows.append(row)
    rows += [Row(None, f"[{format_time(n.time)}]{n.text}" if n.time is not None else n.text, n.time, n.level,
                 n.status, n.message) for n in pending]
    return rows


def _matches(note: LineNote, time: float, text: str) -> bool:
    return note.text == text and note.time is not None and abs(note.time - time) < 5e-4


def summary(rows: Sequence[Row]) -> str:
    counts: dict[str, int] = {}
    for row in rows:
        for status in (row.status or "read").split(", "):
            counts[status] = counts.get(status, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in counts.items())


def rows_html(rows: Sequence[Row], title: str = "Lines") -> str:
    """The rows as a small table for the page (escaped; colours by level in the app's stylesheet)."""
    if not rows:
        return ""
    body = []
    for row in rows:
        number = "" if row.number is None else str(row.number)
        time = "" if row.time is None else format_time(max(row.time, 0.0))
        body.append(f'<tr class="tk-{row.level}"><td>{number}</td><td>{time}</td>'
                    f"<td>{html.escape(row.source.strip())}</td><td><b>{html.escape(row.status)}</b> "
                    f"{html.escape(row.message)}</td></tr>")
    return (f'<div class="tk-lines"><div class="tk-lines-title">{html.escape(title)}: {html.escape(summary(rows))}'
            '</div><table><thead><tr><th>#</th><th>time</th><th>line</th><th>what happens to it</th></tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")
