"""The shared request validation, through the CLI and request files: lyrics never vanish silently, and what
travels with the audio names user files by name and hash, never by path."""

from __future__ import annotations

import json
import re

import mutagen
import pytest
from test_generate_fixtures import TINY, make_checkpoint, run, write_tone
from tiny_recipes import song_conditions

HIEROGLYPHS = "\U00013000\U00013001\U00013002"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("validation")
    make_checkpoint(d / "last.pt", config={**TINY, "conditions": song_conditions(style="style_features")})
    write_tone(d / "style.wav", seconds=2.0)
    write_tone(d / "ref.wav", seconds=1.2)
    (d / "glyphs.lrc").write_text(f"[00:00.05]{HIEROGLYPHS}\n[00:00.20]{HIEROGLYPHS}\n", encoding="utf-8")
    (d / "mixed.lrc").write_text(f"[00:00.05]{HIEROGLYPHS}\n[00:00.20]hello there\n[00:09.00]far too late\n",
                                 encoding="utf-8")
    (d / "long.lrc").write_text("[00:00.05]" + "la " * 3000 + "\n[00:00.30]end\n", encoding="utf-8")
    return d


def base(d, lrc, out, *more):
    return ["--ckpt", d / "last.pt", "--lrc", d / lrc, "--style-audio", d / "style.wav", "--length", "0.5",
            "--steps", "1", "--seed", "1", "--quiet", "--out", out, *more]


def test_nothing_voiceable_at_all_is_an_error_suggesting_instrumental(env, tmp_path, capsys):
    status, err = run(base(env, "glyphs.lrc", tmp_path / "o"), capsys)
    assert status == 2 and "no lyric line has anything the lyrics tokenizer can voice" in err
    assert "--instrumental" in err
    assert not (tmp_path / "o").exists()


def test_left_out_lines_are_warned_about_in_stderr_and_the_manifest(env, tmp_path, capsys):
    out = tmp_path / "song.wav"
    status, err = run(base(env, "mixed.lrc", out), capsys)
    assert status == 0, err
    manifest = json.loads(out.with_suffix(".json").read_text())
    warnings = manifest["warnings"]
    assert any(f"[00:00.05]{HIEROGLYPHS}" in w and "Egyptian script" in w and "not sung" in w for w in warnings)
    assert any("start after the end of the 0.5 s song" in w and "far too late" in w for w in warnings)
    assert all(w in err for w in warnings) and err.count("toolkit-generate: warning:") == len(warnings)
    # the synchronised lyrics hold the sung line only; user files travel by name and hash
    tags = mutagen.File(str(out)).tags
    assert [text for text, _ in tags.getall("SYLT")[0].text] == ["hello there"]
    prompt = str(tags.getall("TXXX:PROMPT")[0].text[0])
    assert prompt.startswith("style.wav (sha256:") and str(env) not in prompt
    assert manifest["request"]["style_audio"] == str(env / "style.wav"), "the local manifest keeps the path"


def test_a_line_cut_to_fit_says_how_much(env, tmp_path, capsys):
    status, err = run(base(env, "long.lrc", tmp_path / "o"), capsys)
    assert status == 0
    warning = next(line for line in err.splitlines() if "cut to fit" in line)
    assert "[00:00.05]la la" in warning and "of its" in warning and "phoneme tokens fit" in warning
    placed, total = (int(x) for x in re.search(r"cut to fit: (\d+) of its (\d+) phoneme tokens", warning).groups())
    assert 0 < placed < total and f"({total - placed} cut)" in warning


def test_request_files_get_the_same_warnings_per_line(env, tmp_path, capsys):
    requests = tmp_path / "r.jsonl"
    requests.write_text("\n".join(json.dumps(r) for r in (
        {"id": "mixed", "lrc_path": str(env / "mixed.lrc")},
        {"id": "glyphs", "lrc_path": str(env / "glyphs.lrc")},
    )) + "\n")
    status, err = run(["--ckpt", env / "last.pt", "--requests", requests, "--style-audio", env / "style.wav",
                       "--length", "0.5", "--steps", "1", "--quiet", "--out", tmp_path / "songs"], capsys)
    assert status == 1  # one generated, one rejected
    assert "r.jsonl line 2 (glyphs): no lyric line has anything the lyrics tokenizer can voice" in err
    assert "r.jsonl line 1 (mixed): lyric line [00:00.05]" in err
    manifest = json.loads((tmp_path / "songs" / "mixed.json").read_text())
    assert any("Egyptian script" in w for w in manifest["warnings"])


def test_an_edit_names_its_reference_by_name_and_hash(env, tmp_path, capsys):
    out = tmp_path / "edit.wav"
    argv = ["--ckpt", env / "last.pt", "--instrumental", "--style-audio", env / "style.wav",
            "--ref-song", env / "ref.wav",
            "--segments", "0.2:0.5", "--steps", "1", "--seed", "1", "--quiet", "--out", out]
    status, err = run(argv, capsys)
    assert status == 0, err
    tags = mutagen.File(str(out)).tags
    assert str(tags.getall("TXXX:REFERENCE")[0].text[0]).startswith("ref.wav (sha256:")
    assert all(str(env) not in str(frame) for frame in tags.values())
    level = json.loads(out.with_suffix(".json").read_text())["level"]  # the reference's level, unless it would clip
    assert level.startswith(("level kept", "lowered by"))


def test_a_reference_of_lower_rate_or_other_channels_says_what_the_kept_spans_lose(env, tmp_path, capsys):
    low, stereo = write_tone(tmp_path / "low.wav", 1.2, sr=4000), write_tone(tmp_path / "st.wav", 1.2, channels=2)
    found = {}
    for name, ref in (("same", env / "ref.wav"), ("low", low), ("stereo", stereo)):
        out = tmp_path / f"{name}.wav"
        status, err = run(["--ckpt", env / "last.pt", "--instrumental", "--style-audio", env / "style.wav",
                           "--ref-song", ref, "--segments", "0.2:0.5", "--steps", "1", "--seed", "1", "--quiet",
                           "--out", out], capsys)
        assert status == 0, err
        found[name] = [w for w in json.loads(out.with_suffix(".json").read_text())["warnings"]
                       if "the reference song" in w]
        assert all(w in err for w in found[name])
    assert found["same"] == []
    assert found["low"] == [f"the reference song {low} is 4000 Hz with 1 channel(s): the song keeps nothing above "
                            "2 kHz where it is not regenerated; give the song at 8000 Hz with 1 channel(s) for "
                            "full quality"]
    assert found["stereo"] == []  # this model is mono: a downmix loses nothing it can hold


@pytest.mark.parametrize("given, target, lost", [
    ((44100, 2), (44100, 2), []),
    ((48000, 6), (44100, 1), []),                      # a higher rate and a downmix keep what the model holds
    ((22050, 1), (44100, 2), ["nothing above 11.025 kHz", "the same sound in all 2 channels"]),
    ((44100, 6), (44100, 2), ["only 2 of its 6 channels"]),
])
def test_conversion_losses_name_what_resampling_and_channel_changes_lose(given, target, lost):
    from toolkit.audio import conversion_losses

    assert conversion_losses(*given, *target) == lost
