"""Evaluate a folder of generated songs against the reference set, group by group, held-out songs first.

Per song: duration, levels (LUFS, clipping, true peak, non-silence), real-time factor and peak memory
(from the generation manifest), style adherence (cosine of prompt and song in the evaluation space),
style class match (does the song's nearest reference style class equal its prompt's?), self-consistency
(the same cosine in the conditioner's own space, when asked for), lyric timing F against the LRC the song
was given, against its own piece's LRC when that differs (the mismatched-lyrics control), and the same
measure on the reference recording cut to the song's length.

Per group (`full`, `dropped`, `mismatched`, ...) and per subset (songs of held-out pieces, songs of
training pieces, all): means with their NaN counts (toolkit.eval.aggregate), plus the Frechet and kernel
distances between the songs' and the references' embeddings, the references cut to the songs' length.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .aggregate import summarise_rows
from .embeddings import DEFAULT_EMBEDDING
from .manifests import (
    AUDIO_SUFFIXES,
    GeneratedSong,
    ReferenceItem,
    find_songs,
    match_reference,
    read_generated_song,
    read_reference_manifest,
)
from .tables import write_json

JSON_NAME = "evaluation.json"
MARKDOWN_NAME = "evaluation.md"
NAN = float("nan")

# Group-level figures: (key, column title, True if higher is better / False if lower / None if neither).
GROUP_COLUMNS: tuple[tuple[str, str, bool | None], ...] = (
    ("count", "songs", None),
    ("frechet", "Frechet dist.", False),
    ("kernel_distance", "kernel dist.", False),
    ("style_adherence", "style adherence", True),
    ("style_class_match", "style class match", True),
    ("self_consistency", "self-consistency (conditioner space)", None),
    ("lyric_timing_f", "lyric timing F", True),
    ("lyric_timing_own_f", "lyric F vs own piece's LRC", None),
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
DISTANCES = ("frechet", "kernel_distance")
SONG_KEYS = tuple(k for k, _, _ in GROUP_COLUMNS if k != "count" and k not in DISTANCES)
# Figures whose winner the report names when several groups are compared.
COMPARED = ("style_adherence", "style_class_match", "lyric_timing_f", "frechet", "kernel_distance")
HELD_OUT, TRAINING = "held-out", "training"
SUBSETS = (("held_out", HELD_OUT), ("training", TRAINING))
GROUP_ORDER = {"full": 0, "dropped": 1, "mismatched": 2, "reconstructed": 3}
CEILINGS = ("reconstructed",)  # groups that bound the figures (the references through the codec), never "better"


def _add_note(row: dict[str, Any], note: str) -> None:
    row["note"] = f"{row['note']}; {note}" if row.get("note") else note


def _line_starts(lrc: str, seconds: float) -> list[float]:
    from .timing import lrc_line_starts

    return [s for s in lrc_line_starts(lrc) if 0.0 <= s < seconds]


def song_figures(song: GeneratedSong, reference: ReferenceItem | None, tolerance: float,
                 reference_timing: dict[str, dict]) -> dict[str, Any]:
    """Every figure of one song that needs no embedding. A figure that applies but cannot be computed
    is NaN (counted beside the group mean) with a note saying why."""
    from ..audio import load_audio
    from ..lrc import LrcError
    from .loudness import level_figures
    from .timing import lyric_timing

    wav, sr = load_audio(song.path)
    row: dict[str, Any] = {"song": str(song.path), "group": song.group,
                           "reference": reference.key if reference else None,
                           "reference_audio": str(reference.audio) if reference and reference.audio else None,
                           "split": reference.split if reference else None}
    if song.lrc_from:
        row["lrc_from"] = song.lrc_from
    if song.manifest.get("weights"):
        row["weights"] = song.manifest["weights"]  # "ema" or "model": which weights of the checkpoint generated it
    row["duration"] = wav.shape[-1] / sr
    row.update(level_figures(wav, sr))
    seconds = song.seconds or row["duration"]
    row["rtf"] = song.wall_seconds / seconds if song.wall_seconds is not None and seconds else None
    row["peak_rss_mb"] = song.peak_rss_mb
    own = reference.lrc if reference else None
    lrc = song.lrc or own
    if not lrc:
        return row
    try:
        timing = lyric_timing(wav, sr, lrc, tolerance)
        differs = bool(own) and _line_starts(own, row["duration"]) != _line_starts(lrc, row["duration"])
        own_timing = lyric_timing(wav, sr, own, tolerance) if differs else None
    except LrcError as err:
        _add_note(row, f"LRC not readable, no lyric timing: {err}")
        row["lyric_timing_f"] = NAN
        return row
    for key in ("f", "precision", "recall", "chance_f"):
        if key in timing:
            row[f"lyric_timing_{key}"] = timing[key]
    if own_timing and "f" in own_timing:
        row["lyric_timing_own_f"] = own_timing["f"]
    if timing and reference is not None and reference.audio is not None and reference.audio.is_file():
        # The reference recording cut to the song's length, scored against the LRC the song was scored against.
        key = f"{reference.audio}|{row['duration']:.3f}|{tolerance}|{hash(lrc)}"
        if key not in reference_timing:
            ref_wav, ref_sr = load_audio(reference.audio, duration=row["duration"])
            reference_timing[key] = lyric_timing(ref_wav, ref_sr, lrc, tolerance)
        if "f" in reference_timing[key]:
            row["lyric_timing_reference_f"] = reference_timing[key]["f"]
    return row


def reference_audio(references: dict[str, ReferenceItem], reference_dir: str | os.PathLike | None) -> list[Path]:
    if reference_dir is not None:
        folder = Path(reference_dir)
        if not folder.is_dir():
            raise FileNotFoundError(f"--reference-dir: folder not found: {folder}")
        return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    unique = {id(item): item for item in references.values()}
    return sorted({item.audio for item in unique.values() if item.audio is not None and item.audio.is_file()})


def _read_references(manifests: Sequence[str | os.PathLike], held_out: Sequence[str | os.PathLike]
                     ) -> dict[str, ReferenceItem]:
    references: dict[str, ReferenceItem] = {}
    for path in manifests:
        for key, item in read_reference_manifest(path).items():
            references.setdefault(key, item)
    if held_out:
        held = {k for path in held_out for k in read_reference_manifest(path)}
        for item in {id(i): i for i in references.values()}.values():
            item.split = HELD_OUT if item.key in held or (item.audio is not None and item.audio.stem in held) \
                else TRAINING
    return references


def evaluate_songs(songs_dir: str | os.PathLike, manifest: str | os.PathLike | Sequence[str | os.PathLike] | None,
                   out_dir: str | os.PathLike,
                   reference_dir: str | os.PathLike | None = None, embedding: str = DEFAULT_EMBEDDING,
                   tolerance: float = 0.5, embedder: Any = None, log=print, *,
                   held_out: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
                   self_consistency: str | None = None, self_embedder: Any = None,
                   reference_window: bool = True) -> dict[str, Any]:
    """Evaluate every song under `songs_dir`; write `evaluation.json` and `evaluation.md` into `out_dir`.

    `manifest`: one reference manifest or several (their items are merged; the first wins on a clash).
    `held_out`: manifest(s) of the pieces the model was not trained on (e.g. valid.jsonl): their songs form
    the held-out columns, every other matched song is a training song. `embedding`: the evaluation space,
    descriptors | features | mulan:PATH | clap:PATH | none (skips distances and style figures);
    `embedder`: an already built Embedder (overrides `embedding`). `self_consistency`: the conditioner's
    space (features | mulan:PATH; or `self_embedder`), reported as self-consistency only.
    `reference_window`: describe the references on the songs' length (their first seconds), as the songs are.
    Returns the JSON document.
    """
    from .embeddings import build_embedder
    from .machine import machine_info

    started = time.time()
    songs_dir, out_dir = Path(songs_dir), Path(out_dir)
    if reference_dir is not None and not Path(reference_dir).is_dir():
        raise FileNotFoundError(f"--reference-dir: folder not found: {reference_dir}")
    as_list = lambda m: [m] if isinstance(m, (str, os.PathLike)) else list(m or [])  # noqa: E731
    manifests, held_out = as_list(manifest), as_list(held_out)
    references = _read_references(manifests, held_out)
    songs = [read_generated_song(p, songs_dir) for p in find_songs(songs_dir)]
    if embedder is None and embedding != "none":
        embedder = build_embedder(embedding)
    if self_embedder is None and self_consistency not in (None, "", "none"):
        self_embedder = build_embedder(self_consistency)
    notes: list[str] = []
    if not held_out:
        notes.append("no held-out manifest given (--held-out): which songs come from training pieces is unknown, "
                     "so there are no held-out columns")

    rows, matched, reference_timing = [], [], {}
    for song in songs:
        log(f"evaluating {song.path}")
        reference = match_reference(song, references)
        rows.append(song_figures(song, reference, tolerance, reference_timing))
        matched.append(reference)

    ref_paths = reference_audio(references, reference_dir)
    durations = [r["duration"] for r in rows]
    window = round(statistics.median(durations), 2) if durations and reference_window else None
    labels = _labels_of(ref_paths, manifests)
    spaces: dict[str, Any] = {}
    from .style_space import embed_space

    if embedder is not None:
        spaces["evaluation"] = embed_space(embedder, songs, rows, matched, ref_paths, labels, window, notes, log,
                                           prefix="")
    if self_embedder is not None:
        spaces["self_consistency"] = embed_space(self_embedder, songs, rows, matched, ref_paths, labels, window,
                                                 notes, log, prefix="self_consistency")

    groups: dict[str, dict[str, Any]] = {}
    ev = spaces.get("evaluation")
    for group in sorted({r["group"] for r in rows}, key=lambda g: (GROUP_ORDER.get(g, len(GROUP_ORDER)), g)):
        index = [i for i, r in enumerate(rows) if r["group"] == group]
        groups[group] = _subset_figures(rows, index, ev, notes, group)
        for name, split in SUBSETS:
            chosen = [i for i in index if rows[i].get("split") == split]
            groups[group][name] = _subset_figures(rows, chosen, ev, None, group) if chosen else {"count": 0}

    doc = {
        "kind": "songs",
        "songs_dir": str(songs_dir),
        "manifest": ", ".join(str(m) for m in manifests) or None,
        "held_out_manifest": ", ".join(str(m) for m in held_out) or None,
        "reference_dir": str(reference_dir) if reference_dir else None,
        "embedding": getattr(embedder, "name", "none"),
        "embedding_info": _embedder_info(embedder, self_embedder),
        "self_consistency": getattr(self_embedder, "name", None),
        "reference_count": len(ev["references"]) if ev else 0,
        "reference_window_seconds": window,
        "reference_separation": {k: s.get("separation") for k, s in spaces.items()},
        "lyric_timing_tolerance": tolerance,
        "generation_weights": sorted({str(r["weights"]) for r in rows if r.get("weights")}),
        "held_out_songs": sorted({r["reference"] for r in rows if r.get("split") == HELD_OUT}),
        "training_songs": sorted({r["reference"] for r in rows if r.get("split") == TRAINING}),
        "groups": groups,
        "comparison": compare_groups(groups),
        "comparison_held_out": compare_groups({g: a["held_out"] for g, a in groups.items()
                                               if a["held_out"].get("count")}),
        "songs": rows,
        "notes": notes,
        "machine": machine_info(),
        "elapsed_seconds": time.time() - started,
    }
    from .verdicts import verdicts

    doc["verdicts"] = verdicts(doc)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / JSON_NAME, doc)
    from ..io import atomic_write_text
    from .songs_markdown import songs_markdown

    atomic_write_text(out_dir / MARKDOWN_NAME, songs_markdown(doc))
    return doc


def _labels_of(ref_paths: Sequence[Path], manifests: Sequence[str | os.PathLike]) -> list[str | None]:
    """The style class of each reference file (toolkit.eval.style_classes), None where there is none."""
    from .manifests import raw_entries
    from .style_classes import reference_labels

    entries = raw_entries(manifests)
    labels = reference_labels({k: e for k, (e, _) in entries.items()})
    by_audio = {audio.resolve(): labels.get(k) for k, (_, audio) in entries.items() if audio is not None}
    return [by_audio.get(Path(p).resolve()) for p in ref_paths]


def _embedder_info(embedder: Any, self_embedder: Any) -> dict[str, Any]:
    def info(e: Any) -> dict[str, Any] | None:
        if e is None:
            return None
        return {"name": e.name, "features": list(e.features) if getattr(e, "features", None) else None,
                "learned": bool(getattr(e, "learned", False))}

    out = {"evaluation": info(embedder), "self_consistency": info(self_embedder)}
    if embedder is not None and self_embedder is not None and embedder.name == self_embedder.name:
        out["warning"] = ("the evaluation embedding is the conditioner's own space: its style figures measure "
                          "self-consistency, not style")
    elif embedder is not None and (embedder.name == "features" or embedder.name.startswith("mulan:")):
        out["warning"] = (f"`{embedder.name}` is a style conditioner's space (style_features or MuQ-MuLan): for a "
                          "model conditioned with it, the style figures measure self-consistency, not style")
    return out


def _subset_figures(rows: list[dict[str, Any]], index: list[int], space: dict[str, Any] | None,
                    notes: list[str] | None, group: str) -> dict[str, Any]:
    """Means (with counts) of the chosen rows, and their distances to the references."""
    from .distances import frechet_distance, kernel_distance

    agg = summarise_rows([rows[i] for i in index], SONG_KEYS)
    if not space or space.get("references") is None:
        return agg
    embs = [space["songs"][i] for i in index if i in space["songs"]]
    refs = space["references"]
    if embs:
        agg["frechet"] = frechet_distance(np.stack(embs), refs)
        if len(embs) >= 2 and len(refs) >= 2:
            agg["kernel_distance"] = kernel_distance(np.stack(embs), refs)
        elif notes is not None:
            notes.append(f"group '{group}': the kernel distance needs >= 2 songs and >= 2 references")
    agg["embedded"] = len(embs)
    return agg


def compare_groups(groups: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """For each compared figure present in >= 2 groups: the values and the best group. The codec ceiling
    (`reconstructed`: the references themselves) is a bound, not a contender, and is left out."""
    out: dict[str, dict[str, Any]] = {}
    higher = {k: h for k, _, h in GROUP_COLUMNS}
    for key in COMPARED:
        values = {g: agg.get(key) for g, agg in groups.items() if agg.get(key) is not None and g not in CEILINGS}
        if len(values) < 2:
            continue
        pick = max if higher[key] else min
        best = pick(values, key=values.get)
        tie = sum(1 for v in values.values() if v == values[best]) > 1
        out[key] = {"values": values, "higher_is_better": bool(higher[key]), "best": None if tie else best}
    return out
