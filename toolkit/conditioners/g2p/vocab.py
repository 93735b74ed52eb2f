"""The 363-symbol phoneme vocabulary of DiffRhythm's tokenizer (toolkit/assets/g2p_vocab.json).

Symbol ids are 0..362; the model's lyric tokens are id + 1, so token 0 is the filler / padding value.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

VOCAB_PATH = Path(__file__).resolve().parents[2] / "assets" / "g2p_vocab.json"
PHONE_SEP = "|"
WORD_SEP = "_"
COMMA, PERIOD = ",", "."


@lru_cache(maxsize=1)
def symbol_ids() -> dict[str, int]:
    """Phoneme symbol -> id (0..362)."""
    with open(VOCAB_PATH, encoding="utf-8") as fh:
        return dict(json.load(fh)["vocab"])


def num_symbols() -> int:
    return len(symbol_ids())


def token_of(symbol: str) -> int:
    """Token (id + 1) of one symbol; KeyError if it is not in the vocabulary."""
    return symbol_ids()[symbol] + 1


def ids_from_phonemes(phonemes: str) -> list[int]:
    """'a|b|c' -> ids of the symbols in the vocabulary.

    Symbols outside the vocabulary are skipped, as upstream does; the paths that can produce such
    symbols (other languages) map them first and report what they could not map.
    """
    vocab = symbol_ids()
    return [vocab[p] for p in phonemes.split(PHONE_SEP) if p in vocab]


def tokens_from_ids(ids: list[int]) -> list[int]:
    return [i + 1 for i in ids]
