"""Level checks of a song: integrated loudness (LUFS), clipping, true peak, silence.

Input audio is [C, N] or [N] float in [-1, 1] (tensor or array) with its sample rate.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..optional import require
from ..protocols import Metric
from ..registry import METRICS

CLIP_LEVEL = 0.999
TRUE_PEAK_OVERSAMPLING = 4


def _channels_first(wav: Any) -> np.ndarray:
    arr = wav.detach().cpu().double().numpy() if hasattr(wav, "detach") else np.asarray(wav, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[-1] == 0:
        raise ValueError(f"expected audio of shape [C, N] or [N] with N > 0, got {list(arr.shape)}")
    return arr


def integrated_lufs(wav: Any, sample_rate: int) -> float:
    """BS.1770-4 integrated loudness via pyloudnorm; -inf for silence.

    pyloudnorm needs at least one 400 ms gating block; shorter audio is looped to 0.4 s (a documented
    approximation, exact for stationary signals).
    """
    pyln = require("pyloudnorm", "eval", "loudness (LUFS)")
    arr = _channels_first(wav)
    block = int(math.ceil(0.4 * sample_rate)) + 1
    if arr.shape[-1] < block:
        arr = np.tile(arr, (1, -(-block // arr.shape[-1])))[:, :block]
    meter = pyln.Meter(sample_rate)
    with np.errstate(divide="ignore"):
        value = meter.integrated_loudness(arr.T)
    return float(value)


def clipping_fraction(wav: Any, level: float = CLIP_LEVEL) -> float:
    """Fraction of samples (over all channels) with |x| >= level."""
    arr = _channels_first(wav)
    return float((np.abs(arr) >= level).mean())


def true_peak_dbfs(wav: Any, sample_rate: int, oversampling: int = TRUE_PEAK_OVERSAMPLING) -> float:
    """Peak of the 4x oversampled signal in dBFS (BS.1770's true-peak idea with a polyphase resampler).

    An approximation of a compliant true-peak meter (which specifies its interpolation filter); it
    catches inter-sample peaks above 0 dBFS that a sample peak misses.
    """
    from scipy.signal import resample_poly

    arr = _channels_first(wav)
    up = resample_poly(arr, oversampling, 1, axis=-1) if arr.shape[-1] > 1 else arr
    peak = max(float(np.abs(up).max()), float(np.abs(arr).max()))
    return 20.0 * math.log10(peak) if peak > 0 else float("-inf")


def level_figures(wav: Any, sample_rate: int) -> dict[str, float]:
    """Every level check at once: lufs, clipping_fraction, sample_peak_dbfs, true_peak_dbfs, rms_dbfs, non_silent."""
    from ..audio import SILENCE_DB

    arr = _channels_first(wav)
    peak = float(np.abs(arr).max())
    rms = float(np.sqrt(np.mean(arr ** 2)))
    rms_db = 20.0 * math.log10(max(rms, 1e-12))
    return {
        "lufs": integrated_lufs(arr, sample_rate),
        "clipping_fraction": clipping_fraction(arr),
        "sample_peak_dbfs": 20.0 * math.log10(peak) if peak > 0 else float("-inf"),
        "true_peak_dbfs": true_peak_dbfs(arr, sample_rate),
        "rms_dbfs": rms_db,
        "non_silent": float(rms_db >= SILENCE_DB),
    }


@METRICS.register("loudness")
class Loudness(Metric):
    """Integrated loudness (LUFS, BS.1770 via pyloudnorm) of one song."""

    def compute(self, *, wav: Any, sample_rate: int, **_: Any) -> dict[str, float]:
        return {"lufs": integrated_lufs(wav, sample_rate)}


@METRICS.register("clipping")
class Clipping(Metric):
    """Fraction of samples at |x| >= 0.999 and the 4x-oversampled (true-ish) peak in dBFS."""

    def __init__(self, level: float = CLIP_LEVEL):
        self.level = level

    def compute(self, *, wav: Any, sample_rate: int, **_: Any) -> dict[str, float]:
        return {"clipping_fraction": clipping_fraction(wav, self.level),
                "true_peak_dbfs": true_peak_dbfs(wav, sample_rate)}


@METRICS.register("levels")
class Levels(Metric):
    """Every level check of one song: LUFS, clipping, sample/true peak, RMS, non-silence."""

    def compute(self, *, wav: Any, sample_rate: int, **_: Any) -> dict[str, float]:
        return level_figures(wav, sample_rate)
