"""The evaluate CLI end to end on tiny synthetic folders: songs (two groups), codec, report."""

import json
import math
import struct

import numpy as np
import pytest
import soundfile as sf
import torch

from toolkit.bin.evaluate import main
from toolkit.protocols import Codec
from toolkit.registry import CODECS

SR = 22050
SECONDS = 12.0
LINES = [1.0, 4.0, 7.5, 10.0]
SHUFFLED = [2.4, 5.6, 8.8, 11.3]
LRC = "[ti:test]\n" + "\n".join(f"[00:{t:05.2f}]line {i}" for i, t in enumerate(LINES)) + "\n"


def song(starts, pitch, seed, noise=0.002):
    """Tone phrases (pitch harmonics, 4 Hz syllable pulses) starting at `starts`, over faint noise."""
    rng = np.random.default_rng(seed)
    y = noise * rng.standard_normal(int(SECONDS * SR))
    t = np.arange(int(1.8 * SR)) / SR
    phrase = sum(0.15 / k * np.sin(2 * np.pi * pitch * k * t) for k in (1, 2, 3))
    phrase *= np.minimum(1.0, t / 0.02) * (0.6 + 0.4 * np.cos(2 * np.pi * 4 * t))
    for s in starts:
        i = int(s * SR)
        n = min(len(phrase), len(y) - i)
        y[i:i + n] += phrase[:n]
    return y.astype(np.float32)


def write_manifest(path, condition, style_audio, wall=3.0, rss=512.0, lrc=LRC, request_only=False):
    """The generation CLI's manifest; `request_only`: the id and style only inside the request, as
    toolkit.bin.generate's requests carry them (title, style_audio)."""
    manifest = {"request": {"id": path.stem.split("_")[0]}, "seconds": SECONDS, "wall_seconds": wall,
                "peak_rss_mb": rss, "lrc": lrc, "style": {"audio": str(style_audio), "text": None},
                "condition": condition}
    if request_only:
        manifest["request"] = {"title": path.stem.split("_")[0], "style_audio": str(style_audio)}
        del manifest["style"]
    path.with_suffix(".json").write_text(json.dumps(manifest))


@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    """<exp>/data/valid.jsonl + refs, <exp>/songs with a full and a dropped group, trainer log, config."""
    root = tmp_path_factory.mktemp("exp")
    data = root / "data"
    (data / "ref").mkdir(parents=True)
    (data / "a.lrc").write_text(LRC)
    refs = {}
    for name, pitch, seed in (("a", 220.0, 1), ("b", 330.0, 2)):
        refs[name] = data / "ref" / f"{name}.wav"
        sf.write(refs[name], song(LINES, pitch, seed), SR)
    with open(data / "valid.jsonl", "w") as fh:
        fh.write(json.dumps({"id": "a", "audio": "ref/a.wav", "lrc": "a.lrc"}) + "\n")
        # As toolkit.bin.prepare writes it: absolute path, the LRC in "lyrics".
        fh.write(json.dumps({"id": "b", "path": str(refs["b"].resolve()), "lyrics": LRC, "lyrics_kind": "lrc",
                             "title": "B"}) + "\n")
    # Piece a was held out of training, piece b was trained on.
    (data / "held_out.jsonl").write_text(json.dumps({"id": "a", "audio": "ref/a.wav"}) + "\n")
    songs = root / "songs"
    songs.mkdir()
    for name, pitch, seed in (("a", 220.0, 11), ("b", 330.0, 12)):
        # Conditioned: the reference's timbre and the LRC's timing. Dropped: other pitch, other timing.
        full = songs / f"{name}.wav"
        sf.write(full, song(LINES, pitch * 1.01, seed), SR)
        write_manifest(full, "full", refs[name], wall=6.0)
        dropped = songs / f"{name}_dropped.wav"
        sf.write(dropped, song(SHUFFLED, pitch * 2.7, seed + 10, noise=0.05), SR)
        # No LRC recorded: the reference manifest's is used.
        write_manifest(dropped, "dropped", refs[name], wall=3.0, lrc=None, request_only=name == "b")
    with open(root / "metrics.jsonl", "w") as fh:
        for step in range(1, 41):
            row = {"step": step, "loss": 1.0 / step}
            if step % 10 == 0:
                row.update(valid_loss=1.2 / step, valid_loss_dropped=1.5 / step)
            fh.write(json.dumps(row) + "\n")
        fh.write('{"step": 41, "lo')  # a torn last line must not break the report
    (root / "config.yaml").write_text("codec: mel\nbackbone:\n  type: dit_diffrhythm\n  depth: 2\n")
    (root / "train_summary.json").write_text(json.dumps({"initial_step": 0, "initial_valid_loss": 2.0, "final_step": 40,
                                                         "final_valid_loss": 1.2, "final_valid_loss_dropped": 1.5,
                                                         "valid_times": [0.0, 0.05], "valid_drop": ["lyrics", "style"],
                                                         "valid_weights": "ema"}))
    return root


@pytest.fixture(scope="module")
def songs_result(exp):
    out = exp / "report"
    assert main(["songs", "--songs", str(exp / "songs"), "--manifest", str(exp / "data" / "valid.jsonl"),
                 "--held-out", str(exp / "data" / "held_out.jsonl"), "--self-consistency", "features",
                 "--out", str(out)]) == 0
    return json.loads((out / "evaluation.json").read_text()), (out / "evaluation.md").read_text()


def test_songs_command_reports_both_groups_and_the_better_one(songs_result):
    doc, md = songs_result
    assert set(doc["groups"]) == {"full", "dropped"}
    full, dropped = doc["groups"]["full"], doc["groups"]["dropped"]
    assert full["count"] == dropped["count"] == 2
    assert doc["reference_count"] == 2 and doc["embedding"] == "descriptors"
    assert doc["self_consistency"] == "features" and "warning" not in doc["embedding_info"]
    assert doc["reference_window_seconds"] == pytest.approx(SECONDS)
    # Conditioned songs follow the style prompt and the LRC timing; the dropped ones do not.
    assert full["style_adherence"] > dropped["style_adherence"]
    assert full["lyric_timing_f"] == pytest.approx(1.0)
    assert dropped["lyric_timing_f"] < 0.5
    assert full["lyric_timing_reference_f"] == pytest.approx(1.0)
    assert doc["comparison"]["style_adherence"]["best"] == "full"
    assert doc["comparison"]["lyric_timing_f"]["best"] == "full"
    assert doc["comparison"]["frechet"]["best"] == "full"
    # Figures read from the manifests.
    assert full["rtf"] == pytest.approx(0.5) and dropped["rtf"] == pytest.approx(0.25)
    assert full["peak_rss_mb"] == pytest.approx(512.0)
    assert full["non_silent"] == 1.0 and full["duration"] == pytest.approx(SECONDS)
    assert math.isfinite(full["lufs"]) and full["kernel_distance"] is not None
    # Held-out columns: piece a only; b is listed as a training song.
    assert doc["held_out_songs"] == ["a"] and doc["training_songs"] == ["b"]
    assert full["held_out"]["count"] == 1 and full["training"]["count"] == 1
    assert full["held_out"]["lyric_timing_f"] == pytest.approx(1.0)
    assert full["held_out"]["style_adherence"] > dropped["held_out"]["style_adherence"]
    assert full["n"]["style_adherence"] == 2 and full["nan"]["style_adherence"] == 0
    # The conditioner's space is reported beside, as self-consistency only.
    assert all(r.get("self_consistency") is not None for r in doc["songs"])
    # Markdown: the groups as columns (held-out first), NaN counts beside every mean, the verdicts.
    assert "| figure | full: held-out | full: training | full: all | dropped: held-out |" in md
    assert "| style adherence (higher better) |" in md and "(2, 0 NaN)" in md and "(1, 0 NaN)" in md
    assert "Songs of **training** pieces (the model saw them): `b`" in md
    assert "Style was scored with `descriptors` (features spectral_contrast" in md
    assert "Self-consistency with `features`" in md and "not style" in md
    assert "On the songs of held-out pieces (not trained on):" in md
    assert "- yes: style adherence: conditioned songs beat the same requests with lyrics and style dropped" in md
    assert "style adherence (higher is better): **full**" in md
    assert "lyric timing F (higher is better): **full**" in md


def test_songs_command_without_manifest_or_manifest_json(tmp_path, exp):
    """Songs without X.json and without a reference manifest: levels only, one group, no crash."""
    songs = tmp_path / "bare"
    songs.mkdir()
    sf.write(songs / "x.wav", song(LINES, 200.0, 5), SR)
    sf.write(songs / "silent.wav", np.zeros(SR, dtype=np.float32), SR)
    (songs / "silent.json").write_text(json.dumps({"lrc": "[00:61.00]seconds over 59"}))
    assert main(["songs", "--songs", str(songs), "--out", str(tmp_path / "out"), "--embedding", "none"]) == 0
    doc = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    md = (tmp_path / "out" / "evaluation.md").read_text()
    assert "silent.wav (all): LRC not readable" in md
    assert list(doc["groups"]) == ["all"]
    assert doc["groups"]["all"]["non_silent"] == pytest.approx(0.5)
    # The unreadable LRC is a lyric timing NaN (x.wav has no LRC: no figure), counted, not dropped; the
    # silent song's -inf LUFS is counted the same way beside x.wav's LUFS.
    group = doc["groups"]["all"]
    assert group["lyric_timing_f"] is None and group["n"]["lyric_timing_f"] == 0
    assert group["nan"]["lyric_timing_f"] == 1
    assert group["n"]["lufs"] == 1 and group["nan"]["lufs"] == 1
    assert "| lyric timing F (higher better) | (0, 1 NaN) |" in md and "(1, 1 NaN)" in md
    assert doc["groups"]["all"]["rtf"] is None


def test_songs_command_bad_input_is_a_one_line_error(tmp_path, capsys):
    assert main(["songs", "--songs", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "songs folder not found" in capsys.readouterr().err
    (tmp_path / "bad.jsonl").write_text('{"id": "a"}\nnot json\n')
    (tmp_path / "s0").mkdir()
    sf.write(tmp_path / "s0" / "x.wav", np.zeros(SR, dtype=np.float32), SR)
    assert main(["songs", "--songs", str(tmp_path / "s0"), "--out", str(tmp_path / "o"),
                 "--manifest", str(tmp_path / "bad.jsonl")]) == 2
    assert "bad.jsonl:2: not a JSON object" in capsys.readouterr().err
    assert main(["songs", "--songs", str(tmp_path / "s0"), "--out", str(tmp_path / "o"), "--embedding", "none",
                 "--reference-dir", str(tmp_path / "no_refs")]) == 2
    assert "--reference-dir: folder not found" in capsys.readouterr().err
    (tmp_path / "s").mkdir()
    sf.write(tmp_path / "s" / "x.wav", np.zeros(SR, dtype=np.float32), SR)
    assert main(["songs", "--songs", str(tmp_path / "s"), "--out", str(tmp_path / "o"), "--embedding", "clap"]) == 2
    assert "clap:PATH" in capsys.readouterr().err


class ToyRandomCodec(Codec):
    """Test codec: frames of 64 samples, 'decoded' as noise; marked as having random weights."""

    sample_rate, channels, hop_length, latent_dim = 16000, 1, 64, 64
    random_weights = True

    def encode(self, wav):
        n = wav.shape[-1] // self.hop_length
        return wav[..., : n * self.hop_length].reshape(wav.shape[0], n, self.hop_length)

    def decode(self, z):
        return torch.randn(z.shape[0], 1, z.shape[1] * self.hop_length) * 0.1


if "toy_random_test" not in CODECS._entries:
    CODECS.register("toy_random_test")(ToyRandomCodec)


def test_codec_command_writes_its_table(tmp_path, capsys):
    audio = tmp_path / "audio"
    audio.mkdir()
    for i, pitch in enumerate((220.0, 440.0)):
        sf.write(audio / f"clip{i}.wav", song([0.1], pitch, i)[: int(1.5 * SR)], SR)
    out = tmp_path / "out"
    nodes = ["{type: mel, griffin_lim_iters: 4}"] if "mel" in CODECS.names() else []
    args = ["codec", "--audio-dir", str(audio), "--out", str(out), "max_seconds=1.0"]
    for node in nodes + ["toy_random_test"]:
        args += ["--codec", node]
    assert main(args) == 0
    doc = json.loads((out / "codec_evaluation.json").read_text())
    rows = {r["codec"]: r for r in doc["codecs"]}
    toy = rows["toy_random_test"]
    assert toy["random_weights"] and toy["label"] == "toy_random_test (random weights)"
    assert toy["si_sdr"] is None and toy["pesq_wb"] is None and toy["encode_rtf"] > 0 and toy["peak_rss_mb"] > 0
    assert all("si_sdr" not in f for f in toy["files"])  # not computed at all
    md = (out / "codec_evaluation.md").read_text()
    toy_row = next(line for line in md.splitlines() if line.startswith("| toy_random_test"))
    cells = [c.strip() for c in toy_row.strip("|").split("|")]
    assert cells[0] == "toy_random_test (random weights)" and cells[1:7] == [""] * 6 and cells[7] != ""
    if nodes:
        mel = rows["mel(griffin_lim_iters=4)"]
        assert not mel["random_weights"]
        for key in ("si_sdr", "stft_distance", "mel_distance", "stoi", "pesq_wb", "mcd"):
            assert mel[key] is not None and math.isfinite(mel[key])
        assert 0.0 < mel["stft_distance"] and mel["mcd"] > 0
        assert (out / "audio" / "mel_griffin_lim_iters=4_" / "clip0.wav").is_file()
        assert sf.info(out / "audio" / "mel_griffin_lim_iters=4_" / "clip0.wav").duration <= 1.05
    assert "| codec |" in capsys.readouterr().out


def test_codec_command_rejects_unknown_codec_and_option(tmp_path, capsys):
    audio = tmp_path / "audio"
    audio.mkdir()
    sf.write(audio / "x.wav", np.zeros(SR, dtype=np.float32), SR)
    assert main(["codec", "--codec", "no_such_codec", "--audio-dir", str(audio), "--out", str(tmp_path / "o")]) == 2
    assert "unknown codec 'no_such_codec'" in capsys.readouterr().err
    assert main(["codec", "--codec", "toy_random_test", "--audio-dir", str(audio), "--out", str(tmp_path / "o"),
                 "speed=3"]) == 2
    assert "unknown option" in capsys.readouterr().err


def _png_size(path):
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def test_report_command_writes_report_with_pictures(exp, songs_result, capsys):
    assert main(["report", "--exp", str(exp)]) == 0
    report = (exp / "report.md").read_text()
    figures = exp / "report" / "figures"
    assert "![loss curve](report/figures/loss.png)" in report
    width, height = _png_size(figures / "loss.png")
    assert width > 100 and height > 100
    for name in ("a", "a_dropped", "b", "b_dropped"):
        assert f"![spectrogram](report/figures/spec_{name}.png)" in report
        _png_size(figures / f"spec_{name}.png")
        assert f"`songs/{name}.wav`" in report
    assert "| figure | full: held-out |" in report                  # the figures table
    assert "depth: 2" in report                                      # the resolved config
    assert "torch" in report and "cpu_count" in report               # machine and versions
    assert "`data/ref/a.wav`" in report                              # where to listen to the reference
    assert "loss (flow times 0, 0.05, as `train.valid_times` sets): 2.0000 at step 0, 1.2000 at step 40 (0.60 of " \
           "the start)" in report                                     # the trainer's three figures
    assert "dropped (same noise and times): 1.5000 (the conditioned loss is 20.0 % lower)" in report
    assert "- validated on the EMA weights (the ones generation loads)" in report
    assert report.count("| held-out |") == 2 and report.count("| training |") == 2  # a held out, b trained on


def test_report_command_names_what_is_missing(tmp_path):
    exp = tmp_path / "empty_exp"
    exp.mkdir()
    assert main(["report", "--exp", str(exp)]) == 0
    report = (exp / "report.md").read_text()
    assert "No songs evaluation found" in report and "evaluate songs" in report
    assert "No training log" in report and "No songs under" in report


def test_a_song_too_short_to_embed_is_noted_not_fatal(exp, tmp_path):
    """The weight-free embedding needs 1 s; a shorter song keeps its other figures and says why it has
    no style adherence, and the other songs are still compared."""
    songs = tmp_path / "songs"
    songs.mkdir()
    ref = exp / "data" / "ref" / "a.wav"
    sf.write(songs / "a.wav", song(LINES, 221.0, 5), SR)
    write_manifest(songs / "a.wav", "full", ref)
    sf.write(songs / "a_short.wav", song([0.1], 221.0, 6)[: int(0.6 * SR)], SR)
    write_manifest(songs / "a_short.wav", "full", ref)
    out = tmp_path / "report"
    assert main(["songs", "--songs", str(songs), "--manifest", str(exp / "data" / "valid.jsonl"),
                 "--out", str(out)]) == 0
    rows = {r["song"].rsplit("/", 1)[-1]: r for r in json.loads((out / "evaluation.json").read_text())["songs"]}
    short, whole = rows["a_short.wav"], rows["a_short.wav".replace("_short", "")]
    assert short["style_adherence"] is None and "need at least 1 s" in short["note"]  # NaN in the JSON: null
    assert short["duration"] == pytest.approx(0.6, abs=1e-3) and "lufs" in short
    assert whole["style_adherence"] > 0.5
    group = json.loads((out / "evaluation.json").read_text())["groups"]["full"]
    assert group["style_adherence"] == pytest.approx(whole["style_adherence"])     # the mean skips the NaN ...
    assert group["n"]["style_adherence"] == 1 and group["nan"]["style_adherence"] == 1  # ... and counts it
    assert "a_short.wav (full): no descriptors embedding" in (out / "evaluation.md").read_text()
