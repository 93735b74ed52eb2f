"""Weight-free evaluation descriptors: judging style with features the style conditioner never sees.

Scoring style with the embedding that conditions the model measures how well the model reproduces its own
conditioning vector. These descriptors share no feature with the `style_features` conditioner (its
`FEATURES`: mel spectrogram, MFCC, chroma, onset strength, tempo, spectral centroid and flatness,
zero-crossing rate, RMS); `tests/test_eval_embedder.py` checks the two declared lists are disjoint.

Per clip (mono, 22.05 kHz, STFT 2048 / hop 512; the whole audio given, at most `max_seconds` from its middle):

  spectral_contrast          peak-valley difference (dB) in 7 octave sub-bands (librosa), mean and std over time
  spectral_bandwidth         log2 of the magnitude-weighted spread around the centroid (kHz): median, IQR
  spectral_rolloff           log2 of the 85 % energy roll-off frequency (kHz): median, IQR
  spectral_slope             least-squares slope of the dB spectrum against octaves, 100 Hz - 8 kHz: median, IQR
  harmonic_percussive_ratio  dB of harmonic over percussive energy after median-filter separation (HPSS) of the
                             magnitude spectrum pooled by 4 bins
  yin_pitch                  YIN f0 track (65-1000 Hz): median (octaves re 220 Hz), spread (semitones, IQR),
                             pitch changes per second (|step| > 0.7 semitone) and the share of steady frames

25 numbers. They are not comparable in scale, so before any cosine or distance the evaluation
standardises every number with the mean and standard deviation of the reference set and scales the
vector to unit length (`standardiser`): a song is then described by how it departs from the average
reference, and a cosine of 0 is what an average reference would score.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from ..optional import require

# What the descriptors are computed from; disjoint from toolkit.conditioners.style_features.FEATURES.
FEATURES = ("spectral_contrast", "spectral_bandwidth", "spectral_rolloff", "spectral_slope",
            "harmonic_percussive_ratio", "yin_pitch")
ANALYSIS_RATE = 22050
N_FFT = 2048
HOP = 512
CONTRAST_BANDS = 6          # librosa's n_bands: 6 octave bands above 200 Hz and the one below -> 7 rows
SLOPE_HZ = (100.0, 8000.0)
YIN_HZ = (65.0, 1000.0)
PITCH_STEP = 0.7            # semitones: a larger frame-to-frame step is a pitch change
STEADY_STEP = 0.3           # semitones: a smaller one is a steady (held) frame
DIM = 2 * (CONTRAST_BANDS + 1) + 2 + 2 + 2 + 1 + 4
DEFAULT_MAX_SECONDS = 30.0
MIN_SECONDS = 1.0
STD_FLOOR = 1e-6


class DescriptorError(ValueError):
    """Audio the descriptors cannot describe (too short, silent)."""


def _median_iqr(x: np.ndarray) -> list[float]:
    q1, med, q3 = np.percentile(x, [25, 50, 75])
    return [float(med), float(q3 - q1)]


def describe(wav: Any, sample_rate: int) -> np.ndarray:
    """Mono or [C, N] audio -> the DIM raw descriptors (float64), in the order of the module docstring."""
    librosa = require("librosa", "eval", "the evaluation descriptors")
    y = wav.detach().cpu().double().numpy() if hasattr(wav, "detach") else np.asarray(wav, dtype=np.float64)
    if y.ndim == 2:
        y = y.mean(0)
    if sample_rate != ANALYSIS_RATE:
        y = librosa.resample(y, orig_sr=sample_rate, target_sr=ANALYSIS_RATE)
    if y.size < MIN_SECONDS * ANALYSIS_RATE:
        raise DescriptorError(f"{y.size / ANALYSIS_RATE:.2f} s of audio; the descriptors need at least "
                              f"{MIN_SECONDS:g} s")
    y = y.astype(np.float32)
    mag = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP))
    if not mag.any():
        raise DescriptorError("the audio is silent; the descriptors need sound")
    freqs = librosa.fft_frequencies(sr=ANALYSIS_RATE, n_fft=N_FFT)
    # Frames quieter than 60 dB under the loudest say nothing about timbre (silence between phrases).
    energy = (mag ** 2).sum(0)
    active = energy >= energy.max() * 1e-6

    contrast = librosa.feature.spectral_contrast(S=mag, sr=ANALYSIS_RATE, n_bands=CONTRAST_BANDS)[:, active]
    bandwidth = librosa.feature.spectral_bandwidth(S=mag, sr=ANALYSIS_RATE)[0, active]
    rolloff = librosa.feature.spectral_rolloff(S=mag, sr=ANALYSIS_RATE, roll_percent=0.85)[0, active]
    band = (freqs >= SLOPE_HZ[0]) & (freqs <= SLOPE_HZ[1])
    octaves = np.log2(freqs[band] / 1000.0)
    db = 20.0 * np.log10(mag[band][:, active] + 1e-5 * mag.max())  # floor 100 dB under the peak: gain-free
    centred = octaves - octaves.mean()
    slope = centred @ (db - db.mean(0)) / (centred @ centred)  # dB per octave, one per frame
    # HPSS on bins pooled by 4 (about 43 Hz wide): the median filters cost a quarter, the ratio barely moves.
    pooled = mag[: mag.shape[0] // 4 * 4].reshape(-1, 4, mag.shape[1]).sum(1)
    harmonic, percussive = librosa.decompose.hpss(pooled)
    hp_ratio = 10.0 * np.log10(((harmonic ** 2).sum() + 1e-10) / ((percussive ** 2).sum() + 1e-10))
    f0 = librosa.yin(y, fmin=YIN_HZ[0], fmax=YIN_HZ[1], sr=ANALYSIS_RATE, frame_length=N_FFT, hop_length=HOP)
    n = min(f0.size, active.size)  # both are centred frames of the same hop; guard an off-by-one anyway
    f0 = f0[:n][active[:n]]
    semitones = 12.0 * np.log2(f0 / 220.0)
    steps = np.abs(np.diff(semitones)) if semitones.size > 1 else np.zeros(1)
    seconds = y.size / ANALYSIS_RATE

    values = [*contrast.mean(1), *contrast.std(1),
              *_median_iqr(np.log2(bandwidth / 1000.0 + 1e-6)),
              *_median_iqr(np.log2(rolloff / 1000.0 + 1e-6)),
              *_median_iqr(slope),
              hp_ratio,
              float(np.median(semitones)) / 12.0, float(np.subtract(*np.percentile(semitones, [75, 25]))),
              float((steps > PITCH_STEP).sum()) / seconds, float((steps < STEADY_STEP).mean())]
    out = np.asarray(values, dtype=np.float64)
    if out.shape != (DIM,) or not np.isfinite(out).all():
        raise DescriptorError(f"descriptors came out {out.shape} with non-finite values; the audio may be "
                              "degenerate (constant or clipped)")
    return out


def standardiser(references: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """z-scores with the references' per-descriptor mean and std, then unit length (rows or one vector)."""
    refs = np.asarray(references, dtype=np.float64)
    if refs.ndim != 2 or len(refs) < 2:
        raise DescriptorError(f"standardising needs at least 2 reference descriptor vectors, got {refs.shape}")
    mean, std = refs.mean(0), np.maximum(refs.std(0), STD_FLOOR)

    def apply(x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, dtype=np.float64) - mean) / std
        norm = np.linalg.norm(z, axis=-1, keepdims=True)
        return z / np.where(norm > 0, norm, 1.0)

    return apply


def load_window(path: str | os.PathLike, sample_rate: int, seconds: float | None,
                max_seconds: float = DEFAULT_MAX_SECONDS):
    """Mono audio of `path`: its first `seconds` when given (the reference window of a song), else its
    middle `max_seconds`."""
    from ..audio import audio_duration, load_audio

    if seconds is not None:
        wav, _ = load_audio(path, sample_rate=sample_rate, channels=1, duration=float(seconds))
        return wav[0]
    duration = audio_duration(path)
    offset = max(0.0, (duration - max_seconds) / 2.0)
    wav, _ = load_audio(path, sample_rate=sample_rate, channels=1, offset=offset, duration=min(duration, max_seconds))
    return wav[0]
