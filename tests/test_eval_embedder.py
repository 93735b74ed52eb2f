"""The evaluation embedder is not the conditioner: disjoint declared features, disjoint features actually
computed, and it tells clearly different timbres apart."""

import librosa
import numpy as np
import pytest
import soundfile as sf

from toolkit.conditioners.style_features import FeatureStyle, clip_statistics
from toolkit.eval import descriptors
from toolkit.eval.embeddings import build_embedder
from toolkit.eval.style_classes import class_separation, nearest_class, reference_labels

SR = 22050
# Representations both may start from: they are inputs, not descriptors.
SHARED_INPUTS = {"stft", "istft", "power_to_db", "amplitude_to_db", "db_to_power", "fft_frequencies", "resample"}


def test_declared_features_are_disjoint():
    evaluation, conditioner = set(descriptors.FEATURES), set(FeatureStyle.FEATURES)
    assert evaluation and conditioner
    assert not evaluation & conditioner, evaluation & conditioner
    assert build_embedder("descriptors").features == descriptors.FEATURES
    assert build_embedder("features").features == FeatureStyle.FEATURES


TOP_LEVEL = ("stft", "power_to_db", "amplitude_to_db", "fft_frequencies", "resample", "yin", "pyin", "piptrack",
             "cqt", "autocorrelate", "zero_crossings")


def _record_librosa_calls(monkeypatch) -> set[str]:
    """Wrap every public function of librosa.feature / .onset / .decompose / .beat and the signal functions of
    the top level, so the names a computation calls are recorded."""
    called: set[str] = set()
    targets = [(m, n) for m in (librosa.feature, librosa.onset, librosa.decompose, librosa.beat) for n in dir(m)]
    targets += [(librosa, n) for n in TOP_LEVEL]
    for module, name in targets:
        fn = getattr(module, name)
        if name.startswith("_") or not callable(fn) or isinstance(fn, type):
            continue

        def wrapper(*args, _fn=fn, _name=name, **kwargs):
            called.add(_name)
            return _fn(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)
    return called


def test_the_features_actually_computed_are_disjoint(monkeypatch):
    """Not only the declared lists: the librosa features each side calls share nothing but the STFT."""
    y = _tone(220.0, bright=True, seed=0)
    called = _record_librosa_calls(monkeypatch)
    descriptors.describe(y, SR)
    evaluation = set(called) - SHARED_INPUTS
    called.clear()
    clip_statistics(y, SR)
    conditioner = set(called) - SHARED_INPUTS
    monkeypatch.undo()
    assert {"spectral_contrast", "spectral_bandwidth", "spectral_rolloff", "hpss", "yin"} <= evaluation
    assert {"melspectrogram", "mfcc", "chroma_stft", "onset_strength"} <= conditioner
    assert not evaluation & conditioner, evaluation & conditioner


def _tone(pitch: float, bright: bool, seed: int, seconds: float = 4.0, notes_per_second: float = 2.0,
          noise: float = 0.0) -> np.ndarray:
    """A melody of harmonic notes: `bright` = 12 harmonics at 1/k, else 3 at 1/k^2; optional noise bursts."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    y = np.zeros(n)
    note = int(SR / notes_per_second)
    harmonics = [(k, 1.0 / k) for k in range(1, 13)] if bright else [(k, 1.0 / k ** 2) for k in range(1, 4)]
    for start in range(0, n, note):
        f = pitch * 2 ** (rng.integers(-4, 5) / 12)
        t = np.arange(min(note, n - start)) / SR
        env = np.minimum(1.0, t / 0.01) * np.exp(-t * 2.0)
        y[start:start + t.size] += env * sum(a * np.sin(2 * np.pi * f * k * t) for k, a in harmonics)
        if noise:
            y[start:start + t.size] += noise * env * np.exp(-t * 30.0) * rng.standard_normal(t.size)
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


def test_descriptors_tell_clearly_different_timbres_apart():
    kinds = {"bright_slow": dict(bright=True, notes_per_second=1.5),
             "dull_fast": dict(bright=False, notes_per_second=5.0),
             "percussive": dict(bright=False, notes_per_second=3.0, noise=3.0),
             "bright_high": dict(bright=True, notes_per_second=3.0)}
    pitches = {"bright_slow": 196.0, "dull_fast": 262.0, "percussive": 147.0, "bright_high": 523.0}
    raw, labels = [], []
    for kind, kwargs in kinds.items():
        for seed in range(3):
            raw.append(descriptors.describe(_tone(pitches[kind] * (1 + 0.03 * seed), seed=seed, **kwargs), SR))
            labels.append(kind)
    space = descriptors.standardiser(np.stack(raw))
    x = space(np.stack(raw))
    sep = class_separation(x, labels)
    assert sep["accuracy"] == 1.0 and sep["classes"] == 4
    assert sep["within_cosine"] > sep["between_cosine"] + 0.3, sep
    # a new item of a class is placed in its class
    new = space(descriptors.describe(_tone(150.0, bright=False, seed=9, notes_per_second=3.0, noise=3.0), SR))
    assert nearest_class(new, x, labels) == "percussive"


def test_descriptors_ignore_gain_and_need_sound():
    y = _tone(220.0, bright=True, seed=1)
    np.testing.assert_allclose(descriptors.describe(0.25 * y, SR), descriptors.describe(y, SR), rtol=1e-3, atol=1e-3)
    with pytest.raises(descriptors.DescriptorError, match="silent"):
        descriptors.describe(np.zeros(2 * SR, dtype=np.float32), SR)
    with pytest.raises(descriptors.DescriptorError, match="at least 1 s"):
        descriptors.describe(y[: SR // 2], SR)


def test_reference_window_reads_the_first_seconds(tmp_path):
    y = np.concatenate([_tone(220.0, bright=True, seed=2, seconds=3.0), _tone(440.0, bright=False, seed=3)])
    sf.write(tmp_path / "r.wav", y, SR, subtype="FLOAT")  # no quantisation noise: the same samples
    embedder = build_embedder("descriptors")
    np.testing.assert_allclose(embedder.embed_audio(tmp_path / "r.wav", 3.0), descriptors.describe(y[: 3 * SR], SR),
                               rtol=1e-4, atol=1e-4)
    assert not np.allclose(embedder.embed_audio(tmp_path / "r.wav"), embedder.embed_audio(tmp_path / "r.wav", 3.0))


def test_reference_labels_from_ensemble_or_distinguishing_genres():
    genres = {"a": {"genres": ["chorale", "baroque", "organ"]}, "b": {"genres": ["chorale", "baroque", "brass"]},
              "c": {"genres": ["chorale", "baroque", "organ"]}}
    assert reference_labels(genres) == {"a": "organ", "b": "brass", "c": "organ"}
    assert reference_labels({"a": {"ensemble": "piano", "genres": ["x"]}, "b": {"ensemble": "organ"}}) == \
        {"a": "piano", "b": "organ"}
    assert reference_labels({"a": {"genres": ["pop"]}, "b": {"genres": ["pop"]}}) == {}  # nothing tells them apart
