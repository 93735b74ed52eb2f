"""Every lyric line of the embedded chorales the demo uses phonemizes with nothing dropped by the mapping."""

from toolkit.conditioners.g2p.tokenizer import PhonemeTokenizer
from toolkit.data.chorales import DEFAULT_NUM_PIECES, demo_lyric_lines


def test_demo_chorale_lines_lose_no_phoneme():
    lines = demo_lyric_lines(num_pieces=DEFAULT_NUM_PIECES)
    assert len(lines) >= DEFAULT_NUM_PIECES * 2
    tokenizer = PhonemeTokenizer("de", strict=True)  # strict: an unmapped phoneme raises
    for line in lines:
        result = tokenizer.phonemize(line)
        assert not result.unmapped, f"{line!r}: unmapped {result.unmapped}"
        assert len(result.tokens) >= len(line.split()), f"{line!r} gave too few tokens: {result.tokens}"
