"""Lyric timing agreement: do rises of vocal-band energy in a song line up with the LRC line starts?

A weight-free proxy for "the lyrics are sung where the LRC puts them" (no singing-voice separation,
no alignment model). What it measures, exactly:

1. The song is mixed to mono at 22050 Hz; the energy in the vocal band (250-3500 Hz, a 64-band mel
   spectrogram, hop 256 samples = 11.6 ms) is summed per frame and taken in dB.
2. Phrase-onset novelty at frame t = (mean band dB over the next 0.2 s) - (mean band dB over the
   previous 0.2 s), kept where positive: large where the band gets loud after being quiet, i.e.
   where a sung phrase (or anything else in that band) starts after a pause.
3. Candidates are the local maxima of the novelty of at least a quarter of the largest. Each scores
   its height times the time since the previous candidate (capped at 2 s): a line usually starts
   after a pause or a held note, while onsets inside a phrase follow each other closely. The K
   best-scoring candidates, at least `min_separation` seconds apart, are the detected onsets, where
   K = the number of LRC lines starting inside the song.
4. Detected onsets are matched one to one with the LRC line starts within +-`tolerance` seconds
   (maximum matching); precision = matches / detected, recall = matches / lines, F = 2PR / (P + R).
   With K detections, precision = recall = F unless the song has fewer than K novelty peaks.

Limits: instruments playing in the vocal band make onsets too (in a chorale the accompaniment doubles
the voices and plays through the phrase ends, so a line start is only a note after a held one), so the figure is
only meaningful next to the same measure on the reference recording of
the same LRC (`reference_f`) and against chance (`chance_f`, the expected F of K onsets placed at
random: about min(1, K * 2 * tolerance / duration)). It checks line starts only: it cannot tell
whether the right words are sung, nor whether lines inside a phrase without a pause are placed right.
Lines closer together than `min_separation` can never all be matched.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..optional import require
from ..protocols import Metric
from ..registry import METRICS

ANALYSIS_RATE = 22050
HOP = 256
BAND_HZ = (250.0, 3500.0)
CONTEXT_SECONDS = 0.2
DEFAULT_TOLERANCE = 0.5
DEFAULT_MIN_SEPARATION = 1.0
PEAK_FLOOR = 0.25  # novelty peaks below this fraction of the largest are not phrase-onset candidates
HOLD_CAP_SECONDS = 2.0  # the pause / held note before a candidate counts up to this long

def lrc_line_starts(lrc: str) -> list[float]:
    """Start times (seconds, sorted) of the LRC lines that carry text (toolkit.lrc reads the LRC).

    A line with several stamps (`[00:10.00][01:10.00]chorus`) starts at each of them; `[offset:]` is
    applied; a stamped line with no text (an instrumental gap or end marker) is not a line start.
    Raises toolkit.lrc.LrcError on a malformed timestamp.
    """
    from ..lrc import parse_lrc

    return sorted(line.time for line in parse_lrc(lrc).lines if line.text)


def match_count(reference: Sequence[float], estimated: Sequence[float], tolerance: float) -> int:
    """Size of the maximum one-to-one matching with |ref - est| <= tolerance.

    On a line with equal windows, taking references in time order and giving each the earliest unused
    estimate inside its window is optimal.
    """
    ref = sorted(float(r) for r in reference)
    est = sorted(float(e) for e in estimated)
    j = 0
    hits = 0
    for r in ref:
        while j < len(est) and est[j] < r - tolerance:
            j += 1
        if j < len(est) and est[j] <= r + tolerance:
            hits += 1
            j += 1
    return hits


def f_measure(reference: Sequence[float], estimated: Sequence[float], tolerance: float = DEFAULT_TOLERANCE
              ) -> dict[str, float]:
    """Onset F-measure of `estimated` times against `reference` times within +-tolerance seconds."""
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0 seconds, not {tolerance}")
    n_ref, n_est = len(reference), len(estimated)
    if n_ref == 0 and n_est == 0:
        return {"f": 1.0, "precision": 1.0, "recall": 1.0}
    if n_ref == 0 or n_est == 0:
        return {"f": 0.0, "precision": 0.0, "recall": 0.0}
    hits = match_count(reference, estimated, tolerance)
    precision, recall = hits / n_est, hits / n_ref
    f = 0.0 if hits == 0 else 2 * precision * recall / (precision + recall)
    return {"f": f, "precision": precision, "recall": recall}


def vocal_band_novelty(wav: Any, sample_rate: int) -> tuple[np.ndarray, float]:
    """Phrase-onset novelty per frame (dB, >= 0) and the frame rate (frames per second)."""
    librosa = require("librosa", "eval", "lyric timing")
    y = wav.detach().cpu().double().numpy() if hasattr(wav, "detach") else np.asarray(wav, dtype=np.float64)
    if y.ndim == 2:
        y = y.mean(0)
    if sample_rate != ANALYSIS_RATE:
        y = librosa.resample(y, orig_sr=sample_rate, target_sr=ANALYSIS_RATE)
    mel = librosa.feature.melspectrogram(y=y, sr=ANALYSIS_RATE, n_fft=2048, hop_length=HOP, n_mels=64,
                                         fmin=BAND_HZ[0], fmax=BAND_HZ[1], power=2.0)
    energy_db = 10.0 * np.log10(mel.sum(0) + 1e-10)
    frame_rate = ANALYSIS_RATE / HOP
    w = max(1, int(round(CONTEXT_SECONDS * frame_rate)))
    # Means over [t, t+w) and [t-w, t) with edge padding, from one cumulative sum.
    padded = np.concatenate([np.full(w, energy_db[0]), energy_db, np.full(w, energy_db[-1])])
    csum = np.concatenate([[0.0], np.cumsum(padded)])
    idx = np.arange(len(energy_db)) + w
    after = (csum[idx + w] - csum[idx]) / w
    before = (csum[idx] - csum[idx - w]) / w
    return np.maximum(after - before, 0.0), frame_rate


def phrase_onsets(novelty: np.ndarray, frame_rate: float, count: int, min_separation: float,
                  floor_fraction: float = PEAK_FLOOR, hold_cap: float = HOLD_CAP_SECONDS) -> list[float]:
    """Times (s) of the `count` most phrase-like onsets, pairwise >= min_separation apart.

    Candidates are local maxima of the novelty of at least `floor_fraction` of the largest one. A
    candidate's score is its height times the time since the previous candidate (capped at `hold_cap`
    seconds): a line usually starts after a pause or a held note, while onsets inside a phrase follow
    each other closely. The highest scores win.
    """
    if count <= 0 or len(novelty) < 3:
        return []
    interior = (novelty[1:-1] > 0) & (novelty[1:-1] >= novelty[:-2]) & (novelty[1:-1] > novelty[2:])
    candidates = np.flatnonzero(interior) + 1
    if not len(candidates):
        return []
    candidates = candidates[novelty[candidates] >= floor_fraction * novelty[candidates].max()]
    gaps = np.diff(np.concatenate([[-np.inf], candidates.astype(float)])) / frame_rate
    score = novelty[candidates] * np.minimum(gaps, hold_cap)
    order = candidates[np.argsort(-score, kind="stable")]
    chosen: list[int] = []
    gap = min_separation * frame_rate
    for frame in order:
        if all(abs(frame - c) >= gap for c in chosen):
            chosen.append(int(frame))
            if len(chosen) == count:
                break
    return sorted(c / frame_rate for c in chosen)


def lyric_timing(wav: Any, sample_rate: int, lrc: str | Sequence[float], tolerance: float = DEFAULT_TOLERANCE,
                 min_separation: float = DEFAULT_MIN_SEPARATION) -> dict[str, float]:
    """Timing agreement of one song with its LRC (text or line starts); see the module docstring.

    Returns f, precision, recall, lines (K), chance_f. Empty when the LRC has no line inside the song
    (an instrumental: nothing to measure).
    """
    starts = lrc_line_starts(lrc) if isinstance(lrc, str) else sorted(float(s) for s in lrc)
    n = wav.shape[-1]
    duration = n / sample_rate
    starts = [s for s in starts if 0.0 <= s < duration]
    if not starts:
        return {}
    novelty, frame_rate = vocal_band_novelty(wav, sample_rate)
    onsets = phrase_onsets(novelty, frame_rate, len(starts), min_separation)
    result = f_measure(starts, onsets, tolerance)
    result["lines"] = float(len(starts))
    result["chance_f"] = float(min(1.0, len(starts) * 2.0 * tolerance / max(duration, 1e-9)))
    return result


@METRICS.register("lyric_timing")
class LyricTiming(Metric):
    """F-measure of vocal-band phrase onsets against LRC line starts (weight-free lyric timing proxy)."""

    def __init__(self, tolerance: float = DEFAULT_TOLERANCE, min_separation: float = DEFAULT_MIN_SEPARATION):
        self.tolerance, self.min_separation = tolerance, min_separation

    def compute(self, *, wav: Any, sample_rate: int, lrc: str | Sequence[float], **_: Any) -> dict[str, float]:
        figures = lyric_timing(wav, sample_rate, lrc, self.tolerance, self.min_separation)
        return {f"lyric_timing_{k}" if k != "lines" else "lrc_lines": v for k, v in figures.items()}
