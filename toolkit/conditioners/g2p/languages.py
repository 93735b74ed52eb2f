"""Which espeak-ng voice reads a line: explicit codes, script detection, language identification."""

from __future__ import annotations

import unicodedata
from collections import Counter
from functools import lru_cache

from ...optional import require


class UnsupportedLanguageError(ValueError):
    """No espeak-ng voice covers the requested language or the script of the lyrics."""


# Unicode script (first word of the character name) -> espeak-ng voice. Latin is absent on purpose:
# a Latin-script line without ASCII letters gives no hint of its language (it is read as English).
SCRIPT_VOICES = {
    "CYRILLIC": "ru", "GREEK": "el", "HANGUL": "ko", "HIRAGANA": "ja", "KATAKANA": "ja", "ARABIC": "ar",
    "HEBREW": "he", "DEVANAGARI": "hi", "BENGALI": "bn", "GURMUKHI": "pa", "GUJARATI": "gu", "ORIYA": "or",
    "TAMIL": "ta", "TELUGU": "te", "KANNADA": "kn", "MALAYALAM": "ml", "SINHALA": "si", "THAI": "th",
    "MYANMAR": "my", "GEORGIAN": "ka", "ARMENIAN": "hy", "ETHIOPIC": "am", "CJK": "cmn",
}


def char_script(ch: str) -> str:
    name = unicodedata.name(ch, "")
    return name.split(" ")[0] if name else "UNKNOWN"


def script_language(text: str) -> str | None:
    """The espeak voice for the dominant non-Latin script of the letters in `text`.

    None if the letters are all Latin (or there are none). Raises UnsupportedLanguageError for a
    script that no espeak-ng voice reads.
    """
    scripts = Counter(char_script(ch) for ch in text if ch.isalpha())
    scripts.pop("LATIN", None)
    if not scripts:
        return None
    script, _ = scripts.most_common(1)[0]
    voice = SCRIPT_VOICES.get(script)
    if voice is None:
        raise UnsupportedLanguageError(
            f"no espeak-ng voice reads the {script.title()} script of the lyrics {text!r}; supported scripts: "
            f"Latin, Han, {', '.join(s.title() for s in sorted(SCRIPT_VOICES))}. Romanise the lyrics or "
            f"pass an espeak-ng language code that reads them.")
    return voice


@lru_cache(maxsize=1)
def espeak_voices() -> frozenset[str]:
    require("phonemizer", "text", "espeak-ng phonemes")
    from phonemizer.backend import EspeakBackend

    try:
        return frozenset(EspeakBackend.supported_languages())
    except RuntimeError as err:
        raise UnsupportedLanguageError(
            f"espeak-ng is not usable ({err}); install it (Debian: apt-get install espeak-ng)") from err


def resolve_voice(code: str) -> str:
    """'de' -> 'de', 'fr' -> 'fr-fr', 'en' -> 'en-us', 'zh' -> 'cmn'; error if espeak has no such voice."""
    voices = espeak_voices()
    aliases = {"en": "en-us", "zh": "cmn", "fr": "fr-fr"}
    code = aliases.get(code, code)
    if code in voices:
        return code
    prefixed = sorted(v for v in voices if v.startswith(code + "-"))
    if prefixed:
        return prefixed[0]
    raise UnsupportedLanguageError(
        f"espeak-ng has no voice for language {code!r}; available: {', '.join(sorted(voices))}")


@lru_cache(maxsize=1)
def _identifier():
    langid = require("py3langid", "text", "detecting the language of lyrics")
    return langid


def detect_language(text: str) -> str:
    """ISO code of the line's language: a non-Latin script decides first, else py3langid."""
    if any("\u4e00" <= ch <= "\u9fa5" for ch in text):
        return "zh"
    voice = script_language(text)
    if voice is not None:
        return voice
    code, _ = _identifier().classify(text)
    return "en" if code == "en" else code
