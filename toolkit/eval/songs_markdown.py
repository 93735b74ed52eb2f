"""The songs evaluation as markdown: what scored it, the verdicts, the figures table, the songs.

`figures_section(doc)` is shared by evaluation.md and the experiment report (toolkit.eval.report).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .aggregate import NAN_NOTE, with_counts
from .songs import GROUP_COLUMNS, SUBSETS
from .tables import fmt, markdown_table
from .verdicts import verdict_lines

TITLES = {k: t for k, t, _ in GROUP_COLUMNS}
SUBSET_TITLES = {"held_out": "held-out", "training": "training", None: "all"}


def embedder_lines(doc: dict[str, Any]) -> list[str]:
    """Which embedder scored style, what it reads, and whether it can tell the reference styles apart."""
    info = doc.get("embedding_info") or {}
    lines = []
    for role, title in (("evaluation", "Style was scored with"), ("self_consistency", "Self-consistency with")):
        e = info.get(role)
        if not e:
            continue
        what = ("a learned model" if e.get("learned") else
                "features " + ", ".join(e["features"]) if e.get("features") else "an embedding")
        line = f"- {title} `{e['name']}` ({what})"
        if role == "self_consistency":
            line += ": the conditioner's own space, so it measures how well a song reproduces its conditioning " \
                    "vector, not style"
        sep = (doc.get("reference_separation") or {}).get(role)
        if sep:
            line += (f". It sorts the references into their {sep['classes']} style classes (leave-one-out nearest "
                     f"centroid) {sep['correct']} of {sep['count']} times ({fmt(sep['accuracy'])}; chance "
                     f"{fmt(sep['chance'])}); mean cosine within a class {fmt(sep['within_cosine'])}, between "
                     f"classes {fmt(sep['between_cosine'])}")
        lines.append(line + ".")
    if not info.get("evaluation"):
        lines.append("- No embedding: no style figures or distances.")
    if info.get("warning"):
        lines.append(f"- **Warning**: {info['warning']}.")
    window = doc.get("reference_window_seconds")
    if window and info.get("evaluation"):
        lines.append(f"- References are described on their first {window:g} s (the songs' length).")
    lines.append("- ref. lyric F scores each reference recording cut to its song's length against the LRC the song "
                 "was scored against.")
    return lines + [""]


def split_lines(doc: dict[str, Any]) -> list[str]:
    held, train = doc.get("held_out_songs") or [], doc.get("training_songs") or []
    weights = doc.get("generation_weights") or []
    out = [f"- Songs generated with the checkpoint's {' and '.join(weights)} weights (their manifests' `weights`)."] \
        if weights else []
    if not (held or train):
        return out + [""] if out else []
    return out + [f"- Songs of held-out pieces (not trained on): {', '.join(f'`{k}`' for k in held) or 'none'}.",
            f"- Songs of **training** pieces (the model saw them): {', '.join(f'`{k}`' for k in train) or 'none'}.",
            ""]


def figures_table(groups: dict[str, dict[str, Any]]) -> str:
    """Rows: figures; columns: each group on held-out songs, training songs and all songs. Every mean
    carries its count and NaN count."""
    columns = []
    for group, agg in groups.items():
        for name, _ in SUBSETS:
            if (agg.get(name) or {}).get("count"):
                columns.append((group, name))
        columns.append((group, None))

    def part(group: str, subset: str | None) -> dict[str, Any]:
        return groups[group] if subset is None else groups[group].get(subset) or {}

    rows = [["songs"] + [part(g, s).get("count") for g, s in columns]]
    for key, title, higher in GROUP_COLUMNS[1:]:
        cells = []
        for g, s in columns:
            agg = part(g, s)
            if key in ("frechet", "kernel_distance"):
                cells.append(with_counts(agg.get(key), agg.get("embedded"), 0) if agg.get(key) is not None else "")
            else:
                cells.append(with_counts(agg.get(key), (agg.get("n") or {}).get(key), (agg.get("nan") or {}).get(key)))
        if any(cells):
            hint = "" if higher is None else (" (higher better)" if higher else " (lower better)")
            rows.append([title + hint] + cells)
    return markdown_table(["figure"] + [f"{g}: {SUBSET_TITLES[s]}" for g, s in columns], rows)


def comparison_lines(doc: dict[str, Any], key: str = "comparison") -> list[str]:
    """One bullet per compared figure: the best group (or a tie) and every group's value."""
    lines = []
    for figure, cmp in (doc.get(key) or {}).items():
        direction = "higher" if cmp["higher_is_better"] else "lower"
        values = ", ".join(f"{g} {fmt(v)}" for g, v in cmp["values"].items())
        verdict = f"**{cmp['best']}**" if cmp["best"] else "tie"
        lines.append(f"- {TITLES.get(figure, figure)} ({direction} is better): {verdict} ({values})")
    return lines


def figures_section(doc: dict[str, Any]) -> list[str]:
    lines = embedder_lines(doc) + split_lines(doc) + verdict_lines(doc)
    lines += [figures_table(doc.get("groups") or {}), NAN_NOTE + ". Distances: (songs embedded, 0 NaN).", ""]
    if doc.get("comparison_held_out"):
        lines += ["Which group is better, held-out songs:", ""] + comparison_lines(doc, "comparison_held_out") + [""]
    if doc.get("comparison"):
        lines += ["Which group is better, all songs (training pieces included):", ""] + comparison_lines(doc) + [""]
    for note in doc.get("notes", []):
        lines.append(f"- note: {note}")
    return lines + [""]


def songs_markdown(doc: dict[str, Any]) -> str:
    lines = ["# Song evaluation", "",
             f"Songs: `{doc['songs_dir']}`; references: `{doc.get('reference_dir') or doc.get('manifest')}` "
             f"({doc.get('reference_count', 0)} embedded); held-out pieces: `{doc.get('held_out_manifest')}`; "
             f"lyric timing tolerance: +-{doc['lyric_timing_tolerance']} s.", ""]
    lines += figures_section(doc)
    lines += ["## Songs", ""]
    song_cols = ("split", "lrc_from", "duration", "lufs", "non_silent", "style_adherence", "style_class",
                 "prompt_class", "self_consistency", "lyric_timing_f", "lyric_timing_own_f",
                 "lyric_timing_reference_f", "rtf")
    titles = {**TITLES, "split": "piece", "lrc_from": "LRC of", "style_class": "sounds like",
              "prompt_class": "prompt class"}
    lines.append(markdown_table(["song", "group"] + [titles.get(c, c) for c in song_cols],
                                [[Path(r["song"]).name, r["group"]] + [r.get(c) for c in song_cols]
                                 for r in doc["songs"]]))
    for r in doc["songs"]:
        if r.get("note"):
            lines.append(f"- note: {Path(r['song']).name} ({r['group']}): {r['note']}")
    lines.append("\nFigures are explained in docs/evaluation.md.\n")
    return "\n".join(lines)
