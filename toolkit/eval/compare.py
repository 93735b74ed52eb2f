"""Tables and plots with one row (one point) per variant, for the comparison harness (docs/compare.md).

A row is a flat dict: the variant's `name`, its settings (`steps`, `solver`, `model`, ...) and its figures
(the group means of `toolkit.eval.songs`: `frechet`, `style_adherence`, `rtf`, ...). Missing figures stay
blank in tables and leave gaps in plots; nothing here computes a metric.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .songs import GROUP_COLUMNS
from .tables import markdown_table

TITLES = {key: title for key, title, _ in GROUP_COLUMNS}
HIGHER_IS_BETTER = {key: higher for key, _, higher in GROUP_COLUMNS}


def title_of(key: str) -> str:
    return TITLES.get(key, key.replace("_", " "))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def variant_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]],
                  drop_empty: bool = True) -> str:
    """A markdown table, one row per variant; `columns` are (key, title). Columns blank in every row are
    left out when `drop_empty`."""
    if drop_empty:
        columns = [(k, t) for k, t in columns if any(r.get(k) not in (None, "") for r in rows)]
    return markdown_table([t for _, t in columns], [[r.get(k) for k, _ in columns] for r in rows])


def best_variants(rows: Sequence[dict[str, Any]], metrics: Sequence[str]) -> dict[str, dict[str, Any]]:
    """For each metric with a known direction and values for >= 2 variants: the values and the best
    variant (None on a tie)."""
    out: dict[str, dict[str, Any]] = {}
    for key in metrics:
        higher = HIGHER_IS_BETTER.get(key)
        values = {r["name"]: _number(r.get(key)) for r in rows}
        values = {name: v for name, v in values.items() if v is not None}
        if higher is None or len(values) < 2:
            continue
        pick = max if higher else min
        best = pick(values, key=values.get)
        tie = sum(1 for v in values.values() if v == values[best]) > 1
        out[key] = {"values": values, "higher_is_better": higher, "best": None if tie else best}
    return out


def metric_vs_x_png(rows: Sequence[dict[str, Any]], x: str, metrics: Sequence[str],
                    png_path: str | os.PathLike, *, series: str | None = None, annotate: bool = False,
                    log_x: bool = False, title: str | None = None) -> Path | None:
    """One panel per metric, `x` on the horizontal axis, one point per row that has both numbers.

    `series`: rows with the same value of this key are joined by a line in order of `x` (e.g. the solver,
    so Euler and midpoint are two curves over steps); without it points stand alone. `annotate` writes
    each point's variant name beside it. Returns None when no metric has a point to draw.
    """
    from ..optional import require
    from .plots import _save

    require("matplotlib", "eval", "comparison plots")
    from matplotlib.figure import Figure

    drawable = [m for m in metrics if any(_number(r.get(x)) is not None and _number(r.get(m)) is not None
                                          for r in rows)]
    if not drawable:
        return None
    cols = min(2, len(drawable))
    nrows = math.ceil(len(drawable) / cols)
    fig = Figure(figsize=(5.5 * cols, 3.8 * nrows))
    for index, metric in enumerate(drawable):
        ax = fig.add_subplot(nrows, cols, index + 1)
        points = [r for r in rows if _number(r.get(x)) is not None and _number(r.get(metric)) is not None]
        groups: dict[str, list[dict[str, Any]]] = {}
        for r in points:
            groups.setdefault(str(r.get(series)) if series else "", []).append(r)
        for label, members in groups.items():
            members = sorted(members, key=lambda r: _number(r.get(x)))
            xs = [_number(r.get(x)) for r in members]
            ys = [_number(r.get(metric)) for r in members]
            style = "o-" if series and len(members) > 1 else "o"
            ax.plot(xs, ys, style, label=label or None, markersize=6)
            if annotate:
                for r, xv, yv in zip(members, xs, ys, strict=True):
                    ax.annotate(str(r.get("name")), (xv, yv), textcoords="offset points", xytext=(4, 4),
                                fontsize=7)
        if log_x and all(_number(r.get(x)) > 0 for r in points):
            ax.set_xscale("log", base=2 if x in ("steps", "nfe") else 10)
        higher = HIGHER_IS_BETTER.get(metric)
        hint = "" if higher is None else (" (higher is better)" if higher else " (lower is better)")
        ax.set_xlabel(title_of(x))
        ax.set_ylabel(title_of(metric))
        ax.set_title(title_of(metric) + hint, fontsize=10)
        ax.grid(True, alpha=0.3)
        if series and any(groups):
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, png_path)


# ------------------------------------------------------------------------------------------------ the report

SETTING_COLUMNS = (("name", "variant"), ("recipe", "recipe"), ("backbone", "backbone"), ("model", "model"),
                   ("steps", "steps"), ("solver", "solver"),
                   ("nfe", "NFE"), ("guidance", "CFG"), ("count", "songs"))
TIME_COLUMNS = (("train_seconds", "train s"), ("generate_seconds", "generate s"),
                ("generate_cpu_seconds", "generate CPU s"), ("generate_load", "load"), ("status", "status"))
RESULT_COLUMNS = SETTING_COLUMNS + tuple((k, t) for k, t, _ in GROUP_COLUMNS if k != "count") + TIME_COLUMNS
JSON_NAME = "report.json"
MARKDOWN_NAME = "report.md"
STEPS_PNG = "metric_vs_steps.png"
RTF_PNG = "metric_vs_rtf.png"


def series_label(row: dict[str, Any]) -> str:
    """Which curve of the steps plot a variant belongs to: its solver and the model it ran."""
    return f"{row.get('solver') or '?'} / {row.get('model')}"


def write_comparison(doc: dict[str, Any], out_dir: str | os.PathLike,
                     plot_metrics: Sequence[str] = ("frechet", "style_adherence", "lyric_timing_f", "rtf"),
                     ) -> list[Path]:
    """Write report.md, report.json and the two plots of a comparison document into `out_dir`.

    `doc` holds `variants` (rows, see the module docstring), and whatever context the caller records
    (`machine`, `versions`, `requests`, `models`, `timings`, `configs`, `notes`); everything in it goes to
    the JSON, the markdown shows the rows, the winners, the plots and the context. Returns the paths.
    """
    from ..io import atomic_write_text
    from .tables import write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [dict(r, series=r.get("series") or series_label(r)) for r in doc.get("variants", [])]
    figures: dict[str, str] = {}
    steps_png = metric_vs_x_png(rows, "steps", list(plot_metrics), out / STEPS_PNG, series="series", log_x=True,
                                title="figures against ODE steps")
    if steps_png:
        figures["metric_vs_steps"] = steps_png.name
    rtf_png = metric_vs_x_png(rows, "rtf", [m for m in plot_metrics if m != "rtf"], out / RTF_PNG, annotate=True,
                              title="figures against real-time factor (wall / audio seconds)")
    if rtf_png:
        figures["metric_vs_rtf"] = rtf_png.name
    best = best_variants(rows, [k for k, _, _ in GROUP_COLUMNS])
    doc = dict(doc, figures=figures, best=best)
    paths = [write_json(out / JSON_NAME, doc)]
    paths.append(atomic_write_text(out / MARKDOWN_NAME, comparison_markdown(doc)))
    return paths + [out / name for name in figures.values()]


def _kv(d: dict[str, Any] | None) -> str:
    return ", ".join(f"{k} {v}" for k, v in (d or {}).items() if v is not None)


def comparison_markdown(doc: dict[str, Any]) -> str:
    from .tables import fmt

    rows = doc.get("variants", [])
    lines = [f"# Comparison: {doc.get('title') or ''}".rstrip(), ""]
    if doc.get("written"):
        lines += [f"Written {doc['written']}" + (f" from `{doc['conf']}`." if doc.get("conf") else "."), ""]
    req = doc.get("requests") or {}
    if req:
        lines += [f"Every variant generated the same {req.get('count')} request(s) (`{req.get('path')}`), "
                  f"{req.get('seconds')} s each, seeds {req.get('seeds')}; all were evaluated against the same "
                  f"{doc.get('reference_count', '?')} reference songs with the `{doc.get('embedding')}` embedding.", ""]
    lines += ["## Results", "", variant_table(rows, RESULT_COLUMNS)]
    lines += ["Blank cells: figure not available (see notes). RTF = generation wall time / audio seconds "
              "(sampling + decoding, one process, model already loaded). How to read: docs/compare.md.", ""]
    if doc.get("best"):
        lines += ["Best per figure:", ""]
        for key, cmp in doc["best"].items():
            direction = "higher" if cmp["higher_is_better"] else "lower"
            values = cmp["values"]
            if cmp["best"]:
                ordered = sorted(values, key=values.get, reverse=cmp["higher_is_better"])
                verdict = f"**{cmp['best']}** {fmt(values[cmp['best']])} (next: {ordered[1]} {fmt(values[ordered[1]])})"
            elif len(set(values.values())) == 1:
                verdict = f"all equal ({fmt(next(iter(values.values())))})"
            else:
                top = (max if cmp["higher_is_better"] else min)(values.values())
                verdict = "tie: " + ", ".join(n for n, v in values.items() if v == top) + f" ({fmt(top)})"
            lines.append(f"- {title_of(key)} ({direction} is better): {verdict}")
        lines.append("")
    figures = doc.get("figures") or {}
    if figures:
        lines += ["## Plots", ""] + [f"![{name}]({path})" for name, path in figures.items()] + [""]
    lines += ["## Variants", "", variant_table(rows, (("name", "variant"), ("recipe", "recipe"), ("model", "model"),
                                                        ("train", "model training"), ("overrides", "overrides"),
                                                        ("description", "description"), ("config", "resolved config")))]
    models = doc.get("models") or []
    if models:
        lines += ["## Models", ""]
        if doc.get("common_overrides"):
            lines += ["(common) = " + " ".join(f"`{o}`" for o in doc["common_overrides"]), ""]
        lines += [variant_table(models, (("name", "model"), ("recipe", "recipe"), ("conf", "conf"),
                                         ("overrides", "overrides"), ("train_seconds", "train s"),
                                         ("train_cpu_seconds", "train CPU s"),
                                         ("final_step", "steps"), ("final_valid_loss", "valid loss"),
                                         ("checkpoint_mb", "checkpoint MB"), ("used_by", "used by")))]
    lines += ["## Machine and versions", ""]
    machine = doc.get("machine") or {}
    lines += [f"- machine: {_kv(machine)}", f"- versions: {_kv(doc.get('versions'))}"]
    lines.append("")
    timings = doc.get("timings") or {}
    if timings:
        steps = [{"step": k, **(v if isinstance(v, dict) else {"wall": v})} for k, v in timings.items()]
        lines += ["Steps (the latest run of each; wall and CPU seconds of the whole CLI call, start-up included; "
                  "1-minute load average when it started):", "",
                  variant_table(steps, (("step", "step"), ("wall", "wall s"), ("cpu", "CPU s"), ("load", "load")))]
    runs = doc.get("runs") or []
    if runs:
        lines += ["Runs of this experiment (wall and CPU seconds until the report; load average over 1, 5, 15 min "
                  "before and after, counting other users' jobs):", "",
                  variant_table(runs, (("started", "started"), ("stages", "stages"), ("wall_seconds", "wall s"),
                                       ("cpu_seconds", "CPU s"), ("load_before", "load before"),
                                       ("load_after", "load after"), ("failed", "failed")))]
    notes = doc.get("notes") or []
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)
