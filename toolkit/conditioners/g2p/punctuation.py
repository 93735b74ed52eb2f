"""Punctuation handling shared by the language front ends."""

from __future__ import annotations

# Punctuation that survives as phones (`,` `.` `?` `!` have their own tokens; `;` `:` `'` `…` too).
KEPT_PUNCTUATION = ",.?!;:'…"

# Full-width / CJK punctuation -> the ASCII (or ellipsis) symbol the vocabulary knows.
_REPLACEMENTS = [
    ("，", ","), ("。", "."), ("！", "!"), ("？", "?"), ("；", ";"), ("：", ":"), ("、", ","),
    ("‘", "'"), ("’", "'"), ("⋯", "…"), ("···", "…"), ("・・・", "…"), ("...", "…"),
]


def to_ascii_punctuation(text: str) -> str:
    for old, new in _REPLACEMENTS:
        text = text.replace(old, new)
    return text
