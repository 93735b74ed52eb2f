"""toolkit-generate with a tiny random DiffRhythm saved in our checkpoint format: files, tags, manifests,
seeds, batches, batch requests, plain lyrics, editing, continuation and dropped conditions."""

import json
import subprocess
import sys

import mutagen
import numpy as np
import pytest
import soundfile as sf
from test_generate_fixtures import LRC, SR, make_checkpoint, run, write_tone

from toolkit.precision import choose_dtype

MANIFEST_KEYS = {"request", "checkpoint", "config", "seed", "seconds", "wall_seconds", "peak_rss_mb", "lrc", "warnings",
                 "condition", "toolkit_version", "device", "dtype", "dtype_reason", "sample_rate", "level", "recipe"}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "last.pt")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    (d / "song.lrc").write_text(LRC, encoding="utf-8")
    (d / "words.txt").write_text("[Verse]\nhello world\n\nsing along now\n", encoding="utf-8")
    write_tone(d / "ref.wav", seconds=1.2)
    return d


def base_args(ckpt, inputs):
    return ["--ckpt", ckpt, "--lrc", inputs / "song.lrc", "--style-text", "folk, guitar", "--length", "0.4",
            "--steps", "2", "--quiet"]


@pytest.fixture(scope="module")
def batch_run(ckpt, inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("batch")
    status, _ = run(base_args(ckpt, inputs) + ["--seed", "7", "--batch", "2", "--title", "Tiny Song",
                                               "--out", out / "song.wav"])
    return status, out


def test_every_batch_item_is_saved_with_tags_and_a_manifest(batch_run, ckpt):
    status, out = batch_run
    assert status == 0
    assert sorted(p.name for p in out.iterdir()) == ["song_0.json", "song_0.wav", "song_1.json", "song_1.wav"]
    for i in range(2):
        info = sf.info(str(out / f"song_{i}.wav"))
        assert info.subtype == "FLOAT" and info.samplerate == SR
        wav, _ = sf.read(str(out / f"song_{i}.wav"), dtype="float32")
        peak = np.abs(wav).max()
        assert 20 * np.log10(peak) == pytest.approx(-1.0, abs=1e-3), "peak-normalised to -1 dBFS, never clipped"
        assert len(wav) == int(0.4 * SR / 64) * 64

        manifest = json.loads((out / f"song_{i}.json").read_text())
        assert MANIFEST_KEYS <= set(manifest)
        assert manifest["seed"] == 7 + i and manifest["request"]["seed"] == 7 and manifest["request"]["batch"] == 2
        assert manifest["request"]["style_text"] == "folk, guitar"
        assert manifest["checkpoint"]["path"] == str(ckpt.resolve()) and len(manifest["checkpoint"]["sha256"]) == 16
        assert manifest["config"]["backbone"]["dim"] == 64
        assert manifest["seconds"] == pytest.approx(len(wav) / SR)
        assert manifest["wall_seconds"] > 0 and manifest["peak_rss_mb"] > 0
        assert manifest["lrc"] == LRC and manifest["condition"] == "full"
        assert (manifest["request"]["style_audio"], manifest["request"]["style_text"]) == (None, "folk, guitar")
        assert manifest["device"] == "cpu" and manifest["sample_rate"] == SR
        # --dtype auto: what this machine's CPU flags decide, with the reason recorded
        assert manifest["dtype"] == choose_dtype("auto", "cpu", component="dit_diffrhythm").name
        assert manifest["dtype_reason"].startswith(f"auto: {manifest['dtype']} for the dit_diffrhythm")

        tags = mutagen.File(str(out / f"song_{i}.wav")).tags
        assert str(tags["TIT2"]) == f"Tiny Song ({i + 1}/2)"
        assert tags.getall("USLT")[0].text == "hello world\nsing along now"
        assert tags.getall("SYLT")[0].text == [("hello world", 50), ("sing along now", 200)]
        txxx = {f.desc: f.text[0] for f in tags.getall("TXXX")}
        assert txxx["SEED"] == str(7 + i) and txxx["STEPS"] == "2" and txxx["GUIDANCE"] == "2"
        assert txxx["PROMPT"] == "folk, guitar" and txxx["CHECKPOINT_SHA256"] == manifest["checkpoint"]["sha256"]
    a, _ = sf.read(str(out / "song_0.wav"))
    b, _ = sf.read(str(out / "song_1.wav"))
    assert not np.array_equal(a, b), "batch items get their own noise"


def test_a_seed_reproduces_the_song_bit_for_bit(batch_run, ckpt, inputs, tmp_path):
    _, out = batch_run
    status, _ = run(base_args(ckpt, inputs) + ["--seed", "7", "--batch", "2", "--title", "Tiny Song",
                                               "--out", tmp_path / "again.wav"])
    assert status == 0
    for i in range(2):
        first, _ = sf.read(str(out / f"song_{i}.wav"), dtype="float32")
        again, _ = sf.read(str(tmp_path / f"again_{i}.wav"), dtype="float32")
        assert np.array_equal(first, again)


def test_dropped_conditions_change_the_song_and_say_so(batch_run, ckpt, inputs, tmp_path):
    _, out = batch_run
    status, _ = run(base_args(ckpt, inputs) + ["--seed", "7", "--drop-conditions", "--out", tmp_path])
    assert status == 0
    manifest = json.loads((tmp_path / "song_dropped.json").read_text())
    assert manifest["condition"] == "dropped" and manifest["guidance"] == 0.0
    assert manifest["guidance_option"] == "cfg_strength", "the scale is named in the sampler's convention"
    assert manifest["request"]["style_text"] == "folk, guitar", "the prompt is recorded for style adherence"
    assert manifest["lrc"] == LRC, "the dropped lyrics are recorded for lyric timing"
    assert not mutagen.File(str(tmp_path / "song_dropped.wav")).tags.getall("SYLT"), "no lyrics in its tags"
    dropped, _ = sf.read(str(tmp_path / "song_dropped.wav"))
    full, _ = sf.read(str(out / "song_0.wav"))
    assert dropped.shape == full.shape and not np.allclose(dropped, full, atol=1e-3)


def test_batch_requests_plain_lyrics_editing_continuation_and_a_bad_line(ckpt, inputs, tmp_path, capsys):
    lines = [
        {"id": "plain", "lyrics": "hello world\nsing along now", "style_text": "pop, piano", "seed": 1},
        {"title": "edit", "lrc": "[00:00.05]hello world\n[00:03.00]too late to sing\n", "ref_song": "ref.wav",
         "segments": [[0.2, 0.5]], "length": 0.8},
        {"id": "missing", "lrc_path": "nowhere.lrc"},
        "not json",
        {"id": "more", "instrumental": True, "ref_song": "ref.wav", "continue": 0.3},
    ]
    requests = inputs / "requests.jsonl"
    requests.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    status, err = run(["--ckpt", ckpt, "--requests", requests, "--style-text", "folk", "--steps", "2", "--quiet",
                       "--format", "flac", "--out", tmp_path / "songs", "--seed", "5"], capsys)
    assert status == 1, err
    assert "requests.jsonl line 3 (missing)" in err and "nowhere.lrc" in err
    assert "requests.jsonl line 4" in err and "not valid JSON" in err
    assert "3 of 5 requests generated" in err
    assert "warning: requests.jsonl line 2 (edit): 1 lyric line(s) start after the end of the 0.8 s song" in err
    names = sorted(p.name for p in (tmp_path / "songs").iterdir())
    assert names == ["edit.flac", "edit.json", "more.flac", "more.json", "plain.flac", "plain.json"]

    plain = json.loads((tmp_path / "songs/plain.json").read_text())
    assert plain["request"]["lyrics"] == "hello world\nsing along now"
    assert plain["lrc"].splitlines() == ["[00:00.00]hello world", "[00:00.40]sing along now"], "timed evenly"
    assert plain["request"]["style_text"] == "pop, piano" and plain["seed"] == 1
    info = sf.info(str(tmp_path / "songs/plain.flac"))
    assert info.subtype == "PCM_24"
    tags = mutagen.File(str(tmp_path / "songs/plain.flac")).tags
    assert tags["LYRICS"] == ["hello world\nsing along now"] and tags["SEED"] == ["1"]
    assert tags["SYNCEDLYRICS"][0].startswith("[00:00.00]hello world")

    edit = json.loads((tmp_path / "songs/edit.json").read_text())
    assert edit["request"]["segments"] == [[0.2, 0.5]] and edit["seconds"] == pytest.approx(100 / 125)
    assert edit["request"]["style_text"] == "folk", "the command-line style is the default of every line"
    more = json.loads((tmp_path / "songs/more.json").read_text())
    ref_frames = int(1.2 * SR) // 64 + 1  # mel frames of the reference
    assert more["frames"] == ref_frames + int(0.3 * 125) and more["lrc"] is None


def test_module_entry_point_prints_help():
    out = subprocess.run([sys.executable, "-m", "toolkit.bin.generate", "diffrhythm", "--help"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0
    for flag in ("--lrc", "--lyrics", "--instrumental", "--style-text", "--style-audio", "--length", "--steps",
                 "--cfg", "--sway", "--solver", "--seed", "--batch", "--ref-song", "--segments", "--continue",
                 "--pretrained", "--ckpt", "--variant", "--device", "--dtype", "--format", "--out", "--requests",
                 "--drop-conditions"):
        assert flag in out.stdout


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3", "ogg"])
def test_every_format_is_scaled_and_tagged_and_nothing_clips(fmt, tmp_path):
    import torch

    from toolkit.audio import fit_level
    from toolkit.data.tags import read_tags
    from toolkit.generation.outputs import save_song

    t = torch.arange(44100) / 44100
    loud = torch.stack([3.0 * torch.sin(2 * np.pi * 440 * t), 0.5 * torch.sin(2 * np.pi * 330 * t)])  # peak 3
    with pytest.raises(ValueError, match="would clip"):
        save_song(tmp_path / f"loud.{fmt}", loud, 44100, fmt, title="T", lrc=None, tag_fields={}, manifest={})
    assert not list(tmp_path.iterdir())
    wav, note = fit_level(loud, peak_db=-1.0)  # what a recipe's output level does
    assert note == "peak-normalised to -1 dBFS"
    written = save_song(tmp_path / f"x.{fmt}", wav, 44100, fmt, title="T", lrc=LRC,
                        tag_fields={"SEED": "5"}, manifest={"seed": 5})
    assert [p.name for p in written] == [f"x.{fmt}", "x.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"x.{fmt}", "x.json"]), "no temporary files left"
    back, sr = sf.read(str(tmp_path / f"x.{fmt}"), dtype="float32")
    assert sr == 44100 and back.shape[1] == 2
    peak_db = 20 * np.log10(np.abs(back).max())
    assert peak_db == pytest.approx(-1.0, abs=1e-3 if fmt in ("wav", "flac") else 0.8)
    tags = read_tags(tmp_path / f"x.{fmt}")
    assert tags.title == "T" and "sing along now" in tags.lyrics
    assert json.loads((tmp_path / "x.json").read_text()) == {"seed": 5}


def test_skip_existing_keeps_finished_songs_and_redoes_changed_ones(ckpt, inputs, tmp_path, capsys):
    requests = inputs / "skip_requests.jsonl"
    requests.write_text("".join(json.dumps(r) + "\n" for r in (
        {"id": "one", "lrc": "[00:00.05]hello world\n", "seed": 1, "length": 0.5},
        {"id": "two", "instrumental": True, "seed": 2, "length": 0.5})))
    out = tmp_path / "songs"
    argv = ["--ckpt", ckpt, "--requests", requests, "--style-text", "folk", "--steps", "2", "--quiet",
            "--out", out, "--skip-existing"]
    assert run(argv, capsys)[0] == 0
    first = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert sorted(first) == ["one.json", "one.wav", "two.json", "two.wav"]

    (out / "two.wav").unlink()  # a song lost since: only it is generated again
    status, err = run(argv, capsys)
    assert status == 0 and "(one): already generated, skipped" in err and "(two)" not in err
    assert (out / "one.wav").stat().st_mtime_ns == first["one.wav"] and (out / "two.wav").is_file()

    status, err = run(argv[:-1] + ["--skip-existing", "--steps", "3"], capsys)  # other settings: both redone
    assert status == 0 and "already generated" not in err
    assert json.loads((out / "one.json").read_text())["steps"] == 3
    steps3 = argv[:-1] + ["--skip-existing", "--steps", "3"]
    other = "fp16" if json.loads((out / "one.json").read_text())["dtype"] != "fp16" else "fp32"
    status, err = run(steps3 + ["--dtype", other], capsys)  # another number format: a different song, redone
    assert status == 0 and "already generated" not in err
    assert json.loads((out / "one.json").read_text())["dtype"] == other
    without = [a for a in argv if a != "--skip-existing"]
    status, err = run(without, capsys)  # without the flag every song is generated again
    assert status == 0 and "already generated" not in err


def test_an_interrupted_song_resumes_from_its_saved_state_when_the_command_runs_again(ckpt, inputs, tmp_path,
                                                                                     capsys, monkeypatch):
    from toolkit.generation import runner

    argv = base_args(ckpt, inputs) + ["--seed", "3", "--steps", "4", "--save-state-every", "0"]
    out = tmp_path / "song.wav"
    step = runner.Progress.step

    def ctrl_c_after_two(self, i, n, *rest):
        step(self, i, n, *rest)
        if i + 1 == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(runner.Progress, "step", ctrl_c_after_two)
    status, err = run(argv + ["--out", out], capsys)
    partial = tmp_path / "song.partial.pt"
    assert status == 130 and not out.exists() and partial.is_file()
    assert f"the state after update 2 of 4 is in {partial}; run the same command again to resume" in err
    assert err.rstrip().endswith("toolkit-generate: interrupted")

    monkeypatch.setattr(runner.Progress, "step", step)
    status, err = run(argv + ["--out", out], capsys)
    assert status == 0 and f"resuming from update 2 of 4 saved in {partial}" in err
    assert out.is_file() and not partial.exists(), "the state file goes once the song is written"
    fresh = tmp_path / "fresh" / "song.wav"
    assert run(argv + ["--out", fresh, "--no-resume"], capsys)[0] == 0
    assert np.array_equal(sf.read(str(out))[0], sf.read(str(fresh))[0]), "resumed = uninterrupted, bit for bit"

    status, err = run(argv + ["--out", out, "--save-state-every", "-1"], capsys)
    assert status == 2 and "--save-state-every must be >= 0 seconds, got -1" in err
