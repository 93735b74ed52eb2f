"""NaNs are counted beside every mean, never silently dropped: the aggregate, the codec table."""

import math

import numpy as np
import pytest
import soundfile as sf

from toolkit.eval import codec_eval
from toolkit.eval.aggregate import summarise, summarise_rows, with_counts


def test_summarise_counts_what_it_skips():
    s = summarise([1.0, float("nan"), 3.0, None, float("-inf"), 2])
    assert s == {"mean": 2.0, "n": 3, "nan": 2}  # None: the figure does not apply, counted nowhere
    assert summarise([float("nan")]) == {"mean": None, "n": 0, "nan": 1}
    rows = [{"f": 0.5, "g": 1.0}, {"f": float("nan")}, {"f": 1.0}]
    agg = summarise_rows(rows, ["f", "g", "h"])
    assert agg["count"] == 3 and agg["f"] == pytest.approx(0.75) and agg["g"] == 1.0 and agg["h"] is None
    assert agg["n"] == {"f": 2, "g": 1} and agg["nan"] == {"f": 1, "g": 0}
    assert with_counts(0.75, 2, 1) == "0.750 (2, 1 NaN)"
    assert with_counts(None, 0, 1) == "(0, 1 NaN)" and with_counts(None, 0, 0) == ""


class IdentityCodec:
    sample_rate, channels = 16000, 1

    def encode(self, wav):
        return wav.transpose(1, 2)

    def decode(self, z):
        return z.transpose(1, 2)


def test_a_pesq_failure_is_counted_beside_the_codec_mean(tmp_path, monkeypatch):
    for i in range(3):
        sf.write(tmp_path / f"c{i}.wav", 0.1 * np.sin(np.arange(16000) * (0.05 + 0.01 * i)).astype(np.float32), 16000)
    calls = []

    def figures(reference, estimate, sample_rate):
        calls.append(1)
        return {"si_sdr": 10.0 * len(calls), "stft_distance": 0.1, "mel_distance": 0.2, "stoi": 0.9,
                "pesq_wb": float("nan") if len(calls) == 2 else 4.0, "mcd": 1.0}

    monkeypatch.setattr(codec_eval, "reconstruction_figures", figures)
    files = codec_eval.audio_files(tmp_path)
    row = codec_eval.evaluate_codec(IdentityCodec(), files, "identity", log=lambda _: None)
    assert row["pesq_wb"] == pytest.approx(4.0) and row["n"]["pesq_wb"] == 2 and row["nan"]["pesq_wb"] == 1
    assert row["si_sdr"] == pytest.approx(20.0) and row["nan"]["si_sdr"] == 0
    assert math.isnan(row["files"][1]["pesq_wb"])
    table = codec_eval.codec_table({"codecs": [row]})
    assert "4.000 (2, 1 NaN)" in table and "20.000 (3, 0 NaN)" in table
