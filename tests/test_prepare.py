"""toolkit.data.prepare / toolkit.bin.prepare / toolkit.data.tags on tiny fixtures built on the fly."""

import json
import random

import numpy as np
import pytest
import soundfile as sf

from toolkit.bin import prepare as prepare_cli
from toolkit.data import prepare as prep
from toolkit.data.tags import format_lrc_time, lyrics_kind, read_tags, split_values, write_tags

SR = 16000
LRC = "[00:00.50]erste Zeile\n[00:01.20]zweite Zeile\n"


def tone(seconds=2.0, sr=SR, channels=1, freq=220.0):
    t = np.arange(int(seconds * sr)) / sr
    wav = 0.3 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    return np.stack([wav] * channels, axis=1) if channels > 1 else wav


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    d = tmp_path_factory.mktemp("songs")
    sf.write(d / "sidecar.wav", tone(channels=2), SR)
    (d / "sidecar.lrc").write_text(LRC, encoding="utf-8")
    sf.write(d / "plain_tags.flac", tone(freq=330), SR)
    write_tags(d / "plain_tags.flac", title="Plain", genres="folk; acoustic", moods="calm",
               lyrics="nur Text\nohne Zeit")
    sf.write(d / "uslt.mp3", tone(freq=440), SR, format="MP3")
    write_tags(d / "uslt.mp3", title="Tagged", genres=["pop"], lyrics=LRC)
    (d / "sub").mkdir()
    sf.write(d / "sub" / "nolyrics.ogg", tone(freq=550), SR)
    sf.write(d / "silent.wav", np.zeros(2 * SR, dtype=np.float32), SR)
    sf.write(d / "short.wav", tone(0.3), SR)
    (d / "empty.wav").write_bytes(b"")
    (d / "text.mp3").write_text("this is not audio at all\n" * 50)
    (d / "cover.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"0" * 100)
    sf.write(d / "cut.flac", (np.random.default_rng(0).standard_normal(6 * SR) * 0.2).astype(np.float32), SR)
    data = (d / "cut.flac").read_bytes()
    (d / "cut.flac").write_bytes(data[: len(data) // 3])  # the header still says 6 s
    (d / ".hidden.wav").write_bytes(b"ignored")
    return d


@pytest.fixture(scope="module")
def prepared(songs, tmp_path_factory):
    out = tmp_path_factory.mktemp("manifests")
    result = prep.prepare(songs, out, valid_fraction=0.25, seed=0, min_seconds=1.0)
    return result, out


def test_usable_songs_are_kept_and_bad_ones_reported(prepared):
    result, out = prepared
    kept = {s["id"] for s in result.train + result.valid}
    assert kept == {"sidecar", "plain_tags", "uslt", "sub/nolyrics"}
    reasons = {s.path: s.reason for s in result.skipped}
    assert reasons == {"silent.wav": "silent", "short.wav": "too_short", "empty.wav": "empty",
                       "text.mp3": "unreadable", "cover.jpg": "unsupported", "cut.flac": "truncated"}
    report = json.loads((out / "report.json").read_text())
    assert report["kept"] == 4 and report["scanned"] == 10
    assert report["skipped_counts"]["silent"] == 1
    assert {s["path"] for s in report["skipped"]} == set(reasons)


def test_manifest_fields(prepared):
    result, out = prepared
    lines = [json.loads(x) for name in ("train", "valid") for x in (out / f"{name}.jsonl").read_text().splitlines()]
    by_id = {s["id"]: s for s in lines}
    assert set(by_id) == {"sidecar", "plain_tags", "uslt", "sub/nolyrics"}
    side = by_id["sidecar"]
    assert side["channels"] == 2 and side["sample_rate"] == SR and side["duration"] == pytest.approx(2.0)
    assert side["lyrics_kind"] == "lrc" and side["lyrics_source"] == "sidecar.lrc" and "erste Zeile" in side["lyrics"]
    assert side["title"] == "sidecar"  # no tag: the file name
    plain = by_id["plain_tags"]
    assert plain["lyrics_kind"] == "plain" and plain["lyrics_source"] == "tags"
    assert plain["lyrics"] == "nur Text\nohne Zeit"
    assert plain["genres"] == ["folk", "acoustic"] and plain["moods"] == ["calm"]
    assert plain["tags"] == ["folk", "acoustic", "calm"] and plain["title"] == "Plain"
    mp3 = by_id["uslt"]
    assert mp3["lyrics_kind"] == "lrc" and mp3["lyrics_source"] == "tags" and mp3["genres"] == ["pop"]
    assert mp3["duration"] == pytest.approx(2.0, abs=0.1)
    none = by_id["sub/nolyrics"]
    assert none["lyrics"] is None and none["lyrics_kind"] == "none" and none["tags"] == []
    assert all(s["path"].startswith("/") for s in lines)


def test_split_is_deterministic_and_independent_of_order():
    songs = [{"id": f"song{i:03d}", "duration": 1.0} for i in range(50)]
    train, valid = prep.split(songs, 0.1, seed=3)
    shuffled = songs[:]
    random.Random(1).shuffle(shuffled)
    assert prep.split(shuffled, 0.1, seed=3) == (train, valid)
    assert len(valid) == 5 and len(train) == 45
    assert {s["id"] for s in train} | {s["id"] for s in valid} == {s["id"] for s in songs}
    assert prep.split(songs, 0.1, seed=4)[1] != valid  # the seed matters
    assert len(prep.split(songs[:2], 0.1, seed=0)[1]) == 1  # at least one valid song
    assert prep.split(songs[:1], 0.1, seed=0) == (songs[:1], [])
    assert prep.split(songs, 0.0, seed=0)[1] == []


def test_cli_writes_the_same_split_twice(songs, tmp_path, capsys):
    assert prepare_cli.main(["--data", str(songs), "--out", str(tmp_path / "a"), "--valid-fraction", "0.25"]) == 0
    assert prepare_cli.main(["--data", str(songs), "--out", str(tmp_path / "b"), "--valid-fraction", "0.25"]) == 0
    for name in ("train.jsonl", "valid.jsonl"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()
    printed = capsys.readouterr().out
    assert "kept 4 songs" in printed and "cut.flac: truncated" in printed


def test_cli_without_usable_songs_fails_cleanly(tmp_path, capsys):
    (tmp_path / "songs").mkdir()
    (tmp_path / "songs" / "bad.wav").write_text("not audio")
    assert prepare_cli.main(["--data", str(tmp_path / "songs"), "--out", str(tmp_path / "m")]) == 1
    assert "no usable songs" in capsys.readouterr().err
    assert prepare_cli.main(["--data", str(tmp_path / "missing"), "--out", str(tmp_path / "m")]) == 2


@pytest.mark.parametrize("suffix", ["wav", "flac", "mp3", "ogg"])
def test_tags_round_trip(tmp_path, suffix):
    path = tmp_path / f"x.{suffix}"
    sf.write(path, tone(0.5), SR)
    write_tags(path, title="Titel", artist="A", genres=("chorale", "baroque"), moods="calm", lyrics=LRC)
    tags = read_tags(path)
    assert (tags.title, tags.artist, tags.genres, tags.moods) == ("Titel", "A", ["chorale", "baroque"], ["calm"])
    assert tags.lyrics.strip() == LRC.strip() and tags.lyrics_kind == "lrc"


def test_id3_synchronised_lyrics_become_lrc(tmp_path):
    from mutagen.id3 import ID3, SYLT

    path = tmp_path / "s.mp3"
    sf.write(path, tone(0.5), SR, format="MP3")
    tags = ID3()
    tags.add(SYLT(encoding=3, lang="deu", format=2, type=1, text=[("eins", 500), ("zwei", 61250)]))
    tags.save(path)
    assert read_tags(path).lyrics == "[00:00.50]eins\n[01:01.25]zwei"


def test_small_helpers():
    assert split_values(["a; b", "c/a", " "]) == ["a", "b", "c"]
    assert lyrics_kind(None) == "none" and lyrics_kind("  ") == "none"
    assert lyrics_kind("la la") == "plain" and lyrics_kind("x\n[01:02.50]la") == "lrc"
    assert format_lrc_time(59.999) == "[01:00.00]" and format_lrc_time(61.25) == "[01:01.25]"
