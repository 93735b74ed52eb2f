"""The embedded Bach-chorale set: selection, timing, one short piece built offline, the singer's pitch."""

import json
import re

import numpy as np
import pytest
import soundfile as sf

from toolkit.data import chorales
from toolkit.data.chorales import (
    QUALIFYING,
    BuildSettings,
    build_piece,
    catalogue_key,
    check_score,
    demo_lyric_lines,
    demo_pieces,
    load_piece,
    scan_corpus,
)

LRC_LINE = re.compile(r"^\[(\d\d):(\d\d\.\d\d)\](.+)$")


def lrc_times(text):
    times = []
    for line in text.strip().splitlines():
        m = LRC_LINE.match(line)
        assert m, f"not an LRC line: {line!r}"
        times.append(int(m.group(1)) * 60 + float(m.group(2)))
    return times


def test_selection_is_deterministic_and_ordered():
    assert len(set(QUALIFYING)) == len(QUALIFYING) > 100
    assert list(QUALIFYING) == sorted(QUALIFYING, key=catalogue_key)
    assert demo_pieces(12) == demo_pieces(12) == list(QUALIFYING[:12])
    with pytest.raises(chorales.ChoraleError):
        demo_pieces(len(QUALIFYING) + 1)


def test_the_stored_selection_matches_a_rescan_of_a_sample():
    from music21 import corpus

    every = sorted({p.name.rsplit(".", 1)[0] for p in corpus.getComposer("bach") if p.suffix in (".mxl", ".xml")},
                   key=catalogue_key)
    sample = every[::25]  # 17 files spread over the catalogue, qualifying or not
    found = scan_corpus(sample)
    assert found == [n for n in sample if n in QUALIFYING]
    assert 0 < len(found) < len(sample)  # the sample really tests both outcomes
    rejected = [n for n in sample if n not in QUALIFYING][0]
    assert check_score(corpus.parse(f"bach/{rejected}")) != []


def test_demo_pieces_meet_the_criteria():
    from music21 import corpus, expressions

    for name in demo_pieces(3):
        score = corpus.parse(f"bach/{name}")
        assert check_score(score) == []
        notes = list(score.parts[0].recurse().notes)
        assert any(n.lyrics for n in notes) and max(len(n.lyrics) for n in notes) == 1
        assert any(isinstance(e, expressions.Fermata) for n in notes for e in n.expressions)


def test_timing_fermatas_and_phrases():
    piece = load_piece("bwv3.6", bpm=84, max_seconds=None, breath_beats=0.0)
    sop = piece.soprano
    beat = 60 / 84
    onsets = [n.onset for n in sop]
    assert onsets == sorted(onsets) and onsets[0] == 0.0
    held = [n for n in sop if n.fermata]
    assert len(held) == len(piece.phrases) >= 4
    # a fermata note lasts twice its written length; the next note starts after it
    from music21 import corpus

    written = [n for n in corpus.parse("bach/bwv3.6").parts[0].stripTies().flatten().notes
               if any(type(e).__name__ == "Fermata" for e in n.expressions)]
    assert [round(n.duration / beat, 6) for n in held] == [2 * float(w.quarterLength) for w in written]
    for phrase, end_note in zip(piece.phrases, held, strict=False):
        assert phrase.end == pytest.approx(end_note.onset + end_note.duration)
    assert all(p.text and p.text[0].isalpha() for p in piece.phrases)
    short = load_piece("bwv3.6", bpm=84, max_seconds=20, breath_beats=0.0)
    assert short.phrases == piece.phrases[:len(short.phrases)] and short.phrases[-1].end <= 20
    assert all(n.onset + n.duration <= short.phrases[-1].end + 1e-9 for part in short.parts for n in part)


def test_every_voice_breathes_after_a_fermata():
    beat = 60 / 84
    plain = load_piece("bwv3.6", bpm=84, max_seconds=None, breath_beats=0.0)
    breathing = load_piece("bwv3.6", bpm=84, max_seconds=None, breath_beats=1.0)
    # the k-th phrase starts k beats later; fermata notes keep their length
    for k, (a, b) in enumerate(zip(plain.phrases, breathing.phrases, strict=False)):
        assert b.text == a.text and b.start == pytest.approx(a.start + k * beat)
        assert b.end - b.start == pytest.approx(a.end - a.start)
    # between a phrase's end and the next phrase's start no voice sounds (the pause the LRC line follows)
    for prev, nxt in zip(breathing.phrases, breathing.phrases[1:], strict=False):
        assert nxt.start - prev.end == pytest.approx(beat)
        for part in breathing.parts:
            assert not any(n.onset < nxt.start - 1e-9 and n.onset + n.duration > prev.end + 1e-9 for n in part)
    with pytest.raises(chorales.ChoraleError, match="breath_beats"):
        load_piece("bwv3.6", breath_beats=-1.0)


def test_ensembles_take_turns_along_the_catalogue():
    from toolkit.data.chorales import ENSEMBLES, accompaniment_voices, ensemble_of

    names = [ensemble_of(n).name for n in demo_pieces(8)]
    assert names == [e.name for e in ENSEMBLES] * 2
    assert len({(e.bpm, e.melody) for e in ENSEMBLES}) == len(ENSEMBLES)  # each differs in tempo and timbre
    piece = load_piece("bwv3.6", max_seconds=10)
    brass = ENSEMBLES[2]
    voices = accompaniment_voices(piece, brass)
    assert [v.program for v in voices] == [brass.melody, *brass.lower][:len(voices)]
    organ = accompaniment_voices(piece, ENSEMBLES[0])  # the organ is doubled by strings
    assert len(organ) == 1 + 2 * (len(piece.parts) - 1) and organ[-1].program == ENSEMBLES[0].double


def test_demo_lyric_lines_without_rendering():
    lines = demo_lyric_lines(num_pieces=2)
    first = load_piece(demo_pieces(1)[0]).phrases
    assert lines[: len(first)] == [p.text for p in first]
    assert len(lines) >= 3 and all(isinstance(x, str) and x.strip() for x in lines)
    assert any(c in "".join(lines) for c in "äöüß")  # German text, umlauts kept


def test_singer_pitch_error_is_small():
    import librosa

    from toolkit.data.singing import EspeakSinger, SungSyllable, cents, midi_to_hz

    singer = EspeakSinger(sample_rate=22050)
    try:
        notes = [(0.0, "Lob", 67, 0.7), (0.7, "und", 72, 0.7), (1.4, "Ehr", 69, 1.0)]
        wav = singer.sing([SungSyllable(o, t, (p,), (d,)) for o, t, p, d in notes], 2.6)
    finally:
        singer.close()
    f0, voiced, _ = librosa.pyin(wav, fmin=150, fmax=800, sr=22050, frame_length=2048, hop_length=256)
    times = librosa.times_like(f0, sr=22050, hop_length=256)
    errors = []
    for onset, _, pitch, dur in notes:
        inside = (times > onset + 0.15) & (times < onset + dur - 0.15) & voiced
        assert inside.sum() > 5, "the note is not voiced"
        errors.append(np.median(np.abs(cents(f0[inside], midi_to_hz(pitch)))))
    assert max(errors) < 25, errors


def test_build_one_short_piece(tmp_path):
    from mutagen.flac import FLAC

    out = tmp_path / "chorales"
    settings = BuildSettings(max_seconds=7.0)
    record = build_piece("bwv3.6", out, settings)
    audio, sr = sf.read(out / "bwv3_6.flac", dtype="float32", always_2d=True)
    assert sr == 44100 and audio.shape[1] == 2
    duration = audio.shape[0] / sr
    assert 6.0 < duration < 9.0 and record["duration"] == pytest.approx(duration, abs=1e-3)
    assert 20 * np.log10(np.sqrt(np.mean(audio ** 2))) > -35  # not silent
    assert np.abs(audio).max() <= 1.0 and np.abs(audio[:, 0] - audio[:, 1]).max() > 1e-3  # real stereo

    lrc = (out / "bwv3_6.lrc").read_text(encoding="utf-8")
    times = lrc_times(lrc)
    assert times == sorted(times) and len(set(times)) == len(times)
    assert 0 <= times[0] and times[-1] < duration
    assert lrc.splitlines()[0].endswith("Ach Gott, wie manches Herzeleid")

    tags = FLAC(out / "bwv3_6.flac").tags
    assert tags["GENRE"] == ["chorale, baroque, organ"]  # the first piece of the catalogue: organ, 84 bpm
    assert record["ensemble"] == "organ" and record["bpm"] == 84.0
    assert tags["LYRICS"][0].strip() == lrc.strip() and tags["TITLE"][0].startswith("Ach Gott")

    manifest_record = json.loads((out / ".build" / "bwv3_6.json").read_text())
    assert manifest_record["settings"] == record["settings"]
    again = build_piece("bwv3.6", out, settings)  # cached
    assert again["cached"] is True and again["duration"] == record["duration"]


def test_midi_bytes_parse_back():
    from music21 import midi

    from toolkit.data.accompaniment import Voice, midi_bytes

    data = midi_bytes([Voice(19, [(0.0, 0.5, 60), (0.5, 1.0, 64)]), Voice(48, [(0.25, 0.5, 48)])], 2.0)
    mf = midi.MidiFile()
    mf.readstr(data)
    ons = [(e.channel, e.pitch) for t in mf.tracks for e in t.events if e.isNoteOn()]
    assert sorted(ons) == [(1, 60), (1, 64), (2, 48)]
