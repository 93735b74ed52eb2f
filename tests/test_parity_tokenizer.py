"""Parity of the lyrics tokenizer and LRC placement with upstream DiffRhythm.

Cases come from golden/diffrhythm/tokenizer_cases.json ("lines": text -> phonemes / ids / tokens or
an upstream error; "lrc": LRC texts with their parsed lines and frame placements). Mandarin lines
need the data files fetched by `python -m toolkit.conditioners.g2p.fetch` (make install runs it).
"""

from __future__ import annotations

import json
import re

import pytest
import torch
from golden import golden_file

from toolkit.conditioners.g2p.data import FETCH_COMMAND, missing_files
from toolkit.conditioners.g2p.tokenizer import PhonemeTokenizer
from toolkit.conditioners.lyrics_lrc import (
    PERIOD_TOKEN,
    LyricsLrcConditioner,
    kept_lines,
    line_tokens,
    place_tokens,
    song_frames,
    time_to_frame,
)
from toolkit.lrc import parse_lrc

SET = "diffrhythm"
FILE = "tokenizer_cases.json"
MISSING = "<fixture file missing>"


def _load() -> dict:
    with open(golden_file(SET, FILE), encoding="utf-8") as fh:
        return json.load(fh)


def _names(section: str, sub: str | None = None) -> list[str]:
    """Case names for parametrisation; a missing file or an empty section still yields one case that fails."""
    try:
        with open(golden_file(SET, FILE), encoding="utf-8") as fh:
            data = json.load(fh)
    except BaseException:  # pytest.fail at collection time: let the test itself report it
        return [MISSING]
    if sub is None:
        names = list(data.get(section, {}))
    else:
        names = [f"{n}/{k}" for n, case in data.get(section, {}).items() for k in case.get(sub, {})]
    return names or [f"<no cases in {section}>"]


@pytest.fixture(scope="module")
def cases() -> dict:
    return _load()


@pytest.fixture(scope="module")
def tokenizer() -> PhonemeTokenizer:
    return PhonemeTokenizer("auto")


def _needs_mandarin(text: str) -> None:
    if re.search("[\u4e00-\u9fa5]", text) and missing_files():
        pytest.fail(f"Mandarin tokenizer data missing ({', '.join(missing_files())}); run `{FETCH_COMMAND}`")


def _case(cases: dict, section: str, name: str) -> dict:
    if name.startswith("<"):
        pytest.fail(f"{SET}/{FILE}: {name}")
    return cases[section][name]


@pytest.mark.parametrize("text", _names("lines"))
def test_line_tokens(cases, tokenizer, text):
    case = _case(cases, "lines", text)
    _needs_mandarin(text)
    ours = tokenizer.phonemize(text)
    if "error" in case:
        # Upstream raises here. Documented behaviour (docs/lyrics.md): a blank line is an instrumental
        # gap with no tokens; any other line is tokenized without raising.
        if not text.strip():
            assert ours.tokens == [] and ours.phonemes == ""
        else:
            assert all(1 <= t <= 363 for t in ours.tokens)
        return
    hint = f" (fixture made with {cases.get('espeak_ng', '?')})"
    assert ours.phonemes == case["phonemes"], "phoneme string differs" + hint
    assert ours.ids == case["g2p_ids"]
    assert ours.tokens == case["tokens"]


def _lines_with_tokens(case: dict, tokenizer) -> list[tuple[float, list[int]]]:
    for _, text in case["parsed"]:
        _needs_mandarin(text)
    return [(float(t), tokenizer.encode(text)) for t, text in case["parsed"]]


def assert_gap_layout(out: torch.Tensor, lines: list[tuple[float, list[int]]], audio_length: float,
                      max_frames: int) -> None:
    """Upstream crashes on an empty lyric line; ours leaves that line's frames empty and places every other kept
    line at its own frame (these fixtures have no overlapping lines)."""
    covered = torch.zeros(out.shape[0], dtype=torch.bool)
    for t, tok in kept_lines(lines, audio_length, max_frames):
        placed = line_tokens(tok)
        start = time_to_frame(t)
        if placed:
            assert out[start:start + len(placed)].tolist() == placed
            assert placed[-1] == PERIOD_TOKEN
            covered[start:start + len(placed)] = True
    assert covered.any() and not out[~covered].any()


@pytest.mark.parametrize("name", _names("lrc", "placements"))
def test_placement(cases, tokenizer, name):
    lrc_name, key = name.split("/", 1) if "/" in name else (name, "")
    case = _case(cases, "lrc", lrc_name)
    expected = case["placements"][key]
    lines = _lines_with_tokens(case, tokenizer)
    # "<max_frames>_<audio_length>"; upstream-error entries carry no fields but the key
    max_frames = int(expected.get("max_frames", key.split("_")[0]))
    audio_length = float(expected.get("audio_length", key.split("_")[1]))
    length = song_frames(audio_length, max_frames)
    out = place_tokens(lines, length, max_secs=audio_length, max_frames=max_frames)
    assert out.dtype == torch.long and out.shape == (length,)
    if "error" in expected:
        assert_gap_layout(out, lines, audio_length, max_frames)
        return
    assert length == expected["lrc_len"] == expected["end_frame"]
    assert expected["start_time"] == 0.0
    assert torch.tensor(length / max_frames).half().item() == expected["song_duration_fp16"]
    nonzero = [[i, int(v)] for i, v in enumerate(out.tolist()) if v]
    assert nonzero == expected["nonzero"]


@pytest.mark.parametrize("name", _names("lrc", "placements"))
def test_conditioner_end_to_end(cases, name):
    """Our reader + tokenizer + placement from the raw LRC text give upstream's frames."""
    lrc_name, key = name.split("/", 1) if "/" in name else (name, "")
    case = _case(cases, "lrc", lrc_name)
    expected = case["placements"][key]
    lines = _lines_with_tokens(case, PhonemeTokenizer("auto"))
    max_frames = int(expected.get("max_frames", key.split("_")[0]))
    audio_length = float(expected.get("audio_length", key.split("_")[1]))
    length = song_frames(audio_length, max_frames)
    conditioner = LyricsLrcConditioner(max_frames=max_frames)
    out = conditioner.prepare(case["text"], num_frames=length, audio_length=audio_length)
    if "error" in expected:  # upstream crashes; ours gives the layout test_placement pins
        assert_gap_layout(out, lines, audio_length, max_frames)
        return
    assert length == expected["lrc_len"]
    assert [[i, int(v)] for i, v in enumerate(out.tolist()) if v] == expected["nonzero"]


_UPSTREAM_WIDTH = re.compile(r"^\[\d\d:\d\d\.\d\d\](?!\s*\[\d)")


def _upstream_reads_right(text: str) -> bool:
    """Upstream slices line[1:9] / line[10:]: right only for one [mm:ss.xx] per line, no BOM, no offset."""
    if text.startswith("\ufeff") or re.search(r"\[offset:", text, re.I):
        return False
    timed = [ln for ln in text.strip().split("\n") if re.match(r"^\[\d", ln)]
    return all(_UPSTREAM_WIDTH.match(ln) for ln in timed)


@pytest.mark.parametrize("lrc_name", _names("lrc"))
def test_reader_matches_parsed(cases, lrc_name):
    """Where upstream's fixed-width reader is right, ours reads the same lines."""
    case = _case(cases, "lrc", lrc_name)
    ours = parse_lrc(case["text"]).pairs()
    if _upstream_reads_right(case["text"]):
        assert ours == [(float(t), text) for t, text in case["parsed"]]
    else:  # upstream misreads this text; ours must still read it (tests/test_lrc.py pins the formats)
        assert ours


def test_reader_fixes_upstream_millisecond_stamps():
    # Upstream slices line[1:9] / line[10:]: "[00:10.123]Hello" becomes 10.12 s and "]Hello".
    assert parse_lrc("[00:10.123]Hello\n[00:12]Bye").pairs() == [(10.123, "Hello"), (12.0, "Bye")]
