"""Songs, their style prompts and the references in one embedding space, and the style figures taken there.

The references are embedded on the songs' window (their first `window` seconds: a generated song covers
the start of its piece), the prompts as the generator got them (the whole prompt file). The embedder's
`space()` is fitted on the references and applied to all three. A song that cannot be embedded (too short,
silent, unreadable) gets NaN for the figures of this space and a note: it is counted, not dropped.

Figures written into each song's row:
- prefix "" (the evaluation space): `style_adherence` (cosine of prompt and song), and where the references
  carry style classes (toolkit.eval.style_classes) `style_class` (the class nearest the song, its own
  reference left out), `prompt_class` and `style_class_match` (1 when they agree, 0 when not);
- another prefix (e.g. "self_consistency", the conditioner's space): that cosine under that name only.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

NAN = float("nan")


def _embed_errors() -> tuple[type[BaseException], ...]:
    from ..audio import AudioError
    from .descriptors import DescriptorError
    from .embeddings import EmbeddingError

    return EmbeddingError, DescriptorError, AudioError


def _note(row: dict[str, Any], note: str) -> None:
    row["note"] = f"{row['note']}; {note}" if row.get("note") else note


def embed_space(embedder: Any, songs: Sequence[Any], rows: list[dict[str, Any]], matched: Sequence[Any],
                ref_paths: Sequence[Path], labels: Sequence[str | None], window: float | None,
                notes: list[str], log, prefix: str = "") -> dict[str, Any]:
    """Embed everything with `embedder`, write the figures of this space into `rows`; returns
    {"songs": {row index: vector}, "references": [m, d] or None, "separation": dict or None}."""
    from .distances import cosine_similarity
    from .embeddings import Embedder
    from .style_classes import class_separation, nearest_class

    errors = _embed_errors()
    title = prefix or "style"
    key = prefix or "style_adherence"
    ref_raw = []
    if window and "seconds" not in inspect.signature(embedder.embed_audio).parameters:
        notes.append(f"{embedder.name}: this embedder cannot cut the references to the songs' length; they are "
                     "embedded whole")
        window = None
    if ref_paths:
        log(f"embedding {len(ref_paths)} reference songs ({embedder.name}"
            + (f", first {window:g} s of each)" if window else ")"))
        ref_raw = [embedder.embed_audio(p, window) if window else embedder.embed_audio(p) for p in ref_paths]
    else:
        notes.append("no reference audio (neither --reference-dir nor audio paths in --manifest): "
                     "no Frechet / kernel distances, no style classes")
    # with fewer than 2 references there is nothing to fit the space on: the identity
    transform = embedder.space(np.stack(ref_raw)) if len(ref_raw) >= 2 else Embedder.space(embedder, None)
    if len(ref_raw) == 1:
        notes.append(f"{embedder.name}: fewer than 2 references, the embeddings are compared unstandardised")
    references = np.stack([transform(r) for r in ref_raw]) if ref_raw else None

    song_vectors: dict[int, np.ndarray] = {}
    prompt_cache: dict[str, np.ndarray | None] = {}
    resolved = [Path(p).resolve() for p in ref_paths]
    for i, (song, row, reference) in enumerate(zip(songs, rows, matched, strict=True)):
        if not row.get("non_silent"):
            row[key] = NAN
            _note(row, f"silent: no {title} figures")
            continue
        try:
            vector = transform(embedder.embed_audio(song.path))
        except errors as err:
            row[key] = NAN
            _note(row, f"no {embedder.name} embedding, so no {title} figures or distances: {err}")
            continue
        song_vectors[i] = vector
        style = song.style if song.style is not None else (reference.style if reference else None)
        cache_key = json.dumps(style, sort_keys=True, default=str)
        if cache_key not in prompt_cache:
            try:
                raw = embedder.embed_style(style)
            except errors as err:
                raw = None
                _note(row, f"the style prompt could not be embedded: {err}")
            prompt_cache[cache_key] = None if raw is None else transform(raw)
        prompt = prompt_cache[cache_key]
        if prompt is not None:
            row[key] = cosine_similarity(prompt, vector)
        if prefix or references is None:
            continue
        prompt_index = _index_of(_prompt_audio(style), resolved)
        own_index = _index_of(reference.audio if reference else None, resolved)
        known = [j for j, label in enumerate(labels) if label is not None and j != own_index]
        if prompt_index is None or labels[prompt_index] is None or len({labels[j] for j in known}) < 2:
            continue
        row["prompt_class"] = labels[prompt_index]
        row["style_class"] = nearest_class(vector, references[known], [labels[j] for j in known])
        row["style_class_match"] = float(row["style_class"] == row["prompt_class"])

    separation = None
    if references is not None:
        labelled = [j for j, label in enumerate(labels) if label is not None]
        if labelled:
            separation = class_separation(references[labelled], [labels[j] for j in labelled])
    return {"songs": song_vectors, "references": references, "separation": separation}


def _prompt_audio(style: Any) -> Path | None:
    if isinstance(style, dict):
        style = style.get("audio")
    if isinstance(style, (str, os.PathLike)) and str(style) and Path(style).is_file():
        return Path(style)
    return None


def _index_of(path: Path | None, resolved: Sequence[Path]) -> int | None:
    if path is None:
        return None
    target = Path(path).resolve()
    return next((j for j, p in enumerate(resolved) if p == target), None)
