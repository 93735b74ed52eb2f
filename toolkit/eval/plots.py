"""Pictures for reports: a song's mel spectrogram and the training loss curve (PNG, matplotlib Agg).

Figures are drawn on `matplotlib.figure.Figure` with the Agg canvas directly, so no GUI backend and
no global pyplot state is involved (safe in headless runs and inside other programs).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_path
from ..optional import require

LOSS_KEYS = ("loss", "valid_loss", "valid_loss_dropped")


def _save(fig: Any, png_path: str | os.PathLike) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    png_path = Path(png_path)
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return png_path


def spectrogram_png(audio_path: str | os.PathLike, png_path: str | os.PathLike, title: str | None = None,
                    max_seconds: float | None = None) -> Path:
    """A 128-band mel spectrogram (dB, mono mix, 22.05 kHz analysis) of an audio file, as a PNG."""
    librosa = require("librosa", "eval", "spectrogram pictures")
    require("matplotlib", "eval", "report pictures")
    from matplotlib.figure import Figure

    from ..audio import load_audio

    sr = 22050
    wav, _ = load_audio(audio_path, sample_rate=sr, channels=1, duration=max_seconds)
    y = wav[0].numpy()
    hop = 512
    mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=2048, hop_length=hop, n_mels=128)
    db = librosa.power_to_db(mel, ref=max(float(mel.max()), 1e-10), top_db=80.0)
    duration = len(y) / sr
    fig = Figure(figsize=(10, 3))
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=-80, vmax=0,
                      extent=(0.0, duration, 0, 128))
    ax.set_xlabel("seconds")
    ax.set_ylabel("mel band")
    ax.set_title(title or Path(audio_path).name)
    fig.colorbar(image, ax=ax, label="dB")
    fig.tight_layout()
    return _save(fig, png_path)


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The trainer's metrics.jsonl as a list of dicts; blank and unreadable lines (a torn last line) skipped."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def loss_curve_png(metrics_path: str | os.PathLike, png_path: str | os.PathLike) -> Path | None:
    """Training loss (and valid_loss / valid_loss_dropped where logged) against step; None if nothing to draw."""
    require("matplotlib", "eval", "report pictures")
    from matplotlib.figure import Figure

    rows = read_metrics(metrics_path)
    series: dict[str, tuple[list[float], list[float]]] = {}
    for row in rows:
        step = row.get("step")
        if not isinstance(step, (int, float)):
            continue
        for key in LOSS_KEYS:
            value = row.get(key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                series.setdefault(key, ([], []))
                series[key][0].append(float(step))
                series[key][1].append(float(value))
    if not series:
        return None
    fig = Figure(figsize=(8, 4))
    ax = fig.add_subplot(1, 1, 1)
    for key in LOSS_KEYS:
        if key not in series:
            continue
        steps, values = series[key]
        style = "-" if key == "loss" else "o-"
        ax.plot(steps, values, style, label=key, alpha=0.5 if key == "loss" and len(values) > 50 else 1.0,
                markersize=4)
        if key == "loss" and len(values) > 50:
            window = max(5, len(values) // 50)
            smooth = np.convolve(values, np.ones(window) / window, mode="valid")
            ax.plot(steps[window - 1:], smooth, "-", label=f"loss (mean of {window})")
    positive = all(v > 0 for _, vals in series.values() for v in vals)
    if positive:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return _save(fig, png_path)
