"""Text -> character (or pinyin, or byte) indices for F5-TTS, with a vocab file.

The vocab file is F5-TTS's `vocab.txt`: one token per line, the index of a token is its line number
(line 0 is the space " "). A token is a character or, for Mandarin, a pinyin syllable with its tone
("ni3"). Unknown tokens map to 0 (upstream's behaviour: they become spaces). A batch is padded with -1;
the backbone adds 1 so embedding row 0 is the filler.

Tokenizers:
  * "char": every character is a token;
  * "pinyin": F5-TTS's mixed-script rule (`convert_to_pinyin`): Chinese words become pinyin syllables
    (TONE3 with tone sandhi) preceded by a space, runs of Latin text stay characters (a space is put
    before a multi-character run unless the previous token is a space or one of : ' ");
    needs pypinyin and rjieba (upstream's segmenter) or jieba (ASCII runs re-joined as rjieba keeps them);
  * "byte": UTF-8 bytes, no vocab (upstream's `list_str_to_tensor`; vocab size 256).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..protocols import OUT_IDS, Conditioner
from ..registry import CONDITIONERS

TOKENIZERS = ("char", "pinyin", "byte")
PAD = -1
# A weight-free default for English data: space first (index 0, as upstream), then printable ASCII.
DEFAULT_VOCAB = [" "] + [chr(c) for c in range(33, 127)]
_PINYIN_PUNCT = str.maketrans({";": ",", "\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'"})


def read_vocab(path: str | Path) -> list[str]:
    """vocab.txt -> tokens (index = line number). A trailing newline does not add a token."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"vocab file {path} does not exist (one token per line, e.g. F5-TTS's vocab.txt)")
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines = lines[:-1]
    if len(set(lines)) != len(lines):
        dup = sorted({t for t in lines if lines.count(t) > 1})[:5]
        raise ValueError(f"vocab file {path} repeats tokens {dup!r}: every line must be unique")
    return lines


def write_vocab(tokens: Sequence[str], path: str | Path) -> Path:
    from ..io import atomic_write_text

    bad = [t for t in tokens if "\n" in t or t == ""]
    if bad:
        raise ValueError(f"vocab tokens must be non-empty and single-line, got {bad[:3]!r}")
    return atomic_write_text(Path(path), "".join(f"{t}\n" for t in tokens))


def pad_sequences(seqs: Iterable[Sequence[int] | torch.Tensor], pad: int = PAD) -> torch.Tensor:
    seqs = [torch.as_tensor(list(s) if not torch.is_tensor(s) else s, dtype=torch.long) for s in seqs]
    n = max((len(s) for s in seqs), default=0)
    out = torch.full((len(seqs), n), pad, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = s
    return out


def texts_to_indices(texts: Sequence[str | Sequence[str]], vocab_map: Mapping[str, int]) -> torch.Tensor:
    """Strings (each character a token) or pre-split token lists -> [B, n] indices, unknown -> 0, pad -1."""
    return pad_sequences([[vocab_map.get(tok, 0) for tok in text] for text in texts])


def texts_to_bytes(texts: Sequence[str]) -> torch.Tensor:
    """Strings -> [B, n] UTF-8 byte values, pad -1."""
    return pad_sequences([list(text.encode("utf-8")) for text in texts])


def _merge_ascii_runs(segments: Iterable[str]) -> list[str]:
    """Join neighbouring ASCII segments that hold no whitespace ("F5", "-", "TTS" -> "F5-TTS").

    Python jieba splits such runs at punctuation; rjieba (upstream's segmenter) keeps them whole, and
    the pinyin rule puts a space before every multi-character ASCII segment, so the split matters.
    """
    out: list[str] = []
    for seg in segments:
        solid = seg.isascii() and not any(c.isspace() for c in seg)
        if solid and out and out[-1].isascii() and not any(c.isspace() for c in out[-1]):
            out[-1] += seg
        else:
            out.append(seg)
    return out


def _segmenter():
    try:
        import rjieba  # what upstream uses

        return lambda text: list(rjieba.cut(text))
    except ImportError:
        from ..optional import require

        jieba = require("jieba", "text")
        import logging

        jieba.setLogLevel(logging.ERROR)
        return lambda text: _merge_ascii_runs(jieba.cut(text))


def _is_chinese(c: str) -> bool:
    return "\u3100" <= c <= "\u9fff"


def convert_to_pinyin(texts: Sequence[str], polyphone: bool = True) -> list[list[str]]:
    """F5-TTS's mixed-script tokenisation: Chinese -> pinyin syllables, other text -> characters."""
    from ..optional import require

    pypinyin = require("pypinyin", "text")

    def syllables(word: str) -> list[str]:
        return pypinyin.lazy_pinyin(word, style=pypinyin.Style.TONE3, tone_sandhi=True)

    cut = _segmenter()
    result = []
    for text in texts:
        tokens: list[str] = []
        for seg in cut(text.translate(_PINYIN_PUNCT)):
            n_bytes = len(seg.encode("utf-8"))
            if n_bytes == len(seg):  # ASCII only
                if tokens and n_bytes > 1 and tokens[-1] not in " :'\"":
                    tokens.append(" ")
                tokens.extend(seg)
            elif polyphone and n_bytes == 3 * len(seg):  # all three-byte (CJK) characters: whole-word pinyin
                # pypinyin returns a run of characters it cannot read (kana, hangul) as one item, so items
                # and characters can differ in number: walk the characters each item covers
                i = 0
                for syl in syllables(seg):
                    if _is_chinese(seg[i]):
                        tokens.append(" ")
                    i += len(syl) if seg.startswith(syl, i) else 1
                    tokens.append(syl)
            else:  # mixed: character by character
                for c in seg:
                    if ord(c) < 256:
                        tokens.append(c)
                    elif _is_chinese(c):
                        tokens.append(" ")
                        tokens.extend(syllables(c))
                    else:
                        tokens.append(c)
        result.append(tokens)
    return result


@CONDITIONERS.register("char_tokens")
class CharTokens(Conditioner):
    """Transcript -> character / pinyin / byte indices (F5-TTS's text condition, vocab.txt order).

    Args:
        vocab: path of a vocab.txt, a list of tokens, or None for the built-in ASCII vocab
            (space + printable ASCII; byte tokenizer: ignored, 256 values).
        tokenizer: "char", "pinyin" or "byte".
    prepare(text) -> int64 [n] (not frame-aligned: the backbone pads it to the frames).
    """

    output_kind = OUT_IDS
    default_source = "lyrics"  # a manifest's transcript (toolkit.bin.prepare reads the .txt beside a clip)

    def __init__(self, vocab: str | Sequence[str] | None = None, tokenizer: str = "char"):
        super().__init__()
        if tokenizer not in TOKENIZERS:
            raise ValueError(f"unknown tokenizer {tokenizer!r}; choose one of {TOKENIZERS}")
        self.tokenizer = tokenizer
        if tokenizer == "byte":
            self.vocab = [chr(i) for i in range(256)]
            self.vocab_path = None
        elif vocab is None:
            self.vocab, self.vocab_path = list(DEFAULT_VOCAB), None
        elif isinstance(vocab, (str, Path)):
            self.vocab, self.vocab_path = read_vocab(vocab), str(vocab)
        else:
            self.vocab, self.vocab_path = [str(t) for t in vocab], None
        self.vocab_map = {tok: i for i, tok in enumerate(self.vocab)}

    @property
    def vocab_size(self) -> int:
        """Number of tokens (the backbone's text_num_embeds; its table has one more row)."""
        return len(self.vocab)

    def split(self, text: str) -> list[str]:
        """The tokens of one transcript (characters, or pinyin syllables and characters)."""
        if self.tokenizer == "pinyin":
            return convert_to_pinyin([text])[0]
        return list(text)

    def encode(self, text: str) -> list[int]:
        if self.tokenizer == "byte":
            return list(text.encode("utf-8"))
        return [self.vocab_map.get(tok, 0) for tok in self.split(text)]

    def unknown(self, text: str) -> list[str]:
        """Tokens of `text` missing from the vocab (they would be read as spaces)."""
        if self.tokenizer == "byte":
            return []
        return sorted({tok for tok in self.split(text) if tok not in self.vocab_map})

    def prepare(self, value: Any, *, num_frames: int | None = None) -> torch.Tensor:
        if not isinstance(value, str):
            raise TypeError(f"char_tokens prepares a transcript string, got {type(value).__name__}")
        return torch.tensor(self.encode(value), dtype=torch.long)

    def extract(self, value: Any, span: Any) -> torch.Tensor | None:
        """A transcript's ids; None for a missing or blank one (the dataset leaves such items out)."""
        return self.prepare(value) if isinstance(value, str) and value.strip() else None

    def collate(self, values: Sequence[torch.Tensor]) -> torch.Tensor:
        return pad_sequences(values)

    def null(self, batch_size: int, num_frames: int | None = None) -> torch.Tensor:
        return torch.full((batch_size, num_frames or 1), PAD, dtype=torch.long)
