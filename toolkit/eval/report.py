"""The experiment report: <exp>/report.md assembled from what the recipe's stages left behind.

Read (each optional; a missing piece is named in the report with the command that makes it):
    <exp>/config.yaml                    the resolved config (train stage)
    <exp>/metrics.jsonl                  trainer log: {"step", "loss", ["valid_loss", "valid_loss_dropped"]}
    <exp>/songs/**/*.wav (+ X.json)      generated songs (generate stage)
    <exp>/report/evaluation.json         the songs evaluation (`evaluate songs --out <exp>/report`)
    <exp>/**/codec_evaluation.json       codec evaluations (`evaluate codec`), if any
Written: <exp>/report.md and pictures in <exp>/report/figures/ (linked relatively).
"""

from __future__ import annotations

import json
import os
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from ..io import atomic_write_text
from .manifests import AUDIO_SUFFIXES, read_reference_manifest
from .tables import markdown_table

REPORT_NAME = "report.md"
FIGURES = Path("report") / "figures"
VERSIONED = ("torch", "torchaudio", "numpy", "librosa", "pyloudnorm", "pesq", "pystoi", "matplotlib")


def package_versions(names: tuple[str, ...] = VERSIONED) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def machine_summary() -> dict[str, Any]:
    import toolkit

    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "toolkit": getattr(toolkit, "__version__", None),
            "git_commit": _git_commit(), **{f"{k}_version": v for k, v in package_versions().items()}}


def _git_commit() -> str | None:
    import subprocess

    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def find_evaluation(exp: Path, name: str = "evaluation.json") -> Path | None:
    preferred = exp / "report" / name
    if preferred.is_file():
        return preferred
    found = sorted(exp.rglob(name))
    return found[0] if found else None


def _rel(path: Path, start: Path) -> str:
    try:
        return os.path.relpath(path, start)
    except ValueError:
        return str(path)


def write_report(exp: str | os.PathLike, *, songs_dir: str | os.PathLike | None = None,
                 evaluation: str | os.PathLike | None = None, metrics: str | os.PathLike | None = None,
                 config: str | os.PathLike | None = None, out: str | os.PathLike | None = None,
                 max_spectrograms: int = 24, spectrogram_seconds: float | None = None, log=print) -> Path:
    """Assemble the markdown report of an experiment folder and return its path.

    Every argument defaults to the stage's usual place under `exp` (see the module docstring);
    `out` defaults to <exp>/report.md. At most `max_spectrograms` songs get a spectrogram picture.
    """
    from .codec_eval import codec_table
    from .plots import loss_curve_png, spectrogram_png
    from .songs_markdown import figures_section

    exp = Path(exp)
    if not exp.is_dir():
        raise FileNotFoundError(f"experiment folder not found: {exp}")
    out = Path(out) if out else exp / REPORT_NAME
    base = out.parent
    figures = exp / FIGURES
    songs_dir = Path(songs_dir) if songs_dir else exp / "songs"
    metrics = Path(metrics) if metrics else exp / "metrics.jsonl"
    config = Path(config) if config else exp / "config.yaml"
    evaluation = Path(evaluation) if evaluation else find_evaluation(exp)

    lines = [f"# Report: `{exp}`", "", f"Written {time.strftime('%Y-%m-%d %H:%M:%S')}.", ""]

    # What ran
    lines += ["## What ran", ""]
    stages = [("data", exp / "data"), ("features", exp / "features"), ("checkpoints", exp / "checkpoints"),
              ("songs", songs_dir), ("evaluation", evaluation)]
    lines.append(markdown_table(["stage output", "present"],
                                [[f"`{_rel(p, base)}`" if p else name, bool(p and p.exists())] for name, p in stages]))
    machine = machine_summary()
    lines.append("Machine and versions: " + ", ".join(f"{k} {v}" for k, v in machine.items() if v is not None) + ".\n")
    if config.is_file():
        lines += [f"Resolved config (`{_rel(config, base)}`):", "", "<details><summary>config.yaml</summary>", "",
                  "```yaml", config.read_text(encoding="utf-8").rstrip(), "```", "", "</details>", ""]
    else:
        lines += [f"No resolved config at `{config}` (the train stage writes it).", ""]

    # Figures
    lines += ["## Figures", ""]
    doc: dict[str, Any] | None = None
    if evaluation and evaluation.is_file():
        doc = json.loads(evaluation.read_text(encoding="utf-8"))
        lines += [f"From `{_rel(evaluation, base)}` (embedding `{doc.get('embedding')}`, "
                  f"{doc.get('reference_count', 0)} reference songs):", ""]
        lines += figures_section(doc)
    else:
        lines += ["No songs evaluation found: run `python -m toolkit.bin.evaluate songs --songs "
                  f"{songs_dir} --manifest {exp}/data/valid.jsonl --out {exp}/report`.", ""]
    for codec_json in sorted(exp.rglob("codec_evaluation.json")):
        codec_doc = json.loads(codec_json.read_text(encoding="utf-8"))
        lines += [f"Codecs (`{_rel(codec_json, base)}`):", "", codec_table(codec_doc)]

    # Training curve
    lines += ["## Training", ""]
    lines += training_figures(exp / "train_summary.json")
    if metrics.is_file():
        png = loss_curve_png(metrics, figures / "loss.png")
        if png:
            lines += [f"![loss curve]({_rel(png, base)})", ""]
        else:
            lines += [f"`{_rel(metrics, base)}` holds no step/loss lines yet.", ""]
    else:
        lines += [f"No training log at `{metrics}` (the train stage writes metrics.jsonl).", ""]

    # Songs: pictures and how to listen
    lines += ["## Songs", ""]
    songs = sorted(p for p in songs_dir.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES) if songs_dir.is_dir() else []
    if songs:
        per_song = {Path(r["song"]).resolve(): r for r in (doc or {}).get("songs", [])}
        lines += ["Listen with any audio player, e.g. `ffplay -nodisp -autoexit FILE` or `aplay FILE`; paths are "
                  "relative to this report.", ""]
        valid_manifest = exp / "data" / "valid.jsonl"
        held_out = set(read_reference_manifest(valid_manifest)) if valid_manifest.is_file() else set()
        rows = []
        for path in songs:
            row = per_song.get(path.resolve(), {})
            ref = row.get("reference_audio")
            split = row.get("split") or (("held-out" if Path(ref).stem in held_out else "training") if ref else None)
            ref = f"`{_rel(Path(ref), base)}`" if ref else row.get("reference")
            rows.append([f"`{_rel(path, base)}`", row.get("group"), row.get("duration"), row.get("lufs"),
                         row.get("style_adherence"), row.get("lyric_timing_f"), ref, split])
        lines.append(markdown_table(["file", "group", "seconds", "LUFS", "style adh.", "lyric F", "reference",
                                     "reference piece"], rows))
        for index, path in enumerate(songs):
            if index >= max_spectrograms:
                lines.append(f"({len(songs) - max_spectrograms} more songs without pictures.)\n")
                break
            rel_name = "__".join(path.relative_to(songs_dir).with_suffix("").parts)
            log(f"drawing {path.name}")
            png = spectrogram_png(path, figures / f"spec_{rel_name}.png", title=str(path.relative_to(songs_dir)),
                                  max_seconds=spectrogram_seconds)
            lines += [f"### {path.relative_to(songs_dir)}", "", f"![spectrogram]({_rel(png, base)})", "",
                      f"Listen: `{_rel(path, base)}`", ""]
    else:
        lines += [f"No songs under `{songs_dir}` (the generate stage writes them).", ""]
    lines += ["", "How each figure is computed: docs/evaluation.md.", ""]
    atomic_write_text(out, "\n".join(lines))
    return out


def training_figures(summary_path: Path) -> list[str]:
    """The trainer's three validation figures (toolkit.training.trainer writes train_summary.json)."""
    if not summary_path.is_file():
        return []
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    if "final_valid_loss" not in summary:
        return []
    first, last = summary["initial_valid_loss"], summary["final_valid_loss"]
    times = summary.get("valid_times") or []
    where = f" (flow times {', '.join(f'{t:g}' for t in times)}, as `train.valid_times` sets)" if times else ""
    out = [f"- fixed-validation loss{where}: {first:.4f} at step {summary['initial_step']}, {last:.4f} at step "
           f"{summary['final_step']} ({last / first:.2f} of the start)"]
    dropped = summary.get("final_valid_loss_dropped")
    if dropped is not None:
        groups = " and ".join(summary.get("valid_drop") or ["the `train.valid_drop` conditions"])
        out.append(f"- the same loss with {groups} dropped (same noise and times): {dropped:.4f} "
                   f"(the conditioned loss is {100 * (1 - last / dropped):.1f} % lower)")
    weights = {"ema": "the EMA weights (the ones generation loads)", "online": "the online weights (no EMA kept)"}
    out.append(f"- validated on {weights.get(summary.get('valid_weights'), 'weights the trainer did not record')}")
    return out + [""]
