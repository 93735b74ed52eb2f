"""English runs -> phoneme string, as DiffRhythm's tokenizer makes them.

Steps: abbreviation expansion and number reading (inflect) -> text clean-up -> espeak-ng `en-us`
through phonemizer (phones separated by `|`, words by `|_|`, the punctuation `,.?!;:'…` kept as
phones) -> a word separator appended after a final phone-like character -> merges of phone pairs
that the vocabulary holds as one symbol (t|ɹ -> tɹ, d|z -> dz, ...) and a few substitutions (ɐ -> ɚ).

phonemizer (and espeak-ng) are imported on first use only.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache

from ...optional import require
from .punctuation import KEPT_PUNCTUATION, to_ascii_punctuation

ESPEAK_LANGUAGE = "en-us"

_ABBREVIATIONS = {
    "mrs": "misess", "mr": "mister", "dr": "doctor", "st": "saint", "co": "company", "jr": "junior",
    "maj": "major", "gen": "general", "drs": "doctors", "rev": "reverend", "lt": "lieutenant",
    "hon": "honorable", "sgt": "sergeant", "capt": "captain", "esq": "esquire", "ltd": "limited",
    "col": "colonel", "ft": "fort", "etc": "et cetera", "btw": "by the way",
}
# Applied one after another in this order (the order matters: "mrs" before "mr", "dr" before "drs").
_ABBREVIATION_RULES = [(re.compile(rf"\b{short}\b", re.IGNORECASE), long) for short, long in _ABBREVIATIONS.items()]

# Phone sequences merged into one vocabulary symbol, or replaced, applied in this order, each
# until it no longer matches. A pattern only matches whole phones (bounded by | or _ or the ends).
_PHONE_MERGES = [
    ("t|ɹ", "tɹ"), ("d|ɹ", "dɹ"), ("t|s", "ts"), ("d|z", "dz"), ("ɪ|ɹ", "ɪɹ"), ("ɐ", "ɚ"), ("ᵻ", "ɪ"),
    ("əl", "l"), ("x", "k"), ("ɬ", "l"), ("ʔ", "t"), ("n̩", "n"), ("oː|ɹ", "oːɹ"),
]
_MERGE_RULES = [(re.compile(r"(^|[_|])" + re.escape(old) + r"([_|]|$)"), new) for old, new in _PHONE_MERGES]

# A phone string ending in one of these characters gets a trailing word separator.
_WORD_FINAL_CHARS = "p⁼ʰmftnlkxʃs`ɹaoəɛɪeɑʊŋiuɥwæjː"


# --- numbers -------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _inflect():
    return require("inflect", "text", "reading numbers in English lyrics").engine()


def _fraction(m: re.Match) -> str:
    num, den = int(m.group(1)), int(m.group(2))
    eng = _inflect()
    if (num, den) == (1, 2):
        return " one half "
    if (num, den) == (1, 4):
        return " one quarter "
    if den == 2:
        return f" {eng.number_to_words(num)} halves "
    if den == 4:
        return f" {eng.number_to_words(num)} quarters "
    return f" {eng.number_to_words(num)} {eng.ordinal(eng.number_to_words(den))} "


def _dollars(m: re.Match) -> str:
    amount = m.group(1)
    parts = amount.split(".")
    if len(parts) > 2:
        return f" {amount} dollars "
    dollars = int(parts[0]) if parts[0] else 0
    cents = int(parts[1]) if len(parts) > 1 and parts[1] else 0
    dollar_word = "dollar" if dollars == 1 else "dollars"
    cent_word = "cent" if cents == 1 else "cents"
    if dollars and cents:
        return f" {dollars} {dollar_word}, {cents} {cent_word} "
    if dollars:
        return f" {dollars} {dollar_word} "
    if cents:
        return f" {cents} {cent_word} "
    return " zero dollars "


def _cardinal(m: re.Match) -> str:
    eng = _inflect()
    num = int(m.group(0))
    if 1000 < num < 3000:  # read like a year
        if num == 2000:
            return " two thousand "
        if 2000 < num < 2010:
            return f" two thousand {eng.number_to_words(num % 100)} "
        if num % 100 == 0:
            return f" {eng.number_to_words(num // 100)} hundred "
        return " " + eng.number_to_words(num, andword="", zero="oh", group=2).replace(", ", " ") + " "
    return " " + eng.number_to_words(num, andword="") + " "


_NUMBER_RULES = [
    (re.compile(r"([0-9][0-9\,]+[0-9])"), lambda m: m.group(1).replace(",", "")),
    (re.compile(r"£([0-9\,]*[0-9]+)"), r"\1 pounds"),
    (re.compile(r"\$([0-9\.\,]*[0-9]+)"), _dollars),
    (re.compile(r"([0-9]+)/([0-9]+)"), _fraction),
    (re.compile(r"([0-9]+\.[0-9]+)"), lambda m: m.group(1).replace(".", " point ")),
    (re.compile(r"([0-9\.\,]*[0-9]+%)"), lambda m: m.group(1).replace("%", " percent ")),
    (re.compile(r"[0-9]+(st|nd|rd|th)"), lambda m: " " + _inflect().number_to_words(m.group(0)) + " "),
    (re.compile(r"[0-9]+"), _cardinal),
]


def normalize_english(text: str) -> str:
    """Expand abbreviations and spell out numbers."""
    for rule, long in _ABBREVIATION_RULES:
        text = rule.sub(long, text)
    for rule, repl in _NUMBER_RULES:
        text = rule.sub(repl, text)
    return text


# --- espeak ----------------------------------------------------------------------------------------

@cache
def espeak_backend(language: str):
    """A phonemizer EspeakBackend for one espeak voice, created on first use and kept."""
    require("phonemizer", "text", f"espeak-ng phonemes ({language})")
    from phonemizer.backend import EspeakBackend

    try:
        return EspeakBackend(
            language, punctuation_marks=KEPT_PUNCTUATION, preserve_punctuation=True, with_stress=False,
            tie=False, language_switch="remove-flags", words_mismatch="ignore")
    except RuntimeError as err:  # espeak-ng missing or no such voice
        raise RuntimeError(
            f"espeak-ng cannot phonemize language '{language}': {err}. Install espeak-ng "
            f"(Debian: apt-get install espeak-ng; `make install` does it) and check `espeak-ng --voices`.") from err


def clean_for_espeak(text: str) -> str:
    """Keep word characters, spaces and the kept punctuation; no spaces around punctuation."""
    text = to_ascii_punctuation(text.strip())
    text = re.sub(r"[^\w\s_,\.\?!;:\'…]", "", text)
    text = re.sub(r"\s*([,\.\?!;:\'…])\s*", r"\1", text)
    return re.sub(r"\s+", " ", text)


def espeak_raw(text: str, language: str) -> str:
    """Cleaned text -> phonemizer's output: phones joined by '|', words by '|_|', punctuation glued on."""
    from phonemizer.separator import Separator

    backend = espeak_backend(language)
    separator = Separator(word="|_|", syllable="-", phone="|")
    return "\n".join(backend.phonemize([clean_for_espeak(text)], separator=separator, strip=True, njobs=1))


def espeak_phones(text: str, language: str) -> str:
    """Cleaned text -> 'p|h|o|n|e|s|_|...' with each punctuation mark as its own phone."""
    phones = re.sub(r"([,\.\?!;:\'…])", r"|\1|", espeak_raw(text, language))
    phones = re.sub(r"\|+", "|", phones)
    return phones.rstrip("|")


def merge_phones(phones: str) -> str:
    for rule, new in _MERGE_RULES:
        while rule.search(phones):
            phones = rule.sub(lambda m, new=new: m.group(1) + new + m.group(2), phones)
    return phones


def english_to_phonemes(text: str) -> str:
    """One English run -> phoneme string (may end in '|_', which the line-level code drops)."""
    phones = espeak_phones(normalize_english(text), ESPEAK_LANGUAGE)
    if phones and phones[-1] in _WORD_FINAL_CHARS:
        phones += "|_"
    return merge_phones(phones)
