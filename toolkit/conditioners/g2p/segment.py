"""Split a lyric line into language runs the way DiffRhythm's tokenizer does.

Characters U+4E00..U+9FA5 are Mandarin ("zh"), ASCII letters are English ("en"), everything else
("other": digits, spaces, punctuation, letters of other scripts) joins the run it is in. Leading
"other" characters join the first real run; a line with no zh/en character is one "other" run.
"""

from __future__ import annotations

ZH, EN, OTHER = "zh", "en", "other"


def char_language(ch: str) -> str:
    if "\u4e00" <= ch <= "\u9fa5":
        return ZH
    if ("A" <= ch <= "Z") or ("a" <= ch <= "z"):
        return EN
    return OTHER


def language_runs(text: str) -> list[tuple[str, str]]:
    """'我爱你 baby' -> [('我爱你 ', 'zh'), ('baby', 'en')]. An empty text gives [('', '')]."""
    runs: list[tuple[str, str]] = []
    current, lang = "", ""
    for ch in text:
        kind = char_language(ch)
        if not current:
            current, lang = ch, kind
        elif lang == OTHER:
            # A run that has only seen "other" characters takes the language of the first real one.
            current += ch
            lang = kind
        elif kind == lang or kind == OTHER:
            current += ch
        else:
            runs.append((current, lang))
            current, lang = ch, kind
    runs.append((current, lang))
    return runs
