"""LRC reading / writing, plain-lyrics timing, the placement and training-window rules."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from toolkit.conditioners.lyrics_lrc import (
    LyricsLrcConditioner,
    NoLyricsInWindowError,
    place_tokens,
    song_frames,
    time_to_frame,
    window_lines,
)
from toolkit.lrc import (
    LrcError,
    LrcLine,
    format_lrc,
    format_time,
    looks_like_lrc,
    parse_lrc,
    plain_lines,
    read_lrc,
    time_evenly,
    time_on_beats,
    time_plain_lyrics,
    write_lrc,
)


def pairs(text, **kw):
    return parse_lrc(text, **kw).pairs()


# --- accepted formats -----------------------------------------------------------------------------

@pytest.mark.parametrize("stamp, seconds", [
    ("[01:02]", 62.0), ("[01:02.5]", 62.5), ("[01:02.25]", 62.25), ("[01:02.125]", 62.125),
    ("[01:02:25]", 62.25), ("[100:00.00]", 6000.0), ("[1:02.5]", 62.5),
])
def test_timestamp_formats(stamp, seconds):
    assert pairs(f"{stamp}la la") == [(seconds, "la la")]


def test_several_timestamps_on_one_line_and_sorting():
    text = "[00:20.00]second\n[00:05.00][00:30.00]chorus\n[00:10.00]first"
    assert pairs(text) == [(5.0, "chorus"), (10.0, "first"), (20.0, "second"), (30.0, "chorus")]


def test_equal_times_keep_file_order():
    assert pairs("[00:01.00]b\n[00:01.00]a") == [(1.0, "b"), (1.0, "a")]


def test_metadata_bom_crlf_blank_lines():
    text = "\ufeff[ti:Song]\r\n[ar:Someone]\r\n\r\n[00:01.00]one\r\n  \r\n[00:02.00]two\r\n"
    lrc = parse_lrc(text)
    assert lrc.pairs() == [(1.0, "one"), (2.0, "two")]
    assert lrc.tags == {"ti": "Song", "ar": "Someone"}


@pytest.mark.parametrize("offset, first", [("+500", 0.5), ("-250", 1.25), ("0", 1.0)])
def test_offset_is_applied(offset, first):
    # A positive offset makes lyrics appear earlier.
    assert pairs(f"[offset:{offset}]\n[00:01.00]a\n[00:03.00]b") == [(first, "a"), (first + 2.0, "b")]


def test_offset_anywhere_applies_to_all_lines():
    assert pairs("[00:01.00]a\n[offset:+1000]") == [(0.0, "a")]


def test_empty_timestamp_is_an_instrumental_gap():
    assert pairs("[00:01.00]a\n[00:05.00]\n[00:09.00]b") == [(1.0, "a"), (5.0, ""), (9.0, "b")]


def test_word_times_are_removed():
    assert pairs("[00:01.00]<00:01.00>Hel <00:01.50>lo") == [(1.0, "Hel lo")]


def test_read_lrc_file(tmp_path):
    path = tmp_path / "song.lrc"
    path.write_bytes("\ufeff[00:01.50]héllo\r\n".encode("utf-8"))
    assert read_lrc(path).pairs() == [(1.5, "héllo")]


# --- skipped with a warning, or errors ----------------------------------------------------------------

@pytest.mark.parametrize("line, reason", [
    ("just a plain line", "no timestamp at the start of the line"),
    ("[verse]", "[verse] is neither a timestamp nor a metadata tag"),
])
def test_skipped_lines_warn(caplog, line, reason):
    with caplog.at_level(logging.WARNING, logger="toolkit.lrc"):
        assert pairs(f"[00:01.00]a\n{line}") == [(1.0, "a")]
    assert reason in caplog.text and "line 2" in caplog.text.replace("LRC line 2", "line 2")
    with pytest.raises(LrcError, match=r"LRC line 2 .*" + reason.replace("[", r"\[").replace("]", r"\]")):
        parse_lrc(f"[00:01.00]a\n{line}", strict=True)


@pytest.mark.parametrize("text, line, reason", [
    ("[00:61.00]x", 1, r"seconds must be below 60 in \[00:61.00\]"),
    ("[00:01.00]a\n[00:1a.00]x", 2, r"malformed timestamp \[00:1a.00\]"),
    ("[00:01.1234]x", 1, r"more than 3 fraction digits"),
    ("[00:01.00 x", 1, r"unclosed '\[' at the start of the line"),
    ("[offset:soon]\n[00:01.00]x", 1, r"\[offset:soon\] must be a whole number of milliseconds"),
    ("[offset:+2000]\n[00:01.00]x", 2, r"moves its time 00:01.00 before 0:00"),
])
def test_errors_name_line_and_reason(text, line, reason):
    with pytest.raises(LrcError, match=rf"^LRC line {line}\b.*{reason}") as info:
        parse_lrc(text)
    assert info.value.line_number == line


def test_looks_like_lrc():
    assert looks_like_lrc("[ti:x]\n[00:01.00]a")
    assert not looks_like_lrc("just lyrics\n[Chorus]\nmore")


# --- writing -------------------------------------------------------------------------------------------

def test_format_and_round_trip(tmp_path):
    assert format_time(83.456) == "01:23.46"
    assert format_time(0) == "00:00.00"
    lines = [LrcLine(1.5, "one"), LrcLine(62.25, "two"), LrcLine(70.0, "")]
    text = format_lrc(lines, {"ti": "T"})
    assert text == "[ti:T]\n[00:01.50]one\n[01:02.25]two\n[01:10.00]\n"
    path = write_lrc(tmp_path / "out.lrc", lines, {"ti": "T"})
    assert read_lrc(path).lines == lines
    with pytest.raises(ValueError, match="negative"):
        format_time(-1)


# --- plain lyrics -------------------------------------------------------------------------------------------

def test_plain_lines_drop_blank_and_section_labels():
    assert plain_lines("[Verse 1]\nfirst  line\n\n(Chorus)\nsecond\n") == ["first line", "second"]


def test_even_timing():
    assert time_evenly(["a", "b", "c", "d"], 10.0, 30.0) == [
        LrcLine(10.0, "a"), LrcLine(15.0, "b"), LrcLine(20.0, "c"), LrcLine(25.0, "d")]
    with pytest.raises(ValueError, match="end > start"):
        time_evenly(["a"], 5.0, 5.0)
    with pytest.raises(ValueError, match="end of the vocal span"):
        time_plain_lyrics("a\nb")


def test_beat_timing_uses_regular_strides():
    beats = [i * 0.5 for i in range(20)]  # 120 bpm, 10 s
    timed = time_on_beats(["a", "b", "c"], beats, start=1.0)
    # 18 beats from 1.0 s, 3 lines -> every 6th beat.
    assert timed == [LrcLine(1.0, "a"), LrcLine(4.0, "b"), LrcLine(7.0, "c")]


def test_beat_timing_falls_back_to_even_spacing(caplog):
    with caplog.at_level(logging.WARNING):
        timed = time_on_beats(["a", "b", "c", "d"], [0.0, 1.0], start=0.0, end=8.0)
    assert [ln.time for ln in timed] == [0.0, 2.0, 4.0, 6.0]
    assert "spreading the lines evenly" in caplog.text


def test_beats_found_in_a_click_track():
    sr = 22050
    clip = np.zeros(sr * 8, dtype=np.float32)
    click = np.hanning(256).astype(np.float32)
    for k in range(16):  # 120 bpm
        start = int(k * 0.5 * sr)
        clip[start:start + 256] += click
    timed = time_plain_lyrics("one\ntwo", audio=clip, sample_rate=sr)
    assert len(timed) == 2 and timed[0].time < timed[1].time
    for line in timed:  # on the click grid
        assert abs(line.time / 0.5 - round(line.time / 0.5)) * 0.5 < 0.05


# --- placement and the training window ------------------------------------------------------------------------

FR = 44100 / 2048


def test_placement_rule():
    lines = [(0.0, [10, 2, 11]), (0.05, [12]), (1.0, [13, 14])]
    out = place_tokens(lines, 30)
    # inner period -> comma, a period appended; the second line is pushed right; the third starts at int(1*FR)=21
    assert out[:6].tolist() == [10, 1, 11, 2, 12, 2]
    assert out[21:24].tolist() == [13, 14, 2]
    assert int((out != 0).sum()) == 9


def test_placement_is_cut_at_the_end_and_respects_max_secs():
    out = place_tokens([(1.0, [5, 6, 7, 8])], 23)
    assert out[21:].tolist() == [5, 6]
    out = place_tokens([(1.0, [5]), (3.0, [6])], 100, max_secs=2.0)
    assert out.nonzero().flatten().tolist() == [21, 22]


def test_base_model_drops_the_last_line():
    lines = [(1.0, [5]), (2.0, [6]), (3.0, [7])]
    base = place_tokens(lines, 2048, max_frames=2048)
    full = place_tokens(lines, 2048, max_frames=6144)
    assert 7 not in base.tolist() and 7 in full.tolist()
    assert song_frames(95, 2048) == 2048 and song_frames(120, 6144) == 2583 and song_frames(300, 6144) == 6144


def test_training_window_shift():
    lines = [(1.0, [5]), (50.0, [6]), (60.0, [7]), (200.0, [8])]
    start_frame = int(45.0 * FR)
    win = window_lines(lines, start_frame, max_frames=2048)
    t0 = start_frame / FR
    assert win.start_time == pytest.approx(t0)
    # kept: 50 s and 60 s (shifted into the window); the base model drops the last (60 s), the end marker
    assert win.end_frame == int((60.0 - t0) * FR)
    assert win.tokens.nonzero().flatten().tolist() == [int((50.0 - t0) * FR), int((50.0 - t0) * FR) + 1]
    assert [tok for _, tok in win.lines] == [[6]]
    full = window_lines(lines, start_frame, max_frames=6144)
    assert 7 in full.tokens.tolist()
    with pytest.raises(NoLyricsInWindowError):
        window_lines(lines, int(300 * FR), max_frames=2048)


def test_conditioner_inputs_and_null():
    cond = LyricsLrcConditioner(max_frames=6144, language="en")
    lrc = cond.prepare("[00:01.00]Hello\n[00:02.00]Goodbye", num_frames=100)
    parsed = cond.prepare([(1.0, "Hello"), (2.0, "Goodbye")], num_frames=100)
    assert lrc.dtype == torch.long and lrc.shape == (100,) and torch.equal(lrc, parsed)
    plain = cond.prepare("Hello\nGoodbye", num_frames=100)  # spread over 100 frames: at 0 s and ~2.32 s
    assert plain[0] != 0 and plain.nonzero().flatten().tolist()[-1] < 100
    assert torch.equal(cond.null(3, 100), torch.zeros(3, 100, dtype=torch.long))
    assert cond.output_kind == "frame_ids"
    assert not cond.prepare("", num_frames=10).any()


def test_window_accepts_upstream_lrc_records():
    from toolkit.conditioners.lyrics_lrc import upstream_lrc_record

    record = upstream_lrc_record([(1.0, [5, 2, 6]), (3.0, [7])])
    assert record["lrc"][0].dtype == torch.int32 and record["time"] == [1.0, 3.0]
    win = window_lines(list(zip(record["time"], record["lrc"], strict=False)), 0, max_frames=6144)
    assert win.tokens[21:25].tolist() == [5, 1, 6, 2] and win.end_frame == int(3.0 * FR)


def test_plain_lyrics_keep_every_line_with_the_base_model():
    base = LyricsLrcConditioner(max_frames=2048, language="en")
    lines = base.lines("Hello\nGoodbye", 2048)
    assert [ln.text for ln in lines] == ["Hello", "Goodbye", ""]  # an end marker after the lyrics
    out = base.prepare("Hello\nGoodbye", num_frames=2048)
    goodbye = base.tokenizer.encode("Goodbye")
    start = int(lines[1].time * FR)
    assert out[start:start + len(goodbye)].tolist() == goodbye


def test_times_use_upstreams_arithmetic():
    """int(mm) * 60 + float("ss.xx"), bit for bit, as upstream's reader: a time on a frame boundary lands on
    upstream's frame (348.16 s is frame 7497 exactly; upstream computes 348.15999999999997 -> frame 7496)."""
    lines = parse_lrc("[00:10.123]c\n[01:34.99]a\n[05:48.16]b").pairs()
    assert [t for t, _ in lines] == [float("10.123"), 60 + float("34.99"), 5 * 60 + float("48.16")]
    assert lines[1][0] == 94.99000000000001 and lines[2][0] == 348.15999999999997
    assert time_to_frame(lines[2][0]) == int((5 * 60 + float("48.16")) * 44100 / 2048) == 7496


def test_offset_is_applied_after_upstreams_arithmetic():
    (t, _), = parse_lrc("[offset:+500]\n[01:34.99]a").pairs()
    assert t == (1 * 60 + float("34.99")) - 0.5
