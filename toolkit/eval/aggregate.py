"""Means that say how many values they average and how many could not be counted.

A figure that could not be computed for a song (an embedding or PESQ failure, an unreadable LRC) is
recorded as NaN, as is a value that is not finite (the -inf LUFS of silence). Means skip them, but the
count of what was skipped travels with every mean, so a group whose failures were left out of its average
cannot look better than it is. A figure that does not apply (no LRC: no lyric timing) is simply absent
and counted nowhere.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

NAN_NOTE = ("(n, k NaN) beside a mean: n values were averaged; k songs had the figure but it could not be "
            "computed or was not finite, and were left out of the mean")


def is_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))


def summarise(values: Iterable[Any]) -> dict[str, Any]:
    """{"mean": mean of the finite values or None, "n": how many, "nan": how many present but not finite}."""
    finite, nan = [], 0
    for v in values:
        if v is None:
            continue
        if is_finite(v):
            finite.append(float(v))
        else:
            nan += 1
    return {"mean": sum(finite) / len(finite) if finite else None, "n": len(finite), "nan": nan}


def summarise_rows(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> dict[str, Any]:
    """Means of `keys` over `rows` as a flat dict ({key: mean}) with {"n": {key: n}, "nan": {key: k}} beside."""
    out: dict[str, Any] = {"count": len(rows), "n": {}, "nan": {}}
    for key in keys:
        s = summarise(r.get(key) for r in rows if key in r)
        out[key] = s["mean"]
        if s["n"] or s["nan"]:
            out["n"][key], out["nan"][key] = s["n"], s["nan"]
    return out


def with_counts(mean: Any, n: int | None, nan: int | None) -> str:
    """A table cell: '0.612 (8, 0 NaN)'; blank when nothing was averaged and nothing failed."""
    from .tables import fmt

    if mean is None and not nan:
        return ""
    return f"{fmt(mean)} ({n or 0}, {nan or 0} NaN)".lstrip()
