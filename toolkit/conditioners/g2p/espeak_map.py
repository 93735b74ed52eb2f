"""Languages beyond English and Mandarin: espeak-ng phonemes mapped onto the 363-symbol vocabulary.

A line goes through espeak-ng (the same phonemizer settings as the English front end: phones
separated by `|`, words by `|_|`, `,.?!;:'…` kept), then every phone is mapped:

1. the language's own table (GERMAN below), which lists every phone espeak-ng 1.51's German voice
   prints, each to the nearest vocabulary symbol or sequence of symbols (possibly none, stated);
2. a phone that is itself a vocabulary symbol maps to itself;
3. COMMON: IPA symbols other voices print, to their nearest vocabulary symbols;
4. a phone with a length mark, a nasal tilde or a palatal mark maps as its base phone followed by
   the vocabulary's own `ː`, `̃` or `ʲ`; other diacritics (aspiration, syllabic, dental, ...) fall
   away from their base phone;
5. otherwise the phone is split into the longest vocabulary symbols it starts with.

What is still left is "unmapped": reported in `Phonemized.unmapped`, logged as a warning and
dropped, or an error in strict mode. Nothing is dropped silently. docs/lyrics.md shows the tables.
"""

from __future__ import annotations

import re
import unicodedata

from . import vocab
from .tokenizer import Phonemized

# espeak-ng 1.51 `de` phone -> vocabulary symbols.
GERMAN: dict[str, tuple[str, ...]] = {
    # short and long monophthongs
    "a": ("a",), "aː": ("aː",), "ɑ": ("ɑ",), "ɑː": ("ɑː",), "ɛ": ("ɛ",), "ɛː": ("ɛː",), "e": ("e",),
    "eː": ("eː",), "ɪ": ("ɪ",), "i": ("i",), "iː": ("iː",), "ɔ": ("ɔ",), "o": ("o",), "oː": ("oː",),
    "ʊ": ("ʊ",), "u": ("u",), "uː": ("uː",),
    "y": ("y",), "ʏ": ("y",), "yː": ("y", "ː"),          # ü: no long ü in the vocabulary
    "ø": ("ø",), "øː": ("ø", "ː"), "œ": ("œ",),          # ö
    "ə": ("ə",), "ɜ": ("ɜ",), "ɐ": ("ɐ",),               # schwa; espeak's vocalised -er is ɜ
    # diphthongs and r-diphthongs
    "aɪ": ("aɪ",), "aʊ": ("aʊ",), "ɔø": ("ɔɪ",), "ɔʏ": ("ɔɪ",), "eɪ": ("eɪ",), "əʊ": ("oʊ",), "oʊ": ("oʊ",),
    "iɐ": ("i", "ɐ"), "ʊɐ": ("ʊ", "ɐ"),
    "??": ("ʊ", "ɐ"),  # espeak-ng 1.51 prints its [ʊɐ] phoneme (Burg, durch, kurz) as "??"
    # nasal vowels of French loans
    "ɑ̃": ("ɑ̃",), "ɔ̃": ("ɔ̃",), "œ̃": ("œ", "̃"), "ɛ̃": ("ɛ", "̃"),
    # consonants
    "p": ("p",), "b": ("b",), "t": ("t",), "d": ("d",), "k": ("k",), "ɡ": ("ɡ",), "g": ("ɡ",),
    "f": ("f",), "v": ("v",), "s": ("s",), "z": ("z",), "ʃ": ("ʃ",), "ʒ": ("ʒ",), "ç": ("ç",),
    "x": ("x",), "h": ("h",), "m": ("m",), "n": ("n",), "ŋ": ("ŋ",), "l": ("l",), "j": ("j",),
    "r": ("r",), "ɾ": ("ɾ",), "ʁ": ("ʁ",), "R": ("ʁ",), "w": ("w",), "ɹ": ("ɹ",), "θ": ("θ",), "ð": ("ð",),
    "ts": ("ts",), "pf": ("p", "f"), "tʃ": ("tʃ",), "dʒ": ("dʒ",),
    "ʔ": (),  # glottal onset of a vowel-initial word: no phone of its own when sung
}

# Nearest vocabulary symbols for IPA that other espeak voices print.
COMMON: dict[str, tuple[str, ...]] = {
    "ʏ": ("y",), "ɤ": ("ə",), "ɨ": ("ɪ",), "ʉ": ("u",), "ɵ": ("ø",), "ɘ": ("ə",), "ɶ": ("œ",), "ɞ": ("œ",),
    "ɯ̽": ("ɯ",), "ä": ("a",), "ɛ̝": ("ɛ",), "ʌ̹": ("ʌ",),
    "β": ("b",), "ɣ": ("ɡ",), "ʎ": ("l", "j"), "ɟ": ("dʒ",), "c": ("k",), "ʝ": ("j",), "ɭ": ("l",),
    "ɳ": ("n",), "ʈ": ("t",), "ɖ": ("d",), "ɽ": ("ɾ",), "ʂ": ("ʃ",), "ʐ": ("ʒ",), "χ": ("x",),
    "ħ": ("h",), "ʕ": ("h",), "ɦ": ("h",), "ʋ": ("v",), "ɻ": ("ɹ",), "ɬ": ("l",), "ɮ": ("l",),
    "ɱ": ("m",), "ɴ": ("ɴ",), "ʀ": ("ʁ",), "ʙ": ("b",), "ⱱ": ("v",), "ɺ": ("ɾ",), "ʍ": ("w",),
    "ɥ": ("ɥ",), "ɰ": ("w",), "ʔ": (), "g": ("ɡ",), "ɚ": ("ɚ",), "ɝ": ("ɜː",), "ɑ̃": ("ɑ̃",),
    "dʑ": ("dʑ",), "tɕ": ("tɕ",), "ʑ": ("ʑ",), "ɕ": ("ɕ",), "ts": ("ts",), "dz": ("dz",),
}

LANGUAGE_TABLES: dict[str, dict[str, tuple[str, ...]]] = {"de": GERMAN}

# Diacritics kept as a vocabulary symbol after the base phone, and those that simply fall away.
_KEPT_MARKS = {"ː": "ː", "\u0303": "\u0303", "ʲ": "ʲ"}
_DROPPED_MARKS = set("ʰʷˠˤᵝ̩̪̯̥̬̰̤̚ˑ̝̞̟̠̹̜̆") | {"\u200d", "\u0361", "\u035c"}


class UnmappedPhonemeError(ValueError):
    """Strict mode: an espeak phoneme has no mapping onto the vocabulary."""


def table_for(language: str) -> dict[str, tuple[str, ...]]:
    return LANGUAGE_TABLES.get(language.split("-")[0], {})


def map_phone(phone: str, language: str) -> tuple[str, ...] | None:
    """One espeak phone -> vocabulary symbols, or None if nothing maps it."""
    table = table_for(language)
    symbols = vocab.symbol_ids()
    if phone in table:
        return table[phone]
    if phone in symbols:
        return (phone,)
    if phone in COMMON:
        return COMMON[phone]
    # Base phone + modifier marks.
    decomposed = unicodedata.normalize("NFD", phone)
    base = "".join(ch for ch in decomposed if ch not in _KEPT_MARKS and ch not in _DROPPED_MARKS)
    marks = [_KEPT_MARKS[ch] for ch in decomposed if ch in _KEPT_MARKS]
    if base and base != phone:
        mapped = map_phone(unicodedata.normalize("NFC", base), language)
        if mapped is not None:
            return mapped + tuple(m for m in marks if m in symbols)
    # Longest vocabulary symbols the phone is made of (e.g. an espeak diphthong the vocabulary lacks).
    pieces: list[str] = []
    rest = phone
    while rest:
        for size in range(len(rest), 0, -1):
            head = rest[:size]
            mapped = table[head] if head in table else (head,) if head in symbols else COMMON.get(head)
            if mapped is not None:
                pieces.extend(mapped)
                rest = rest[size:]
                break
        else:
            return None
    return tuple(pieces)


def map_phones(phones: list[str], language: str) -> tuple[list[str], list[str]]:
    """espeak phones -> (vocabulary symbols, phones that could not be mapped)."""
    out: list[str] = []
    unmapped: list[str] = []
    for phone in phones:
        if not phone:
            continue
        mapped = map_phone(phone, language)
        if mapped is None:
            unmapped.append(phone)
        else:
            out.extend(mapped)
    return out, unmapped


_PUNCTUATION_SPLIT = re.compile(r"[,\.\?!;:'…]|[^,\.\?!;:'…]+")
UNKNOWN_PHONE = "??"  # what espeak-ng prints for a phoneme it has no IPA for


def espeak_phone_list(text: str, voice: str) -> list[str]:
    """The phones (and `_`, punctuation) espeak-ng gives for `text`.

    phonemizer glues punctuation to the phone before it ("t?"); it is split off here. A phone that is
    exactly "??" is espeak's own placeholder, not punctuation, and is kept for the tables to map.
    """
    from .english import espeak_raw

    phones: list[str] = []
    for item in espeak_raw(text, voice).split(vocab.PHONE_SEP):
        if item == UNKNOWN_PHONE:
            phones.append(item)
        elif item:
            phones.extend(_PUNCTUATION_SPLIT.findall(item))
    return phones


def espeak_to_vocab(text: str, language: str, strict: bool = False) -> Phonemized:
    """One line read by the espeak voice `language`, mapped onto the vocabulary."""
    from .languages import resolve_voice

    voice = resolve_voice(language)
    phones = espeak_phone_list(text, voice)
    symbols, unmapped = map_phones(phones, voice)
    if unmapped and strict:
        raise UnmappedPhonemeError(
            f"espeak-ng ({voice}) phonemes {sorted(set(unmapped))} of {text!r} have no vocabulary mapping; "
            f"add them to toolkit/conditioners/g2p/espeak_map.py, or leave strict mode off to drop them with a warning")
    # A word separator at the end of the line is dropped, as for English.
    while symbols and symbols[-1] == vocab.WORD_SEP:
        symbols.pop()
    phonemes = vocab.PHONE_SEP.join(symbols)
    ids = [vocab.symbol_ids()[s] for s in symbols]
    return Phonemized(phonemes, ids, unmapped)


def espeak_inventory(texts: list[str], language: str) -> set[str]:
    """Every phone espeak-ng prints for `texts` (for checking a table's coverage)."""
    from .languages import resolve_voice

    voice = resolve_voice(language)
    found: set[str] = set()
    for text in texts:
        found.update(espeak_phone_list(text, voice))
    return found


def mapping_rows(language: str) -> list[tuple[str, str]]:
    """(espeak phone, vocabulary symbols) rows of a language's table, for the docs."""
    return [(phone, " ".join(symbols) if symbols else "(none)") for phone, symbols in table_for(language).items()]

