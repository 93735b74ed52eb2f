"""A weight-free style embedding: librosa statistics of a clip, projected to 512 dims.

No pretrained weights exist in the embedded demo, so its style must not lean on random ones. This
conditioner describes a clip by fixed signal statistics in seven groups:

  spectral envelope   mean of a 64-band log-mel spectrogram over time
  spectral dynamics   per-band standard deviation of the log-mel over time
  timbre              mean and standard deviation of MFCC 1..19 (c0, the loudness, is left out)
  harmony             mean chroma (12 pitch classes)
  rhythm              onset-strength autocorrelation at 24 log-spaced lags (0.1 - 2 s)
  scalars             tempo, onset density and spread, spectral centroid and flatness, zero-crossing
                      rate, loudness dynamics (each squashed with tanh around a typical value)

Each group but the scalars is centred (level-free) and scaled to unit length, then weighted, so no
group dominates by its units and a gain change does not move the embedding. The 209 numbers are
mapped to 512 dims by a fixed matrix with orthonormal columns (QR of a Gaussian matrix drawn from
numpy's PCG64 generator with `seed`, signs fixed so R has a positive diagonal): an isometry, so cosine
similarities of the statistics are kept exactly. The result is L2-normalised.

The clip is the one upstream takes for MuQ-MuLan (10 s from the middle of the song, mono); audio shorter
than 10 s is used whole: statistics need no fixed length, and looping would add a seam to the rhythm.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..registry import CONDITIONERS
from .style_common import (
    STYLE_DIM,
    StyleConditioner,
    StyleError,
    embedding_from,
    load_middle_clip,
    middle_clip_of,
    parse_style_value,
    unit,
)

N_MELS = 64
N_MFCC = 20
RHYTHM_LAGS = 24
# (group, weight); the order is the layout of the statistics vector.
GROUPS = (("mel_mean", 1.0), ("mel_std", 0.7), ("mfcc_mean", 1.0), ("mfcc_std", 0.7), ("chroma", 0.8),
          ("rhythm", 0.8), ("scalars", 0.8))
NUM_STATS = N_MELS * 2 + (N_MFCC - 1) * 2 + 12 + RHYTHM_LAGS + 7


def clip_statistics(wav: np.ndarray, sr: int) -> np.ndarray:
    """Mono float clip -> the 209 weighted, group-normalised statistics (float64)."""
    import librosa

    wav = np.asarray(wav, dtype=np.float32)
    n_fft, hop = 2048, 512
    power = np.abs(librosa.stft(wav, n_fft=n_fft, hop_length=hop)) ** 2
    mel_db = librosa.power_to_db(librosa.feature.melspectrogram(S=power, sr=sr, n_mels=N_MELS), ref=1.0, top_db=None)
    mel_db = np.maximum(mel_db, mel_db.max() - 80.0)  # an 80 dB floor below the loudest bin
    mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=N_MFCC)[1:]
    chroma = librosa.feature.chroma_stft(S=power, sr=sr, n_fft=n_fft, hop_length=hop, tuning=0.0)  # A440, no estimate
    onset = librosa.onset.onset_strength(S=mel_db, sr=sr)
    tempo = float(np.atleast_1d(librosa.feature.tempo(onset_envelope=onset, sr=sr, hop_length=hop))[0])

    groups = {
        "mel_mean": _centred(mel_db.mean(axis=1)),
        "mel_std": _centred(mel_db.std(axis=1)),
        "mfcc_mean": _scaled(mfcc.mean(axis=1)),
        "mfcc_std": _scaled(mfcc.std(axis=1)),
        "chroma": _centred(chroma.mean(axis=1)),
        "rhythm": _centred(_onset_autocorrelation(onset, sr / hop)),
        "scalars": _scalars(wav, sr, power, onset, tempo),
    }
    return np.concatenate([weight * groups[name] for name, weight in GROUPS])


def _centred(x: np.ndarray) -> np.ndarray:
    return _scaled(x - x.mean())


def _scaled(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x)
    return x / norm if norm > 1e-10 else np.zeros_like(x)


def _onset_autocorrelation(onset: np.ndarray, frames_per_second: float) -> np.ndarray:
    env = onset - onset.mean()
    ac = np.correlate(env, env, mode="full")[env.size - 1:]
    ac = ac / (ac[0] + 1e-10)
    lags = np.geomspace(0.1, 2.0, RHYTHM_LAGS) * frames_per_second
    return np.interp(lags, np.arange(ac.size), ac, right=0.0)


def _scalars(wav, sr, power, onset, tempo) -> np.ndarray:
    import librosa

    centroid = librosa.feature.spectral_centroid(S=np.sqrt(power), sr=sr).mean()
    flatness = librosa.feature.spectral_flatness(S=np.sqrt(power)).mean()
    zcr = librosa.feature.zero_crossing_rate(wav).mean()
    rms_db = 20 * np.log10(librosa.feature.rms(S=np.sqrt(power)).ravel() + 1e-6)
    values = [
        np.log2(max(tempo, 1.0) / 110.0),                        # tempo around 110 bpm
        np.log2(onset.mean() + 1e-3),                            # onset density
        onset.std() / (onset.mean() + 1e-6) - 1.0,               # onset spread (peaky vs smooth)
        np.log2(centroid / 2000.0 + 1e-6),                       # brightness around 2 kHz
        (np.log10(flatness + 1e-10) + 2.0) / 1.5,                # tonal (-) vs noisy (+)
        np.log2(zcr / 0.05 + 1e-6),
        (rms_db.std() - 6.0) / 4.0,                              # loudness dynamics around 6 dB
    ]
    return np.tanh(np.asarray(values, dtype=np.float64)) / np.sqrt(len(values))


def orthonormal_projection(rows: int, cols: int, seed: int) -> np.ndarray:
    """A [rows, cols] matrix with orthonormal columns, fixed by `seed` (rows >= cols)."""
    gauss = np.random.default_rng(seed).standard_normal((rows, cols))
    q, r = np.linalg.qr(gauss)
    return q * np.sign(np.diag(r))  # unique: R with a positive diagonal


@CONDITIONERS.register("style_features")
class FeatureStyle(StyleConditioner):
    """Weight-free 512-d style from librosa statistics (mel, MFCC, chroma, onsets, tempo) of a 10 s middle clip.

    sample_rate_hz: analysis rate (audio is resampled to it, mono). clip_seconds / min_seconds: the clip
    length taken from the middle of the song, and the shortest audio accepted. seed: the fixed projection.
    negative: the guidance negative, any value `prepare` accepts (audio, an .npy/.pt embedding), or None (zeros).
    Text prompts are not supported: use style_tags or style_mulan for them.
    """

    # The signal features the embedding is computed from. An evaluation that judges style must use others
    # (toolkit.eval.descriptors.FEATURES; tests/test_eval_embedder.py checks the two lists are disjoint).
    FEATURES = ("mel_spectrogram", "mfcc", "chroma", "onset_strength", "tempo", "spectral_centroid",
                "spectral_flatness", "zero_crossing_rate", "rms")

    def __init__(self, *, sample_rate_hz: int = 22050, clip_seconds: float = 10.0, min_seconds: float = 1.0,
                 seed: int = 1234, negative: Any = None):
        super().__init__(negative=negative)
        self.analysis_rate = int(sample_rate_hz)
        self.clip_seconds = float(clip_seconds)
        self.min_seconds = float(min_seconds)
        self.seed = int(seed)
        self._projection = torch.from_numpy(orthonormal_projection(STYLE_DIM, NUM_STATS, self.seed))

    def prepare(self, value: Any, *, num_frames: int | None = None) -> torch.Tensor:
        """An audio path, (wav, sr) or a stored embedding -> float32 [512], unit norm."""
        kind, payload = parse_style_value(value)
        if kind == "embedding":
            return embedding_from(payload, STYLE_DIM)
        if kind == "text":
            raise StyleError(f"style_features describes audio and cannot embed the text prompt {payload!r}; "
                             "use conditions.style.conditioner=style_tags (genre/mood/instrument tags) or "
                             "conditions.style.conditioner=style_mulan (MuQ-MuLan text) "
                             "for text prompts, or give a reference audio file")
        if kind == "audio":
            wav, _ = load_middle_clip(payload, self.analysis_rate, self.clip_seconds, self.min_seconds)
        else:
            wav = middle_clip_of(payload[0], payload[1], self.analysis_rate, self.clip_seconds, self.min_seconds)
        return self.embed_clip(wav)

    def embed_clip(self, wav: torch.Tensor | np.ndarray) -> torch.Tensor:
        """A mono clip at the analysis rate -> [512]."""
        wav = wav.detach().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav)
        stats = torch.from_numpy(clip_statistics(wav, self.analysis_rate))
        return unit((self._projection @ stats).float())

    def forward(self, prepared: torch.Tensor) -> torch.Tensor:
        if prepared.dim() != 2 or prepared.shape[-1] != STYLE_DIM:
            raise StyleError(f"style_features.forward takes prepared styles [B, {STYLE_DIM}], "
                             f"not {list(prepared.shape)}")
        return prepared
