"""Each metric on inputs with known answers."""

import math

import numpy as np
import pytest

from toolkit.eval.codec_metrics import mel_cepstral_distortion, mel_distance, pesq_wideband, si_sdr, stft_distance, stoi
from toolkit.eval.distances import cosine_similarity, frechet_distance, kernel_distance
from toolkit.eval.loudness import clipping_fraction, integrated_lufs, level_figures, true_peak_dbfs
from toolkit.eval.timing import f_measure, lrc_line_starts, lyric_timing
from toolkit.registry import METRICS

RNG = np.random.default_rng(1234)


# ---------------------------------------------------------------------------------------------------
# Set distances


def _sets(n=40, m=30, d=16):
    return RNG.standard_normal((n, d)), RNG.standard_normal((m, d))


def _unit(a):
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def test_identical_sets_have_zero_frechet_and_near_zero_kernel_distance():
    x, _ = _sets()
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    # Unit-norm 512-d embeddings, as the style embeddings are.
    centre = RNG.standard_normal(512) * 0.3
    songs = _unit(centre + 0.1 * RNG.standard_normal((40, 512)))
    same = kernel_distance(songs, songs)
    shift = np.zeros(512)
    shift[:8] = 0.3
    assert abs(same) < 1e-4 and abs(same) < 0.05 * kernel_distance(songs, _unit(songs + shift))
    # The unbiased estimator's value on identical sets is exactly (2/n)(mean off-diagonal k - mean diagonal k).
    k = (songs @ songs.T / 512 + 1.0) ** 3
    off = (k.sum() - np.trace(k)) / (40 * 39)
    assert same == pytest.approx(2 / 40 * (off - np.trace(k) / 40), rel=1e-9)


def test_distances_grow_monotonically_with_the_shift():
    x, y = _sets(n=200, m=200)
    direction = np.zeros(x.shape[1])
    direction[3] = 1.0
    fd = [frechet_distance(x, x + s * direction) for s in (0.0, 0.5, 1.0, 2.0, 4.0)]
    kd = [kernel_distance(x, y + s * direction) for s in (0.0, 0.5, 1.0, 2.0, 4.0)]
    assert all(a < b for a, b in zip(fd, fd[1:], strict=False)) and all(a < b for a, b in zip(kd, kd[1:], strict=False))
    # A pure shift leaves the covariances equal: the Frechet distance is the squared shift.
    assert fd[3] == pytest.approx(4.0, rel=1e-9) and fd[4] == pytest.approx(16.0, rel=1e-9)


def test_frechet_matches_the_matrix_square_root_formula():
    from scipy import linalg

    for n, m, d in ((50, 40, 8), (6, 9, 12), (30, 30, 30)):
        x = RNG.standard_normal((n, d))
        y = RNG.standard_normal((m, d)) @ RNG.standard_normal((d, d)) * 0.5 + 0.2
        s_x, s_y = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
        expected = (np.sum((x.mean(0) - y.mean(0)) ** 2) + np.trace(s_x) + np.trace(s_y)
                    - 2 * np.trace(np.real(linalg.sqrtm(s_x @ s_y))))
        assert frechet_distance(x, y) == pytest.approx(expected, rel=1e-6)


def test_kernel_distance_is_the_unbiased_polynomial_mmd():
    x, y = RNG.standard_normal((5, 3)), RNG.standard_normal((4, 3)) + 0.5

    def k(a, b):
        return (a @ b / 3 + 1.0) ** 3

    xx = np.mean([k(x[i], x[j]) for i in range(5) for j in range(5) if i != j])
    yy = np.mean([k(y[i], y[j]) for i in range(4) for j in range(4) if i != j])
    xy = np.mean([k(a, b) for a in x for b in y])
    assert kernel_distance(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)


def test_distance_inputs_are_checked():
    with pytest.raises(ValueError, match="embedding sizes differ"):
        frechet_distance(np.zeros((3, 4)), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="at least 2 items"):
        kernel_distance(np.zeros((1, 4)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(np.full((3, 4), np.nan), np.zeros((3, 4)))


def test_cosine_and_registered_metrics():
    assert cosine_similarity([1, 0], [0, 2]) == pytest.approx(0.0)
    assert cosine_similarity([1, 1], [2, 2]) == pytest.approx(1.0)
    x, y = _sets()
    figure = METRICS.build("frechet").compute(generated=x, reference=y)["frechet"]
    assert figure == pytest.approx(frechet_distance(x, y))
    kd = METRICS.build({"type": "kernel_distance", "degree": 3}).compute(generated=x, reference=y)
    assert kd["kernel_distance"] == pytest.approx(kernel_distance(x, y))
    assert METRICS.build("style_adherence").compute(prompt=[1, 0], output=[1, 0])["style_adherence"] == 1.0


# ---------------------------------------------------------------------------------------------------
# Loudness and clipping


def _sine(amplitude, freq=997.0, sr=48000, seconds=3.0, phase=0.0):
    t = np.arange(int(sr * seconds)) / sr
    return amplitude * np.sin(2 * np.pi * freq * t + phase)


def test_sine_loudness_matches_bs1770():
    # EBU Tech 3341 case 1: a stereo 997 Hz sine at -23 dBFS reads -23 LUFS; a mono channel reads 3.01 LU
    # less (one channel of power); a full-scale mono sine reads -3.01 LUFS.
    a = 10 ** (-23 / 20)
    assert integrated_lufs(np.stack([_sine(a), _sine(a)]), 48000) == pytest.approx(-23.0, abs=0.5)
    assert integrated_lufs(_sine(a), 48000) == pytest.approx(-26.01, abs=0.5)
    assert integrated_lufs(_sine(1.0), 48000) == pytest.approx(-3.01, abs=0.5)
    assert integrated_lufs(_sine(1.0, sr=44100), 44100) == pytest.approx(-3.01, abs=0.5)
    # Loudness follows gain: 20 dB down is 20 LU down.
    assert integrated_lufs(_sine(0.1), 48000) == pytest.approx(integrated_lufs(_sine(1.0), 48000) - 20, abs=0.05)
    assert integrated_lufs(np.zeros(48000), 48000) == -math.inf


def test_clipping_fraction_of_a_clipped_sine():
    clipped = np.clip(_sine(2.0), -1.0, 1.0)
    # |2 sin| >= 0.999 on a fraction 1 - (2/pi) asin(0.4995) of the period.
    assert clipping_fraction(clipped) == pytest.approx(1 - 2 / np.pi * np.arcsin(0.4995), abs=2e-3)
    assert clipping_fraction(_sine(0.5)) == 0.0
    figures = level_figures(clipped, 48000)
    assert figures["clipping_fraction"] > 0.6 and figures["sample_peak_dbfs"] == pytest.approx(0.0)


def test_true_peak_sees_inter_sample_peaks():
    # A sine at fs/4 with a 45 degree phase: every sample sits at +-0.707, the waveform peaks at 1.0.
    x = _sine(1.0, freq=12000.0, sr=48000, phase=np.pi / 4)
    assert 20 * np.log10(np.abs(x).max()) == pytest.approx(-3.01, abs=0.01)
    assert true_peak_dbfs(x, 48000) == pytest.approx(0.0, abs=0.3)


def test_silence_is_flagged():
    assert level_figures(np.zeros(4800), 48000)["non_silent"] == 0.0
    assert level_figures(_sine(0.1, seconds=0.1), 48000)["non_silent"] == 1.0


# ---------------------------------------------------------------------------------------------------
# Codec reconstruction figures

SR = 16000


def _signal(seconds=2.0):
    t = np.arange(int(SR * seconds)) / SR
    return (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
            + 0.1 * np.sin(2 * np.pi * 1250 * t) + 0.01 * RNG.standard_normal(len(t)))


def _with_noise(x, snr_db):
    noise = RNG.standard_normal(len(x))
    noise -= noise.mean()
    noise *= np.linalg.norm(x - x.mean()) / np.linalg.norm(noise) / 10 ** (snr_db / 20)
    return x + noise


def test_si_sdr_of_scaled_and_noisy_copies():
    x = _signal()
    assert si_sdr(x, 0.25 * x) > 100.0
    for snr in (0.0, 10.0, 20.0):
        assert si_sdr(x, _with_noise(x, snr)) == pytest.approx(snr, abs=0.3)
    noisy = _with_noise(x, 10.0)
    assert si_sdr(x, 3.0 * noisy) == pytest.approx(si_sdr(x, noisy), abs=1e-9)  # scale-invariant
    assert si_sdr(x, np.concatenate([x, np.zeros(100)])) > 100.0  # a codec's padding is trimmed


def test_spectral_distances_are_zero_for_identical_and_grow_with_noise():
    x = _signal()
    assert mel_cepstral_distortion(x, x, SR) == 0.0
    assert stft_distance(x, x) == 0.0 and mel_distance(x, x, SR) == 0.0
    mcd = [mel_cepstral_distortion(x, _with_noise(x, s), SR) for s in (30.0, 10.0, 0.0)]
    stft = [stft_distance(x, _with_noise(x, s)) for s in (30.0, 10.0, 0.0)]
    assert 0 < mcd[0] < mcd[1] < mcd[2] and 0 < stft[0] < stft[1] < stft[2]


def test_stoi_and_pesq_rank_identical_above_noisy():
    x = _signal(3.0)
    noisy = _with_noise(x, 0.0)
    assert stoi(x, x, SR) == pytest.approx(1.0, abs=1e-6) and stoi(x, noisy, SR) < 0.9
    assert pesq_wideband(x, x, SR) > 4.5 and pesq_wideband(x, noisy, SR) < 3.0
    assert pesq_wideband(np.repeat(x, 3), np.repeat(x, 3), 48000) > 4.5  # resampled to 16 kHz
    si = METRICS.build("si_sdr").compute(reference=x, estimate=x)
    assert si["si_sdr"] > 100


# ---------------------------------------------------------------------------------------------------
# Lyric timing

STARTS = [1.0, 4.5, 8.0, 11.2, 15.0]


def test_f_measure_of_onsets():
    assert f_measure(STARTS, STARTS, 0.1) == {"f": 1.0, "precision": 1.0, "recall": 1.0}
    assert f_measure(STARTS, [s + 0.09 for s in STARTS], 0.1)["f"] == 1.0
    assert f_measure(STARTS, [s + 1.5 for s in STARTS], 0.5)["f"] == 0.0
    half = f_measure(STARTS, STARTS[:2] + [20.0, 21.0], 0.1)
    assert half["precision"] == 0.5 and half["recall"] == 0.4 and half["f"] == pytest.approx(2 * 0.2 / 0.9)
    # One to one: two onsets near one line start count once.
    assert f_measure([1.0], [0.95, 1.05], 0.1)["precision"] == 0.5


def test_lrc_line_starts():
    lrc = ("[ti:Title]\n[ar:Someone]\n[00:01.00]first line\n[00:04.50] second\n\n[00:08.000]third\n"
           "[00:11.20][01:11.20]chorus\n[00:15.00]last\n[00:18.00]\n")
    assert lrc_line_starts(lrc) == [1.0, 4.5, 8.0, 11.2, 15.0, 71.2]


def _phrases(starts, sr=22050, seconds=20.0):
    rng = np.random.default_rng(0)
    y = 0.003 * rng.standard_normal(int(seconds * sr))
    t = np.arange(int(2.0 * sr)) / sr
    phrase = 0.3 * np.sin(2 * np.pi * 440 * t) * np.minimum(1.0, t / 0.02) * (0.6 + 0.4 * np.cos(2 * np.pi * 4 * t))
    for s in starts:
        i = int(s * sr)
        y[i:i + len(phrase)] += phrase[: len(y) - i]
    return y


def test_lyric_timing_is_one_for_phrases_at_the_lrc_starts_and_low_when_shuffled():
    lrc = "\n".join(f"[00:{s:05.2f}]line" for s in STARTS)
    aligned = lyric_timing(_phrases(STARTS), 22050, lrc, tolerance=0.3)
    assert aligned["f"] == 1.0 and aligned["lines"] == 5
    assert aligned["chance_f"] == pytest.approx(5 * 0.6 / 20.0)
    shuffled = lyric_timing(_phrases([2.7, 6.2, 9.7, 13.1, 17.0]), 22050, lrc, tolerance=0.3)
    assert shuffled["f"] <= 0.2
    assert lyric_timing(_phrases(STARTS), 22050, "") == {}  # instrumental: nothing to measure
    metric = METRICS.build("lyric_timing").compute(wav=_phrases(STARTS), sample_rate=22050, lrc=STARTS)
    assert metric["lyric_timing_f"] == 1.0 and metric["lrc_lines"] == 5
