"""The mismatched-lyrics control and the reference window, on synthetic songs built to follow an LRC."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from toolkit.eval.songs import evaluate_songs

ROOT = Path(__file__).resolve().parents[1]
SR = 22050
SECONDS = 12.0
STARTS = {"a": [0.5, 3.5, 7.0, 10.0], "b": [1.8, 5.2, 8.6, 11.0]}


def lrc_of(starts) -> str:
    return "".join(f"[00:{t:05.2f}]line {i}\n" for i, t in enumerate(starts))


def phrases(starts, seed: int, seconds: float = SECONDS) -> np.ndarray:
    """Sung-like phrases (harmonic tone with syllable pulses) starting at `starts`, over faint noise."""
    rng = np.random.default_rng(seed)
    y = 0.002 * rng.standard_normal(int(seconds * SR))
    t = np.arange(int(1.6 * SR)) / SR
    tone = sum(0.15 / k * np.sin(2 * np.pi * 262.0 * k * t) for k in (1, 2, 3))
    tone *= np.minimum(1.0, t / 0.02) * (0.6 + 0.4 * np.cos(2 * np.pi * 4 * t))
    for s in starts:
        i = int(s * SR)
        n = min(tone.size, y.size - i)
        if n > 0:
            y[i:i + n] += tone[:n]
    return y.astype(np.float32)


def make_set(root: Path, mismatched_follow: str) -> tuple[Path, Path]:
    """References a and b (held out), conditioned songs following their own LRC, and mismatched songs given
    the other piece's LRC that follow `mismatched_follow`: "given" (a model that reads its lyrics) or "own"
    (a model that ignores them and reproduces the prompt piece)."""
    data, songs = root / "data", root / "songs"
    data.mkdir(parents=True)
    lines = []
    for i, name in enumerate(("a", "b")):
        sf.write(data / f"{name}.wav", phrases(STARTS[name], seed=i), SR)
        lines.append(json.dumps({"id": name, "audio": f"{name}.wav", "lrc": lrc_of(STARTS[name])}))
    (data / "valid.jsonl").write_text("\n".join(lines) + "\n")
    for group in ("full", "mismatched"):
        (songs / group).mkdir(parents=True)
    for i, (name, other) in enumerate((("a", "b"), ("b", "a"))):
        full = songs / "full" / f"{name}.wav"
        sf.write(full, phrases(STARTS[name], seed=10 + i), SR)
        full.with_suffix(".json").write_text(json.dumps({
            "request": {"title": name}, "condition": "full", "lrc": lrc_of(STARTS[name]),
            "style": {"audio": str(data / f"{name}.wav")}}))
        follows = STARTS[other] if mismatched_follow == "given" else STARTS[name]
        control = songs / "mismatched" / f"{name}.wav"
        sf.write(control, phrases(follows, seed=20 + i), SR)
        control.with_suffix(".json").write_text(json.dumps({
            "request": {"title": name, "extra": {"group": "mismatched", "lrc_from": other}}, "condition": "full",
            "lrc": lrc_of(STARTS[other]), "style": {"audio": str(data / f"{name}.wav")}}))
    return songs, data / "valid.jsonl"


def test_matched_lyrics_beat_the_mismatched_floor(tmp_path):
    songs, manifest = make_set(tmp_path, mismatched_follow="given")
    doc = evaluate_songs(songs, manifest, tmp_path / "out", embedding="none", held_out=manifest, log=lambda _: None)
    full, control = doc["groups"]["full"]["held_out"], doc["groups"]["mismatched"]["held_out"]
    assert full["lyric_timing_f"] == pytest.approx(1.0)
    # Scored against the LRC they were given, the controls follow it; against their own piece's, they do not:
    assert control["lyric_timing_f"] == pytest.approx(1.0)
    assert control["lyric_timing_own_f"] <= 0.25
    assert full["lyric_timing_f"] > control["lyric_timing_own_f"]
    rows = {(r["group"], r["reference"]): r for r in doc["songs"]}
    assert rows[("mismatched", "a")]["lrc_from"] == "b"
    # the reference recording of a against b's LRC: the floor on real audio
    assert rows[("mismatched", "a")]["lyric_timing_reference_f"] <= 0.25
    assert rows[("full", "a")]["lyric_timing_reference_f"] == pytest.approx(1.0)
    floor = next(v for v in doc["verdicts"] if "(the floor)" in v["claim"])
    assert floor["holds"] and floor["songs"] == "held-out" and (floor["paired_wins"], floor["pairs"]) == (2, 2)
    assert doc["verdicts"] and all(v["holds"] for v in doc["verdicts"])
    md = (tmp_path / "out" / "evaluation.md").read_text()
    assert "- yes: lyric timing: conditioned songs fit their LRC better than songs made for another LRC" in md
    assert "does **not** beat" not in md


def test_a_model_that_ignores_its_lyrics_does_not_beat_the_floor_and_is_told_so(tmp_path):
    songs, manifest = make_set(tmp_path, mismatched_follow="own")
    doc = evaluate_songs(songs, manifest, tmp_path / "out", embedding="none", held_out=manifest, log=lambda _: None)
    control = doc["groups"]["mismatched"]["held_out"]
    assert control["lyric_timing_own_f"] == pytest.approx(1.0) and control["lyric_timing_f"] <= 0.25
    floor = next(v for v in doc["verdicts"] if "(the floor)" in v["claim"])
    assert not floor["holds"]
    md = (tmp_path / "out" / "evaluation.md").read_text()
    assert "- **NO**: lyric timing: conditioned songs fit their LRC better than songs made for another LRC" in md
    assert "- **NO**: mismatched lyrics: songs follow the LRC they were given" in md
    assert "The conditioned model does **not** beat 1 of its 1 controls on held-out songs." in md


def test_reference_lyric_f_is_taken_on_the_songs_length(tmp_path):
    """A reference that follows its LRC for the first 6 s only: the whole recording scores 0.5, but a 6-s
    song is compared with the reference's first 6 s, which score 1."""
    data, songs = tmp_path / "data", tmp_path / "songs"
    data.mkdir()
    songs.mkdir()
    lines = [0.5, 3.5, 7.0, 10.0]
    sf.write(data / "r.wav", phrases([0.5, 3.5, 8.2, 11.2], seed=1), SR)
    (data / "valid.jsonl").write_text(json.dumps({"id": "r", "audio": "r.wav", "lrc": lrc_of(lines)}) + "\n")
    sf.write(songs / "r.wav", phrases(lines[:2], seed=2, seconds=6.0), SR)
    doc = evaluate_songs(songs, data / "valid.jsonl", tmp_path / "out", embedding="none", log=lambda _: None)
    row = doc["songs"][0]
    assert row["duration"] == pytest.approx(6.0)
    assert row["lyric_timing_reference_f"] == pytest.approx(1.0)
    from toolkit.eval.timing import lyric_timing

    assert lyric_timing(phrases([0.5, 3.5, 8.2, 11.2], seed=1), SR, lrc_of(lines))["f"] == pytest.approx(0.5)


def _make_requests():
    spec = importlib.util.spec_from_file_location("make_requests", ROOT / "egs/diffrhythm/local/make_requests.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mismatched_lyrics_are_swapped_within_each_manifest():
    songs = [{"id": k, "lyrics": f"[00:01.00]{k}\n"} for k in ("v1", "v2", "v3", "t1", "t2")]
    origin = [0, 0, 0, 1, 1]  # three held-out songs, two training songs
    sources = _make_requests().mismatched_sources(songs, origin)
    assert sources == [1, 2, 0, 4, 3]  # a cycle inside each manifest: every LRC used once, never a song's own
    # a lone song of its manifest borrows from another; a song with no partner at all gets none
    assert _make_requests().mismatched_sources(songs[:1] + songs[3:4], [0, 1]) == [1, 0]
    assert _make_requests().mismatched_sources(songs[:1], [0]) == [None]


def test_scoring_style_in_a_conditioner_space_is_flagged(tmp_path):
    songs, manifest = make_set(tmp_path, mismatched_follow="given")
    doc = evaluate_songs(songs, manifest, tmp_path / "out", embedding="features", held_out=manifest,
                         log=lambda _: None)
    assert "self-consistency, not style" in doc["embedding_info"]["warning"]
    assert "**Warning**: `features` is a style conditioner's space" in (tmp_path / "out" / "evaluation.md").read_text()
