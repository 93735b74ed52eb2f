"""Reconstruction figures of a codec: a reference signal vs its encode-decode round trip.

All functions take mono 1-D float arrays (or tensors) `reference` and `estimate` at one sample rate;
`align` trims both to the shorter length (codecs pad to whole frames). Multi-channel audio is
averaged to mono first by the callers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..optional import require
from ..protocols import Metric
from ..registry import METRICS

STFT_RESOLUTIONS = ((2048, 512), (1024, 256), (512, 128))  # (fft size, hop); window = fft size
PESQ_RATE = 16000
MCD_COEFFS = 13  # mel-cepstral coefficients c1..c13 (c0, the energy, is excluded)
LN10 = math.log(10.0)


def _mono(x: Any) -> np.ndarray:
    arr = x.detach().cpu().double().numpy() if hasattr(x, "detach") else np.asarray(x, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr.mean(0)
    if arr.ndim != 1:
        raise ValueError(f"expected mono audio [N] (or [C, N]), got shape {list(arr.shape)}")
    return arr


def align(reference: Any, estimate: Any) -> tuple[np.ndarray, np.ndarray]:
    ref, est = _mono(reference), _mono(estimate)
    n = min(len(ref), len(est))
    if n == 0:
        raise ValueError("cannot compare empty signals")
    return ref[:n], est[:n]


def si_sdr(reference: Any, estimate: Any, eps: float = 1e-12) -> float:
    """Scale-invariant SDR in dB (Le Roux et al. 2019), both signals made zero-mean first."""
    ref, est = align(reference, estimate)
    ref, est = ref - ref.mean(), est - est.mean()
    alpha = (est @ ref) / (ref @ ref + eps)
    target = alpha * ref
    noise = est - target
    return float(10.0 * np.log10((target @ target + eps) / (noise @ noise + eps)))


def _magnitudes(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    import torch

    spec = torch.stft(torch.from_numpy(x), n_fft, hop, n_fft, window=torch.hann_window(n_fft, dtype=torch.float64),
                      center=True, return_complex=True)
    return spec.abs().numpy()


def stft_distance(reference: Any, estimate: Any, resolutions: Sequence[tuple[int, int]] = STFT_RESOLUTIONS,
                  eps: float = 1e-7) -> float:
    """Multi-resolution STFT distance: mean over resolutions of spectral convergence + mean |log mag diff|.

    Spectral convergence = ||S_ref - S_est||_F / ||S_ref||_F (the usual multi-resolution STFT loss of
    Parallel WaveGAN, with natural-log magnitudes). 0 for identical signals.
    """
    ref, est = align(reference, estimate)
    total = 0.0
    for n_fft, hop in resolutions:
        s_ref, s_est = _magnitudes(ref, n_fft, hop), _magnitudes(est, n_fft, hop)
        sc = np.linalg.norm(s_ref - s_est) / max(np.linalg.norm(s_ref), eps)
        log_mag = np.abs(np.log(s_ref + eps) - np.log(s_est + eps)).mean()
        total += sc + log_mag
    return float(total / len(resolutions))


def _log_mel(x: np.ndarray, sample_rate: int, n_fft: int = 2048, hop: int = 512, n_mels: int = 80) -> np.ndarray:
    librosa = require("librosa", "eval", "mel distance / MCD")
    mel = librosa.feature.melspectrogram(y=x, sr=sample_rate, n_fft=n_fft, hop_length=hop, n_mels=n_mels, power=1.0)
    return np.log10(np.maximum(mel, 1e-5))


def mel_distance(reference: Any, estimate: Any, sample_rate: int, n_mels: int = 80) -> float:
    """Mean |log10 mel(ref) - log10 mel(est)| over an 80-band magnitude mel spectrogram (hop 512, fft 2048)."""
    ref, est = align(reference, estimate)
    return float(np.abs(_log_mel(ref, sample_rate, n_mels=n_mels) - _log_mel(est, sample_rate, n_mels=n_mels)).mean())


def mel_cepstral_distortion(reference: Any, estimate: Any, sample_rate: int, n_coeffs: int = MCD_COEFFS) -> float:
    """MCD in dB: mean over frames of (10 / ln 10) * sqrt(2 * sum_{k=1..K} (c_k - c'_k)^2).

    Cepstra are the DCT-II (orthonormal) of the natural-log power mel spectrum (80 bands, hop 512),
    c0 excluded, frames paired one to one (no DTW: a codec keeps time alignment). 0 for identical audio.
    Absolute values are not comparable with papers that use SPTK mel-cepstra; compare codecs with each other.
    """
    from scipy.fft import dct

    ref, est = align(reference, estimate)

    def cepstra(x: np.ndarray) -> np.ndarray:
        log_power = 2.0 * LN10 * _log_mel(x, sample_rate)  # ln(mel magnitude ** 2)
        return dct(log_power, type=2, norm="ortho", axis=0)[1:n_coeffs + 1]

    diff = cepstra(ref) - cepstra(est)
    per_frame = (10.0 / LN10) * np.sqrt(2.0 * (diff ** 2).sum(0))
    return float(per_frame.mean())


def stoi(reference: Any, estimate: Any, sample_rate: int, extended: bool = False) -> float:
    """Short-time objective intelligibility (pystoi; resamples to 10 kHz internally). In [0, 1] roughly."""
    pystoi = require("pystoi", "eval", "STOI")
    ref, est = align(reference, estimate)
    return float(pystoi.stoi(ref, est, sample_rate, extended=extended))


def pesq_wideband(reference: Any, estimate: Any, sample_rate: int) -> float:
    """Wideband PESQ (ITU-T P.862.2) after resampling both signals to 16 kHz; MOS-LQO in [1.04, 4.64].

    PESQ is specified for speech; on music it is only a rough codec-to-codec comparison. Signals with
    no detectable utterance give NaN.
    """
    pesq_mod = require("pesq", "eval", "wideband PESQ")
    from scipy.signal import resample_poly

    ref, est = align(reference, estimate)
    if sample_rate != PESQ_RATE:
        g = math.gcd(PESQ_RATE, sample_rate)
        ref = resample_poly(ref, PESQ_RATE // g, sample_rate // g)
        est = resample_poly(est, PESQ_RATE // g, sample_rate // g)
    try:
        return float(pesq_mod.pesq(PESQ_RATE, ref.astype(np.float32), est.astype(np.float32), "wb"))
    except Exception:  # pesq raises NoUtterancesError / BufferTooShortError on silence or < 0.25 s
        return float("nan")


QUALITY_FIGURES = ("si_sdr", "stft_distance", "mel_distance", "stoi", "pesq_wb", "mcd")


def reconstruction_figures(reference: Any, estimate: Any, sample_rate: int) -> dict[str, float]:
    """Every reconstruction figure of one file: si_sdr, stft_distance, mel_distance, stoi, pesq_wb, mcd."""
    return {
        "si_sdr": si_sdr(reference, estimate),
        "stft_distance": stft_distance(reference, estimate),
        "mel_distance": mel_distance(reference, estimate, sample_rate),
        "stoi": stoi(reference, estimate, sample_rate),
        "pesq_wb": pesq_wideband(reference, estimate, sample_rate),
        "mcd": mel_cepstral_distortion(reference, estimate, sample_rate),
    }


class _PairMetric(Metric):
    needs_rate = True

    def compute(self, *, reference: Any, estimate: Any, sample_rate: int | None = None, **_: Any) -> dict[str, float]:
        if self.needs_rate and sample_rate is None:
            raise ValueError(f"metric '{self.registered_name}' needs sample_rate")
        return {self.registered_name: self.score(reference, estimate, sample_rate)}

    def score(self, reference: Any, estimate: Any, sample_rate: int | None) -> float:  # pragma: no cover
        raise NotImplementedError


@METRICS.register("si_sdr")
class SISDR(_PairMetric):
    """Scale-invariant signal-to-distortion ratio (dB) of an estimate against a reference."""

    needs_rate = False

    def score(self, reference, estimate, sample_rate):
        return si_sdr(reference, estimate)


@METRICS.register("stft_distance")
class STFTDistance(_PairMetric):
    """Multi-resolution STFT distance (spectral convergence + log-magnitude L1)."""

    needs_rate = False

    def score(self, reference, estimate, sample_rate):
        return stft_distance(reference, estimate)


@METRICS.register("mel_distance")
class MelDistance(_PairMetric):
    """Mean absolute log10 mel-spectrogram difference (80 bands)."""

    def score(self, reference, estimate, sample_rate):
        return mel_distance(reference, estimate, sample_rate)


@METRICS.register("mcd")
class MelCepstralDistortion(_PairMetric):
    """Mel-cepstral distortion (dB, c1..c13, frames paired without DTW)."""

    def score(self, reference, estimate, sample_rate):
        return mel_cepstral_distortion(reference, estimate, sample_rate)


@METRICS.register("stoi")
class STOI(_PairMetric):
    """Short-time objective intelligibility (pystoi)."""

    def score(self, reference, estimate, sample_rate):
        return stoi(reference, estimate, sample_rate)


@METRICS.register("pesq_wb")
class PESQWideband(_PairMetric):
    """Wideband PESQ (MOS-LQO) at 16 kHz."""

    def score(self, reference, estimate, sample_rate):
        return pesq_wideband(reference, estimate, sample_rate)
