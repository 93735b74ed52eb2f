"""Bad input to toolkit-generate: one clear line, exit status 2, before any heavy work, nothing left behind."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from test_generate_fixtures import LRC, SR, TINY, make_checkpoint, run, write_tone


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    make_checkpoint(d / "last.pt")
    (d / "song.lrc").write_text(LRC, encoding="utf-8")
    (d / "empty.lrc").write_text("  \n", encoding="utf-8")
    (d / "malformed.lrc").write_text("[00:01.00]hello\n[00:61.00]world\n", encoding="utf-8")
    (d / "plain.lrc").write_text("hello world\nno timestamps here\n", encoding="utf-8")
    (d / "late.lrc").write_text("[00:05.00]far too late\n[00:09.00]and later\n", encoding="utf-8")
    (d / "garbage.wav").write_bytes(b"this is not audio at all" * 100)
    write_tone(d / "style.wav", seconds=3.0)
    data = (d / "style.wav").read_bytes()
    (d / "truncated.wav").write_bytes(data[:60])  # the header promises 3 s, the samples are gone
    sf.write(str(d / "silent.wav"), np.zeros(3 * SR, dtype=np.float32), SR)
    write_tone(d / "short_ref.wav", seconds=0.5)
    other = dict(TINY, recipe="f5tts")
    payload = torch.load(d / "last.pt", weights_only=True)
    payload["config"] = other
    torch.save(payload, d / "other_model.pt")
    torch.save({"model_state_dict": {"transformer.proj_out.weight": torch.zeros(2, 2)}}, d / "cfm_model.pt")
    (d / "partial").mkdir()
    torch.save({"model_state_dict": {}}, d / "partial" / "cfm_model.pt")
    (d / "nothing").mkdir()
    return d


def ckpt_args(d, *more):
    return ["--ckpt", d / "last.pt", "--style-text", "folk", "--length", "0.4", "--quiet", *more]


CASES = {
    "missing LRC": (lambda d: ckpt_args(d, "--lrc", d / "nope.lrc"), "LRC file not found"),
    "empty LRC": (lambda d: ckpt_args(d, "--lrc", d / "empty.lrc"), "the LRC is empty"),
    "malformed LRC": (lambda d: ckpt_args(d, "--lrc", d / "malformed.lrc"), "seconds must be below 60"),
    "LRC without timestamps": (lambda d: ckpt_args(d, "--lrc", d / "plain.lrc"), "no timed lyric lines"),
    "lyrics no voice covers": (lambda d: ckpt_args(d, "--lrc", d / "late.lrc"),
                               "every lyric line starts after the end of the 0.4 s song"),
    "no style": (lambda d: ["--ckpt", d / "last.pt", "--instrumental", "--quiet"], "give a style prompt"),
    "unreadable style audio": (lambda d: ["--ckpt", d / "last.pt", "--instrumental", "--length", "0.4",
                                          "--style-audio", d / "garbage.wav"], "garbage.wav"),
    "truncated style audio": (lambda d: ["--ckpt", d / "last.pt", "--instrumental", "--length", "0.4",
                                         "--style-audio", d / "truncated.wav"], "empty or truncated"),
    "silent style audio": (lambda d: ["--ckpt", d / "last.pt", "--instrumental", "--length", "0.4",
                                      "--style-audio", d / "silent.wav"], "silent"),
    "length out of range": (lambda d: ["--ckpt", d / "last.pt", "--instrumental", "--style-text", "folk",
                                       "--length", "30"], "at most 1.6 s"),
    "reference shorter than the edit span": (
        lambda d: ckpt_args(d, "--lrc", d / "song.lrc", "--ref-song", d / "short_ref.wav", "--segments", "0.1:0.9"),
        "shorter than the edit span"),
    "checkpoint of another model": (lambda d: ["--ckpt", d / "other_model.pt", "--instrumental", "--style-text", "x"],
                                    "checkpoint of the 'f5tts' recipe"),
    "published DiT given as --ckpt": (lambda d: ["--ckpt", d / "cfm_model.pt", "--instrumental", "--style-text", "x"],
                                      "use --pretrained DIR"),
    "missing pretrained files": (
        lambda d: ["--pretrained", d / "nothing", "--instrumental", "--style-text", "x"],
        "cfm_model.pt (the DiT; Hugging Face hub ASLP-lab/DiffRhythm-1_2 (base, up to 95 s) or "
        "ASLP-lab/DiffRhythm-1_2-full"),
    "partly downloaded pretrained folder": (
        lambda d: ["--pretrained", d / "partial", "--instrumental", "--style-text", "x"],
        "is missing: vae_model.pt (the VAE; Hugging Face hub ASLP-lab/DiffRhythm-vae); a MuQ-MuLan-large folder"),
    "missing checkpoint": (lambda d: ["--ckpt", d / "nope.pt", "--instrumental", "--style-text", "x"],
                           "nope.pt does not exist"),
    "unknown device": (lambda d: ckpt_args(d, "--lrc", d / "song.lrc", "--device", "toaster"), "--device toaster"),
    "both lyrics kinds": (lambda d: ckpt_args(d, "--lrc", d / "song.lrc", "--instrumental"), "takes no lyrics"),
    "bad segments": (lambda d: ckpt_args(d, "--lrc", d / "song.lrc", "--ref-song", d / "short_ref.wav",
                                         "--segments", "soon"), "--segments 'soon'"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_exit_2_with_no_output(case, env, tmp_path, capsys):
    make_args, expected = CASES[case]
    out = tmp_path / "out"
    status, err = run(make_args(env) + ["--out", out], capsys)
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("toolkit-generate: error: "), err
    assert "Traceback" not in err
    assert expected in lines[0], lines[0]
    assert not out.exists(), "nothing is written for bad input"


def test_missing_pretrained_files_name_every_hub_repo(env, tmp_path, capsys):
    status, err = run(["--pretrained", env / "nothing", "--instrumental", "--style-text", "x", "--out", tmp_path / "o"],
                      capsys)
    assert status == 2
    for repo in ("ASLP-lab/DiffRhythm-1_2", "ASLP-lab/DiffRhythm-1_2-full", "ASLP-lab/DiffRhythm-vae",
                 "OpenMuQ/MuQ-MuLan-large"):
        assert repo in err


def test_a_failure_while_writing_leaves_no_partial_batch(env, tmp_path, monkeypatch, capsys):
    import toolkit.generation.outputs as output

    calls = []
    real = output.write_song_tags

    def failing(path, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(path, **kwargs)

    monkeypatch.setattr(output, "write_song_tags", failing)
    out = tmp_path / "out"
    argv = ckpt_args(env, "--lrc", env / "song.lrc", "--steps", "1", "--batch", "2", "--seed", "1", "--out", out)
    with pytest.raises(RuntimeError, match="disk full"):
        run(argv)
    assert len(calls) == 2
    # the first song of the batch is removed too; what stays is the sampled state, so a rerun need not sample
    state = out / "song_0.partial.pt"
    assert [p.name for p in out.iterdir()] == [state.name]
    assert f"the state after update 1 of 1 is in {state}; run the same command again" in capsys.readouterr().err

    monkeypatch.setattr(output, "write_song_tags", real)
    status, err = run(argv, capsys)
    assert status == 0 and f"resuming from update 1 of 1 saved in {state}" in err
    assert sorted(p.name for p in out.iterdir()) == ["song_0.json", "song_0.wav", "song_1.json", "song_1.wav"]


def test_batch_requests_that_are_all_bad_exit_2(env, tmp_path, capsys):
    requests = tmp_path / "r.jsonl"
    requests.write_text(json.dumps({"id": "a", "lrc_path": "missing.lrc"}) + "\n" + json.dumps({"bogus": 1}) + "\n")
    status, err = run(["--ckpt", env / "last.pt", "--requests", requests, "--style-text", "x", "--out",
                       tmp_path / "songs"], capsys)
    assert status == 2
    assert "r.jsonl line 1 (a)" in err and "unknown request field(s) ['bogus']" in err
    assert not (tmp_path / "songs").exists()


def test_base_model_end_marker_rule():
    """With a base model (2048 frames) the LRC's last line is the end marker, as upstream: a one-line LRC sings
    nothing (error), and plain lyrics get a marker appended so every line is sung."""
    from tiny_recipes import song_conditions

    from toolkit.lrc import parse_lrc
    from toolkit.models.diffrhythm.request import SongRequest
    from toolkit.models.diffrhythm.validation import SongValidator
    from toolkit.models.requests import RequestError

    fr = 44100 / 2048
    validator = SongValidator({"codec": {"type": "oobleck"}, "max_frames": 2048, "conditions": song_conditions()})
    with pytest.raises(RequestError, match="end-of-song marker"):
        validator.check(SongRequest(lrc="[00:01.00]only line\n", style_text="pop", length=30))
    checked = validator.check(SongRequest(lyrics="first line\nsecond line", style_text="pop", length=30))
    lines = parse_lrc(checked.request.lrc).lines
    assert [x.text for x in lines] == ["first line", "second line", ""]
    assert lines[1].time == pytest.approx(int(30 * fr) / fr / 2, abs=0.01)
    assert lines[-1].time < int(30 * fr) / fr and checked.request.lyrics is None
    assert [x.text for x in parse_lrc(checked.lrc).lines] == ["first line", "second line"], "the sung lines"
