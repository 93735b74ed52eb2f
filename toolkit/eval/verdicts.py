"""Plain verdicts: does the conditioned model beat its controls, on held-out songs first?

Each verdict compares two group means (or a mean and chance) on the songs of held-out pieces when there
are any, else on all songs (and says so), with the paired count beside it: on how many pieces the first
song beat the second. A verdict is "yes" only when the first mean is better; "no" is printed as plainly.
With a handful of songs a small difference is noise: read the paired count and the NaN counts too.
"""

from __future__ import annotations

from typing import Any

from .aggregate import is_finite
from .tables import fmt

# (first group, its figure, second group or None for chance, its figure, higher is better, what is claimed)
CLAIMS: tuple[tuple[str, str, str | None, str, bool, str], ...] = (
    ("reconstructed", "style_class_match", None, "chance", True,
     "the judge: the codec's reconstructions of the references are placed in their own style class more often "
     "than chance (else no style figure of decoded songs means much)"),
    ("full", "style_adherence", "dropped", "style_adherence", True,
     "style adherence: conditioned songs beat the same requests with lyrics and style dropped"),
    ("full", "style_class_match", None, "chance", True,
     "style class: conditioned songs sound like their prompt's style class more often than chance"),
    ("full", "style_class_match", "dropped", "style_class_match", True,
     "style class: conditioned songs match their prompt's class more often than dropped-condition songs"),
    ("full", "lyric_timing_f", "mismatched", "lyric_timing_own_f", True,
     "lyric timing: conditioned songs fit their LRC better than songs made for another LRC fit it (the floor)"),
    ("full", "lyric_timing_f", "dropped", "lyric_timing_f", True,
     "lyric timing: conditioned songs fit their LRC better than songs generated without lyrics"),
    ("mismatched", "lyric_timing_f", "mismatched", "lyric_timing_own_f", True,
     "mismatched lyrics: songs follow the LRC they were given more than their prompt piece's own LRC"),
    ("full", "frechet", "dropped", "frechet", False,
     "Frechet distance: conditioned songs are closer to the references than dropped-condition songs"),
)


def _paired(rows: list[dict[str, Any]], subset: str | None, a: str, ka: str, b: str, kb: str,
            higher: bool) -> tuple[int, int] | None:
    """(wins of a over b, pairs) over pieces that have both songs with both figures finite."""
    def values(group: str, key: str) -> dict[str, float]:
        return {r["reference"]: r[key] for r in rows if r["group"] == group and r.get("reference")
                and (subset is None or r.get("split") == subset) and is_finite(r.get(key))}

    va, vb = values(a, ka), values(b, kb)
    common = sorted(set(va) & set(vb))
    if not common:
        return None
    wins = sum((va[k] > vb[k]) if higher else (va[k] < vb[k]) for k in common)
    return wins, len(common)


def verdicts(doc: dict[str, Any]) -> list[dict[str, Any]]:
    from .songs import GROUP_COLUMNS

    titles = {k: t for k, t, _ in GROUP_COLUMNS}
    groups = doc.get("groups") or {}
    held = any((g.get("held_out") or {}).get("count") for g in groups.values())
    subset, label = ("held_out", "held-out") if held else (None, "all")
    chance = next((s["chance"] for s in (doc.get("reference_separation") or {}).values() if s), None)
    out = []
    for a, ka, b, kb, higher, claim in CLAIMS:
        ga = groups.get(a)
        gb = groups.get(b) if b else None
        if ga is None or (b and gb is None):
            continue
        sa = ga.get(subset) if subset else ga
        sb = (gb.get(subset) if subset else gb) if gb else None
        va = (sa or {}).get(ka)
        vb = (sb or {}).get(kb) if b else chance
        if va is None or vb is None:
            continue
        holds = va > vb if higher else va < vb
        paired = _paired(doc.get("songs") or [], "held-out" if held else None, a, ka, b, kb, higher) if b else None
        other = f"{b} {titles.get(kb, kb)}" if b else "chance"
        detail = f"{a} {titles.get(ka, ka)} {fmt(va)} vs {other} {fmt(vb)}"
        if paired:
            detail += f"; better on {paired[0]} of {paired[1]} pieces"
        out.append({"claim": claim, "group": a, "songs": label, "holds": bool(holds), "first": va, "second": vb,
                    "paired_wins": paired[0] if paired else None, "pairs": paired[1] if paired else None,
                    "detail": detail})
    return out


def verdict_lines(doc: dict[str, Any]) -> list[str]:
    items = doc.get("verdicts") or []
    if not items:
        return []
    label = items[0]["songs"]
    head = ("On the songs of held-out pieces (not trained on):" if label == "held-out" else
            "**No held-out songs**: these verdicts are on all songs, training pieces included, and flatter "
            "the model:")
    lines = [head, ""]
    for v in items:
        mark = "yes" if v["holds"] else "**NO**"
        lines.append(f"- {mark}: {v['claim']} ({v['detail']})")
    model = [v for v in items if v.get("group") == "full"]
    failed = [v for v in model if not v["holds"]]
    if failed:
        lines += ["", f"The conditioned model does **not** beat {len(failed)} of its {len(model)} controls on "
                      f"{label} songs."]
    if any(v.get("group") == "reconstructed" and not v["holds"] for v in items):
        lines += ["", "The evaluation space does **not** recognise the style of the references' own codec "
                      "reconstructions: its style figures say little about decoded songs."]
    return lines + [""]
