"""Lyric line -> phoneme tokens of DiffRhythm's vocabulary (token = vocab id + 1; 0 is filler).

`language="auto"` reproduces upstream's tokenizer exactly for English, Mandarin and mixed lines:
the line is split into language runs (segment.py), each run goes through its front end, the phone
strings are joined with '|', and a word separator left at the very end of a line that ends in
English is dropped. Where upstream raises, we do something documented instead (docs/lyrics.md):

* an empty (or blank) line gives no tokens: an instrumental gap, not a crash;
* a line with no Han character and no ASCII letter (digits / punctuation only) is read as English
  (digits become English number words) if it has digits or letters, and gives no tokens otherwise;
  if it has letters of another script, it goes to the espeak path with that script's language.

Any other `language` (an espeak-ng voice code such as "de", "fr-fr", "es") sends the whole line
through espeak-ng and the mapping tables of espeak_map.py; "zh" / "en" force one front end;
"detect" picks the language of each line with py3langid (zh / en through the upstream path).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from . import vocab
from .segment import EN, OTHER, ZH, language_runs

log = logging.getLogger(__name__)

AUTO, DETECT = "auto", "detect"


@dataclass
class Phonemized:
    """One line's result: the phone string, the vocab ids, and what could not be mapped."""

    phonemes: str
    ids: list[int]
    unmapped: list[str] = field(default_factory=list)

    @property
    def tokens(self) -> list[int]:
        return vocab.tokens_from_ids(self.ids)


def _run_phonemes(text: str, lang: str) -> str:
    if lang == ZH:
        from .mandarin import mandarin_to_phonemes

        return mandarin_to_phonemes(text)
    if lang == EN:
        from .english import english_to_phonemes

        return english_to_phonemes(text)
    raise ValueError(f"no upstream front end for language {lang!r}")


def upstream_line(text: str, strict: bool = False) -> Phonemized:
    """The upstream (CNEN) tokenizer on one line; see the module docstring for the non-upstream cases."""
    runs = language_runs(text)
    if len(runs) == 1 and runs[0][1] in ("", OTHER):
        return _other_only_line(text, strict)
    phonemes = ""
    ids: list[int] = []
    for index, (run, lang) in enumerate(runs):
        run_phonemes = _run_phonemes(run, lang)
        phonemes += run_phonemes + vocab.PHONE_SEP
        ids += vocab.ids_from_phonemes(run_phonemes)
        # A word separator at the very end of the line is dropped (with its id).
        if lang == EN and index == len(runs) - 1 and phonemes[-2] == vocab.WORD_SEP:
            phonemes = phonemes[:-2]
            ids = ids[:-1]
    return Phonemized(phonemes, ids)


def _other_only_line(text: str, strict: bool) -> Phonemized:
    if not text.strip():
        return Phonemized("", [])
    from .languages import script_language

    language = script_language(text)
    if language is not None:
        return espeak_line(text, language, strict)
    if any(ch.isalnum() for ch in text):
        return upstream_line_as(text, EN)
    return Phonemized("", [])


def upstream_line_as(text: str, lang: str) -> Phonemized:
    """The whole line through one upstream front end ("zh" or "en")."""
    phonemes = _run_phonemes(text, lang)
    ids = vocab.ids_from_phonemes(phonemes)
    phonemes += vocab.PHONE_SEP
    if lang == EN and phonemes[-2:] == vocab.WORD_SEP + vocab.PHONE_SEP:
        phonemes, ids = phonemes[:-2], ids[:-1]
    return Phonemized(phonemes, ids)


def espeak_line(text: str, language: str, strict: bool = False) -> Phonemized:
    from .espeak_map import espeak_to_vocab

    return espeak_to_vocab(text, language, strict=strict)


class PhonemeTokenizer:
    """Lyric lines -> token lists (vocab id + 1).

    language: "auto" (upstream zh/en runs), "zh", "en", "detect" (py3langid per line), or an espeak-ng
    voice code ("de", "fr-fr", ...). strict: an espeak phoneme with no mapping is an error instead of
    a warning (and is dropped).
    """

    def __init__(self, language: str = AUTO, strict: bool = False):
        self.language = language
        self.strict = strict
        self.voice = None  # the espeak-ng voice, for languages read through espeak_map
        if language not in (AUTO, DETECT, ZH, EN):
            from .languages import resolve_voice

            self.voice = resolve_voice(language)  # fails early for a language espeak-ng lacks

    def _detected(self, text: str) -> str | None:
        """DETECT: the espeak voice for this line, or None for the upstream zh/en path."""
        from .languages import UnsupportedLanguageError, detect_language, resolve_voice

        language = detect_language(text)
        if language in (ZH, EN):
            return None  # mixed zh/en lines keep the upstream run splitting
        try:
            return resolve_voice(language)
        except UnsupportedLanguageError:
            log.warning("lyrics %r: detected language %r has no espeak-ng voice; reading it as English",
                        text, language)
            return None

    def phonemize(self, text: str) -> Phonemized:
        if not text.strip():
            return Phonemized("", [])
        voice = self._detected(text) if self.language == DETECT else self.voice
        if voice is not None:
            result = espeak_line(text, voice, strict=self.strict)
        elif self.language in (ZH, EN):
            result = upstream_line_as(text, self.language)
        else:
            result = upstream_line(text, strict=self.strict)
        if result.unmapped:
            log.warning("lyrics %r: espeak phonemes with no vocabulary symbol were dropped: %s",
                        text, " ".join(result.unmapped))
        return result

    def encode(self, text: str) -> list[int]:
        """One line -> tokens (vocab id + 1)."""
        return self.phonemize(text).tokens

    def __call__(self, text: str) -> list[int]:
        return self.encode(text)
