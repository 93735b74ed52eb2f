"""Evaluate a folder of generated songs against the reference set, group by group.

Per song: duration, levels (LUFS, clipping, true peak, non-silence), real-time factor and peak memory
(from the generation manifest), style adherence (cosine of prompt and song embeddings), lyric timing
F-measure (and the same measure on the reference recording). Per group: means of those, plus the
Frechet and kernel distances between the group's embeddings and the reference set's.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .manifests import (AUDIO_SUFFIXES, GeneratedSong, ReferenceItem, find_songs, match_reference,
                        read_generated_song, read_reference_manifest)
from .tables import fmt, markdown_table, write_json

JSON_NAME = "evaluation.json"
MARKDOWN_NAME = "evaluation.md"

# Group-level figures: (key, column title, True if higher is better / False if lower / None if neither).
GROUP_COLUMNS: tuple[tuple[str, str, bool | None], ...] = (
    ("count", "songs", None),
    ("frechet", "Frechet dist.", False),
    ("kernel_distance", "kernel dist.", False),
    ("style_adherence", "style adherence", True),
    ("lyric_timing_f", "lyric timing F", True),
    ("lyric_timing_reference_f", "ref. lyric F", None),
    ("lyric_timing_chance_f", "chance F", None),
    ("lufs", "LUFS", None),
    ("clipping_fraction", "clipped", False),
    ("true_peak_dbfs", "true peak dBFS", None),
    ("non_silent", "non-silent", True),
    ("duration", "seconds", None),
    ("rtf", "RTF", False),
    ("peak_rss_mb", "peak MiB", False),
)
# Figures whose winner the report names when several groups are compared.
COMPARED = ("style_adherence", "lyric_timing_f", "frechet", "kernel_distance")


def _mean(values: Sequence[float | None]) -> float | None:
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return float(np.mean(finite)) if finite else None


def _add_note(row: dict[str, Any], note: str) -> None:
    row["note"] = f"{row['note']}; {note}" if row.get("note") else note


def song_figures(song: GeneratedSong, reference: ReferenceItem | None, embedder: Any, tolerance: float,
                 reference_timing: dict[str, dict]) -> tuple[dict[str, Any], np.ndarray | None]:
    """Figures of one song, and its embedding (None without an embedder)."""
    from ..audio import load_audio
    from .loudness import level_figures
    from .timing import lyric_timing

    wav, sr = load_audio(song.path)
    row: dict[str, Any] = {"song": str(song.path), "group": song.group,
                           "reference": reference.key if reference else None,
                           "reference_audio": str(reference.audio) if reference and reference.audio else None}
    row["duration"] = wav.shape[-1] / sr
    row.update(level_figures(wav, sr))
    seconds = song.seconds or row["duration"]
    row["rtf"] = song.wall_seconds / seconds if song.wall_seconds is not None and seconds else None
    row["peak_rss_mb"] = song.peak_rss_mb
    embedding = None
    if embedder is not None and row["non_silent"]:
        try:
            embedding = embedder.embed_audio(song.path)
        except ValueError as err:  # the embedder refuses the audio (e.g. shorter than its shortest clip): the rest
            # of the song's figures still count
            _add_note(row, f"no embedding, so no style adherence or distances: {err}")
        style = song.style if song.style is not None else (reference.style if reference else None)
        prompt = embedder.embed_style(style) if embedding is not None else None
        if prompt is not None:
            from .distances import cosine_similarity

            row["style_adherence"] = cosine_similarity(prompt, embedding)
    lrc = song.lrc or (reference.lrc if reference else None)
    if lrc:
        from ..lrc import LrcError

        try:
            timing = lyric_timing(wav, sr, lrc, tolerance)
        except LrcError as err:
            _add_note(row, f"LRC not readable, no lyric timing: {err}")
            return row, embedding
        for key in ("f", "precision", "recall", "chance_f"):
            if key in timing:
                row[f"lyric_timing_{key}"] = timing[key]
        if reference is not None and reference.audio is not None and reference.lrc and reference.audio.is_file():
            cache_key = f"{reference.audio}|{tolerance}"
            if cache_key not in reference_timing:
                ref_wav, ref_sr = load_audio(reference.audio)
                try:
                    reference_timing[cache_key] = lyric_timing(ref_wav, ref_sr, reference.lrc, tolerance)
                except LrcError:
                    reference_timing[cache_key] = {}
            if "f" in reference_timing[cache_key]:
                row["lyric_timing_reference_f"] = reference_timing[cache_key]["f"]
    return row, embedding


def reference_audio(references: dict[str, ReferenceItem], reference_dir: str | os.PathLike | None) -> list[Path]:
    if reference_dir is not None:
        folder = Path(reference_dir)
        if not folder.is_dir():
            raise FileNotFoundError(f"--reference-dir: folder not found: {folder}")
        return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    unique = {id(item): item for item in references.values()}
    return sorted({item.audio for item in unique.values() if item.audio is not None and item.audio.is_file()})


def evaluate_songs(songs_dir: str | os.PathLike, manifest: str | os.PathLike | Sequence[str | os.PathLike] | None,
                   out_dir: str | os.PathLike,
                   reference_dir: str | os.PathLike | None = None, embedding: str = "features",
                   tolerance: float = 0.5, embedder: Any = None, log=print) -> dict[str, Any]:
    """Evaluate every song under `songs_dir`; write `evaluation.json` and `evaluation.md` into `out_dir`.

    `manifest`: one reference manifest or several (their items are merged; the first wins on a clash).
    `embedding`: features | mulan:PATH | clap:PATH | none (skips distances and style adherence);
    `embedder`: an already built Embedder (overrides `embedding`, for tests and notebooks).
    Returns the JSON document.
    """
    from .distances import frechet_distance, kernel_distance
    from .embeddings import build_embedder
    from .machine import machine_info

    started = time.time()
    songs_dir, out_dir = Path(songs_dir), Path(out_dir)
    if reference_dir is not None and not Path(reference_dir).is_dir():
        raise FileNotFoundError(f"--reference-dir: folder not found: {reference_dir}")
    manifests = [manifest] if isinstance(manifest, (str, os.PathLike)) else list(manifest or [])
    references: dict[str, ReferenceItem] = {}
    for path in manifests:
        for key, item in read_reference_manifest(path).items():
            references.setdefault(key, item)
    songs = [read_generated_song(p, songs_dir) for p in find_songs(songs_dir)]
    if embedder is None and embedding != "none":
        embedder = build_embedder(embedding)
    embedding_name = getattr(embedder, "name", "none")
    notes: list[str] = []

    rows, embeddings, reference_timing = [], {}, {}
    for song in songs:
        log(f"evaluating {song.path}")
        row, emb = song_figures(song, match_reference(song, references), embedder, tolerance, reference_timing)
        rows.append(row)
        if emb is not None:
            embeddings.setdefault(song.group, []).append(emb)

    ref_embeddings: np.ndarray | None = None
    if embedder is not None:
        ref_paths = reference_audio(references, reference_dir)
        if ref_paths:
            log(f"embedding {len(ref_paths)} reference songs")
            ref_embeddings = np.stack([embedder.embed_audio(p) for p in ref_paths])
        else:
            notes.append("no reference audio (neither --reference-dir nor audio paths in --manifest): "
                         "no Frechet / kernel distances")

    groups: dict[str, dict[str, Any]] = {}
    for group in sorted({r["group"] for r in rows}, key=lambda g: (g != "full", g)):
        members = [r for r in rows if r["group"] == group]
        agg: dict[str, Any] = {"count": len(members)}
        for key, _, _ in GROUP_COLUMNS[1:]:
            if key in ("frechet", "kernel_distance"):
                continue
            agg[key] = _mean([r.get(key) for r in members])
        embs = embeddings.get(group, [])
        if ref_embeddings is not None and embs:
            agg["frechet"] = frechet_distance(np.stack(embs), ref_embeddings)
            if len(embs) >= 2 and len(ref_embeddings) >= 2:
                agg["kernel_distance"] = kernel_distance(np.stack(embs), ref_embeddings)
            else:
                notes.append(f"group '{group}': the kernel distance needs >= 2 songs and >= 2 references")
        groups[group] = agg

    comparison = compare_groups(groups)
    doc = {
        "kind": "songs",
        "songs_dir": str(songs_dir),
        "manifest": ", ".join(str(m) for m in manifests) or None,
        "reference_dir": str(reference_dir) if reference_dir else None,
        "embedding": embedding_name,
        "reference_count": 0 if ref_embeddings is None else int(len(ref_embeddings)),
        "lyric_timing_tolerance": tolerance,
        "groups": groups,
        "comparison": comparison,
        "songs": rows,
        "notes": notes,
        "machine": machine_info(),
        "elapsed_seconds": time.time() - started,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / JSON_NAME, doc)
    from ..io import atomic_write_text

    atomic_write_text(out_dir / MARKDOWN_NAME, songs_markdown(doc))
    return doc


def compare_groups(groups: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """For each compared figure present in >= 2 groups: the values and the best group."""
    out: dict[str, dict[str, Any]] = {}
    higher = {k: h for k, _, h in GROUP_COLUMNS}
    for key in COMPARED:
        values = {g: agg.get(key) for g, agg in groups.items() if agg.get(key) is not None}
        if len(values) < 2:
            continue
        pick = max if higher[key] else min
        best = pick(values, key=values.get)
        tie = sum(1 for v in values.values() if v == values[best]) > 1
        out[key] = {"values": values, "higher_is_better": bool(higher[key]), "best": None if tie else best}
    return out


def songs_markdown(doc: dict[str, Any]) -> str:
    titles = {k: t for k, t, _ in GROUP_COLUMNS}
    lines = ["# Song evaluation", "",
             f"Songs: `{doc['songs_dir']}`; references: `{doc.get('reference_dir') or doc.get('manifest')}` "
             f"({doc.get('reference_count', 0)} embedded); embedding: `{doc['embedding']}`; "
             f"lyric timing tolerance: +-{doc['lyric_timing_tolerance']} s.", ""]
    lines.append(groups_table(doc["groups"]))
    if doc["comparison"]:
        lines += ["Which group is better:", ""] + comparison_lines(doc) + [""]
    lines += ["## Songs", ""]
    song_cols = ("duration", "lufs", "clipping_fraction", "true_peak_dbfs", "non_silent", "style_adherence",
                 "lyric_timing_f", "lyric_timing_reference_f", "rtf", "peak_rss_mb")
    lines.append(markdown_table(["song", "group"] + [titles.get(c, c) for c in song_cols],
                                [[Path(r["song"]).name, r["group"]] + [r.get(c) for c in song_cols]
                                 for r in doc["songs"]]))
    for note in doc.get("notes", []) + [f"{Path(r['song']).name}: {r['note']}" for r in doc["songs"] if r.get("note")]:
        lines.append(f"- note: {note}")
    lines.append("\nFigures are explained in docs/evaluation.md.\n")
    return "\n".join(lines)


def comparison_lines(doc: dict[str, Any]) -> list[str]:
    """One bullet per compared figure: the best group (or a tie) and every group's value."""
    titles = {k: t for k, t, _ in GROUP_COLUMNS}
    lines = []
    for key, cmp in doc.get("comparison", {}).items():
        direction = "higher" if cmp["higher_is_better"] else "lower"
        values = ", ".join(f"{g} {fmt(v)}" for g, v in cmp["values"].items())
        verdict = f"**{cmp['best']}**" if cmp["best"] else "tie"
        lines.append(f"- {titles.get(key, key)} ({direction} is better): {verdict} ({values})")
    return lines


def groups_table(groups: dict[str, dict[str, Any]]) -> str:
    present = [(k, t) for k, t, _ in GROUP_COLUMNS if any(agg.get(k) is not None for agg in groups.values())]
    return markdown_table(["group"] + [t for _, t in present],
                          [[g] + [agg.get(k) for k, _ in present] for g, agg in groups.items()])
