"""Pictures the page shows: an output's spectrogram (toolkit.eval.plots draws it, as in the reports) and a song
to edit with the spans to regenerate (or the continuation) marked on its waveform."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ENVELOPE_POINTS = 1200


def spectrogram(audio_path: str | os.PathLike, png_path: str | os.PathLike, title: str | None = None) -> Path:
    from ..eval.plots import spectrogram_png

    return spectrogram_png(audio_path, png_path, title=title)


def resolved_spans(spans: Sequence[tuple[float, float]], duration: float) -> list[tuple[float, float]]:
    """Spans with -1 read as the song's start (as a start) or end (as an end), clipped to the song."""
    out = []
    for start, end in spans:
        start = 0.0 if start == -1 else max(0.0, float(start))
        end = duration if end == -1 else min(duration, float(end))
        if end > start:
            out.append((start, end))
    return out


def marked_waveform(audio_path: str | os.PathLike, png_path: str | os.PathLike,
                    spans: Sequence[tuple[float, float]] = (), extend: float | None = None) -> Path:
    """The song's waveform envelope with `spans` (seconds, -1 = start / end) shaded as "regenerated" and a
    continuation of `extend` seconds drawn after its end."""
    from matplotlib.figure import Figure

    from ..audio import load_audio

    wav, sr = load_audio(audio_path, channels=1)
    y = wav[0].numpy()
    duration = len(y) / sr
    n = max(1, min(ENVELOPE_POINTS, len(y)))
    edges = np.linspace(0, len(y), n + 1).astype(int)
    top = np.array([y[a:b].max() if b > a else 0.0 for a, b in zip(edges[:-1], edges[1:], strict=True)])
    low = np.array([y[a:b].min() if b > a else 0.0 for a, b in zip(edges[:-1], edges[1:], strict=True)])
    t = edges[:-1] / sr
    fig = Figure(figsize=(10, 2.2))
    ax = fig.add_subplot(1, 1, 1)
    ax.fill_between(t, low, top, color="#555555", linewidth=0)
    for i, (start, end) in enumerate(resolved_spans(spans, duration)):
        ax.axvspan(start, end, color="#f28e2b", alpha=0.45, label="regenerated" if i == 0 else None)
    if extend:
        ax.axvspan(duration, duration + extend, color="#4e79a7", alpha=0.35, label="continuation")
    ax.set_xlim(0, duration + (extend or 0.0))
    ax.set_ylim(-1.0, 1.0)
    ax.set_xlabel("seconds")
    ax.set_yticks([])
    if spans or extend:
        ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return _write_png(fig, Path(png_path))


def _write_png(fig, png_path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from ..io import atomic_path

    FigureCanvasAgg(fig)
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    return png_path
