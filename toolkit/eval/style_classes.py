"""Can an embedding tell the reference styles apart, and which style does a song sound like?

A reference's style class is a label its manifest gives (`ensemble`, else `style_label`, else the genre
tags that not every reference shares: the embedded chorales are all "chorale, baroque" and one of four
ensembles). An embedding that cannot sort the references into their classes cannot judge style, so the
evaluation reports how well it does (`class_separation`) before any style figure of the songs.

Both figures are nearest-centroid decisions by cosine in the evaluation space, leave-one-out: the item
being classified is never part of a centroid (a held-out reference, or the prompt a song imitates, would
otherwise vote for its own class).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

LABEL_KEYS = ("ensemble", "style_label")


def reference_labels(entries: dict[str, dict[str, Any]]) -> dict[str, str]:
    """{key: manifest line} -> {key: style class}; keys without a class are left out.

    `ensemble` or `style_label` when a line gives one; else its `genres` minus those every line has
    (a genre all references share tells none apart). Empty when no class can be found.
    """
    explicit = {k: str(next(e[n] for n in LABEL_KEYS if e.get(n))) for k, e in entries.items()
                if any(e.get(n) for n in LABEL_KEYS)}
    if explicit:
        return explicit
    genres = {k: frozenset(str(g) for g in e.get("genres") or []) for k, e in entries.items()}
    genres = {k: g for k, g in genres.items() if g}
    if len(genres) < 2:
        return {}
    common = frozenset.intersection(*genres.values())
    labels = {k: "+".join(sorted(g - common)) for k, g in genres.items() if g - common}
    return labels if len(set(labels.values())) >= 2 else {}


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def nearest_class(embedding: np.ndarray, references: np.ndarray, labels: Sequence[str],
                  exclude: int | None = None) -> str | None:
    """The class whose centroid (mean of its unit references, `exclude` left out) is closest by cosine."""
    refs = _unit(np.asarray(references, dtype=np.float64))
    keep = [i for i in range(len(refs)) if i != exclude]
    classes = sorted({labels[i] for i in keep})
    if not classes:
        return None
    centroids = _unit(np.stack([refs[[i for i in keep if labels[i] == c]].mean(0) for c in classes]))
    scores = centroids @ _unit(np.asarray(embedding, dtype=np.float64))
    return classes[int(np.argmax(scores))]


def class_separation(references: np.ndarray, labels: Sequence[str]) -> dict[str, Any] | None:
    """Leave-one-out nearest-centroid accuracy of the references' own classes, and the mean cosine of
    same-class and different-class pairs. None with fewer than 2 classes or a class of one item only
    (nothing left to form its centroid)."""
    refs = _unit(np.asarray(references, dtype=np.float64))
    counts = Counter(labels)
    if len(counts) < 2 or min(counts.values()) < 2:
        return None
    hits = sum(nearest_class(refs[i], refs, labels, exclude=i) == labels[i] for i in range(len(refs)))
    cos = refs @ refs.T
    same = np.array([[a == b for b in labels] for a in labels])
    off = ~np.eye(len(refs), dtype=bool)
    return {"accuracy": hits / len(refs), "correct": int(hits), "count": len(refs), "classes": len(counts),
            "chance": 1.0 / len(counts), "class_sizes": dict(sorted(counts.items())),
            "within_cosine": float(cos[same & off].mean()), "between_cosine": float(cos[~same].mean())}
