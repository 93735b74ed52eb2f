"""Mandarin runs -> phoneme string, as DiffRhythm's tokenizer makes them.

Steps: Arabic numbers read out (cn2an) -> punctuation normalised, everything but Han characters and
the kept punctuation removed -> jieba words (with 一 / 不 / 儿 re-attached) -> numbered pinyin per
syllable from the lexicon, polyphonic characters through the ONNX BERT -> tone sandhi (3-3, 不, 一,
儿) -> bopomofo -> IPA-like symbols with tone arrows (→ high, ↑ rising, ↓↑ dipping, ↓ falling,
none for the neutral tone).

Needs the data files fetched by `python -m toolkit.conditioners.g2p.fetch`; never needs espeak.
"""

from __future__ import annotations

import re
from functools import lru_cache

from ...optional import require
from .data import data_file
from .punctuation import to_ascii_punctuation

# Tone digit of numbered pinyin -> bopomofo tone mark ('' = first tone, marked later with ˉ).
_TONE_MARK = {"0": "˙", "5": "˙", "1": "", "2": "ˊ", "3": "ˇ", "4": "ˋ"}
_TONE_MARKS = "˙ˊˇˋ"

# Bopomofo -> symbols of the vocabulary; '|' separates phones. Replaced in this order (two-letter
# finals before their letters).
_BOPOMOFO_TO_IPA = [
    ("ㄅㄛ", "p⁼wo"), ("ㄆㄛ", "pʰwo"), ("ㄇㄛ", "mwo"), ("ㄈㄛ", "fwo"),
    ("ㄧㄢ", "|jɛn"), ("ㄩㄢ", "|ɥæn"), ("ㄧㄣ", "|in"), ("ㄩㄣ", "|ɥn"), ("ㄧㄥ", "|iŋ"), ("ㄨㄥ", "|ʊŋ"),
    ("ㄩㄥ", "|jʊŋ"), ("ㄧㄚ", "|ia"), ("ㄧㄝ", "|iɛ"), ("ㄧㄠ", "|iɑʊ"), ("ㄧㄡ", "|ioʊ"), ("ㄧㄤ", "|iɑŋ"),
    ("ㄨㄚ", "|ua"), ("ㄨㄛ", "|uo"), ("ㄨㄞ", "|uaɪ"), ("ㄨㄟ", "|ueɪ"), ("ㄨㄢ", "|uan"), ("ㄨㄣ", "|uən"),
    ("ㄨㄤ", "|uɑŋ"), ("ㄩㄝ", "|ɥɛ"),
    ("ㄅ", "p⁼"), ("ㄆ", "pʰ"), ("ㄇ", "m"), ("ㄈ", "f"), ("ㄉ", "t⁼"), ("ㄊ", "tʰ"), ("ㄋ", "n"), ("ㄌ", "l"),
    ("ㄍ", "k⁼"), ("ㄎ", "kʰ"), ("ㄏ", "x"), ("ㄐ", "tʃ⁼"), ("ㄑ", "tʃʰ"), ("ㄒ", "ʃ"), ("ㄓ", "ts`⁼"),
    ("ㄔ", "ts`ʰ"), ("ㄕ", "s`"), ("ㄖ", "ɹ`"), ("ㄗ", "ts⁼"), ("ㄘ", "tsʰ"), ("ㄙ", "|s"),
    ("ㄚ", "|a"), ("ㄛ", "|o"), ("ㄜ", "|ə"), ("ㄝ", "|ɛ"), ("ㄞ", "|aɪ"), ("ㄟ", "|eɪ"), ("ㄠ", "|ɑʊ"),
    ("ㄡ", "|oʊ"), ("ㄢ", "|an"), ("ㄣ", "|ən"), ("ㄤ", "|ɑŋ"), ("ㄥ", "|əŋ"), ("ㄦ", "əɹ"),
    ("ㄧ", "|i"), ("ㄨ", "|u"), ("ㄩ", "|ɥ"),
    ("ˉ", "→|"), ("ˊ", "↑|"), ("ˇ", "↓↑|"), ("ˋ", "↓|"), ("˙", "|"),
]

_NOT_ER_WORDS = {"女儿", "老儿", "男儿", "少儿", "小儿"}
_YI_DIGITS = set("零一二三四五六七八九十")
_YI_PUNCT = "：，；。？！“”‘’':,;.?!()（）{}【】[]-~`、 "


# --- data ----------------------------------------------------------------------------------------

def _read_pairs(name: str) -> list[tuple[str, str]]:
    with open(data_file(name), encoding="utf-8") as fh:
        return [tuple(line.strip().split("\t")) for line in fh]  # type: ignore[misc]


@lru_cache(maxsize=1)
def lexicon() -> dict[str, str]:
    """word -> space-separated numbered pinyin (664 982 entries)."""
    return dict(_read_pairs("chinese_lexicon.txt"))


@lru_cache(maxsize=1)
def pinyin_to_bopomofo() -> dict[str, str]:
    return dict(_read_pairs("pinyin_2_bpmf.txt"))


@lru_cache(maxsize=1)
def polyphonic_chars() -> frozenset[str]:
    with open(data_file("g2p_chinese_model/polychar.txt"), encoding="utf-8") as fh:
        return frozenset(line.rstrip("\n") for line in fh)


@lru_cache(maxsize=1)
def _jieba():
    jieba = require("jieba", "text", "Mandarin word segmentation")
    jieba.setLogLevel(60)  # silence "Building prefix dict ..."
    return jieba


# --- text normalisation -----------------------------------------------------------------------------

def read_numbers(text: str) -> str:
    cn2an = require("cn2an", "text", "reading numbers in Mandarin lyrics")
    return cn2an.transform(text, "an2cn")


def normalize_mandarin(text: str) -> str:
    text = to_ascii_punctuation(text)
    text = re.sub(r"\s+", "", text)
    text = re.sub(r"[^\u4e00-\u9fff\s_,\.\?!;:\'…]", "", text)
    return re.sub(r"\s*([,\.\?!;:\'…])\s*", r"\1", text)


# --- word segmentation ---------------------------------------------------------------------------------

def _attach_yi(words: list[str]) -> list[str]:
    # "X 一 X" (看一看) becomes one word.
    out: list[str] = []
    for i, word in enumerate(words):
        if 0 < i < len(words) - 1 and word == "一" and words[i - 1] == words[i + 1]:
            if i - 1 < len(out):
                out[i - 1] = out[i - 1] + "一" + out[i - 1]
            else:
                out.extend([word, words[i + 1]])
        elif i >= 2 and words[i - 1] == "一" and words[i - 2] == word:
            continue
        else:
            out.append(word)
    # A lone 一 joins the word after it.
    joined: list[str] = []
    for word in out:
        if joined and joined[-1] == "一":
            joined[-1] += word
        else:
            joined.append(word)
    return joined


def _attach_bu(words: list[str]) -> list[str]:
    # A lone 不 joins the word after it (a trailing 不 is lost, as upstream does).
    out: list[str] = []
    previous = ""
    for word in words:
        if word != "不":
            out.append(previous + word if previous == "不" else word)
        previous = word
    return out


def _attach_er(words: list[str]) -> list[str]:
    out: list[str] = []
    for i, word in enumerate(words):
        if i > 0 and word == "儿":
            out[-1] += word
        else:
            out.append(word)
    return out


def segment_words(text: str) -> list[str]:
    words = _jieba().lcut(text, cut_all=False)
    return _attach_er(_attach_bu(_attach_yi(words)))


# --- tone sandhi -------------------------------------------------------------------------------------------

def _retone(syllable: str, mark: str) -> str:
    return syllable[:-1] + mark if syllable[-1] in _TONE_MARKS else syllable + mark


def _er_sandhi(word: str, syl: list[str]) -> list[str]:
    if len(word) > 1 and word[-1] == "儿" and word not in _NOT_ER_WORDS:
        syl[-1] = _retone(syl[-1], "˙")
    return syl


def _bu_sandhi(word: str, syl: list[str]) -> list[str]:
    if set(word) == {"不"} or word == "不字":
        return syl
    if len(word) == 3 and word[1] == "不" and syl[1][:-1] == "ㄅㄨ":
        syl[1] = syl[1][:-1] + "˙"
        return syl
    for i, ch in enumerate(word):
        # 不 before a falling tone rises.
        if ch == "不" and i + 1 < len(syl) and i + 1 < len(word) and syl[i + 1] and syl[i + 1][-1] == "ˋ":
            syl[i] = syl[i][:-1] + "ˊ"
    return syl


def _yi_sandhi(word: str, syl: list[str]) -> list[str]:
    if "一" in word and any(ch.isnumeric() for ch in word if ch != "一"):
        # 一 inside a number.
        for i in range(len(word)):
            if i == 0 and word[0] == "一" and len(word) > 1 and word[1] not in _YI_DIGITS:
                if syl[0] and syl[1][-1] in ("ˋ", "˙"):
                    syl[0] = _retone(syl[0], "ˊ")
                else:
                    syl[0] = _retone(syl[0], "ˋ")
            elif word[i] == "一":
                syl[i] = _retone(syl[i], "")
        return syl
    if len(word) == 3 and word[1] == "一" and word[0] == word[-1]:
        syl[1] = _retone(syl[1], "˙")
    elif word.startswith("第一"):
        syl[1] = _retone(syl[1], "")
    elif word.startswith(("一月", "一日", "一号")):
        syl[0] = _retone(syl[0], "")
    else:
        for i, ch in enumerate(word):
            if ch == "一" and i + 1 < len(word):
                if len(syl) > i + 1 and syl[i + 1] and syl[i + 1][-1] == "ˋ":
                    syl[i] = _retone(syl[i], "ˊ")
                elif word[i + 1] not in _YI_PUNCT:
                    syl[i] = _retone(syl[i], "ˋ")
    return syl


def _third_tone_sandhi(word: str, syl: list[str]) -> list[str]:
    if len(word) == 3 and syl[0][-1] == "ˇ" and syl[1][-1] == "ˇ" and syl[-1][-1] == "ˇ":
        # Upstream appends (does not replace) the rising mark here; the stray arrow later becomes
        # a phone outside the vocabulary and is dropped, so the first two syllables keep tone 3.
        syl[0] = syl[0] + "ˊ"
        syl[1] = syl[1] + "ˊ"
    if len(word) == 2 and syl[0][-1] == "ˇ" and syl[-1][-1] == "ˇ":
        syl[0] = syl[0][:-1] + "ˊ"
    return syl


# --- pinyin -> bopomofo ----------------------------------------------------------------------------------------

def _bopomofo(pinyin: str) -> str:
    return pinyin_to_bopomofo()[pinyin[:-1]] + _TONE_MARK[pinyin[-1]]


def _word_bopomofo(word: str, text: str, offset: int) -> list[str]:
    """Bopomofo syllables of one jieba word starting at text[offset]."""
    lex, poly, table = lexicon(), polyphonic_chars(), pinyin_to_bopomofo()
    syllables: list[str] = []
    if word in lex and word not in poly:
        for py in lex[word].split(" "):
            if py[:-1] in table and py[-1] in _TONE_MARK:
                syllables.append(_bopomofo(py))
            else:
                # A reading the table lacks: pypinyin's bopomofo for the whole word (upstream quirk).
                from pypinyin import BOPOMOFO, lazy_pinyin

                syllables += lazy_pinyin(word, BOPOMOFO)
        return syllables
    for i, ch in enumerate(word):
        if ch in poly:
            from .polyphone import polyphone_predictor

            syllables.append(_bopomofo(polyphone_predictor().pinyin(text, offset + i)))
        elif ch in lex:
            syllables.append(_bopomofo(lex[ch]))
        else:
            syllables.append(ch)
    return syllables


def to_bopomofo(text: str) -> str:
    """Normalised Mandarin text -> 'ㄋㄧˇ|ㄏㄠˇ|,...' ('|' between syllables and punctuation)."""
    out = ""
    offset = 0
    for word in segment_words(text):
        syl = _word_bopomofo(word, text, offset)
        offset += len(word)
        syl = _third_tone_sandhi(word, syl)
        syl = _er_sandhi(word, _yi_sandhi(word, _bu_sandhi(word, syl)))
        if not re.search("[\u4e00-\u9fff]", word):
            out += "|" + word
            continue
        syl = [re.sub(r"([\u3105-\u3129])$", r"\1ˉ", s) for s in syl]
        if out:
            out += "|"
        out += "|".join(syl)
    return out


def bopomofo_to_phones(text: str) -> str:
    for old, new in _BOPOMOFO_TO_IPA:
        text = text.replace(old, new)
    # Syllabic consonant of zhi/chi/shi/ri and zi/ci/si: add ɹ after the initial.
    text = re.sub("([sɹ]`[⁼ʰ]?)([→↓↑ ]+|$)", r"\1ɹ\2", text)
    text = re.sub("([s][⁼ʰ]?)([→↓↑ ]+|$)", r"\1ɹ\2", text)
    text = re.sub(r"^\||[^\w\s_,\.\?!;:\'…\|→↓↑⁼ʰ`]", "", text)
    text = re.sub(r"([,\.\?!;:\'…])", r"|\1|", text)
    text = re.sub(r"\|+", "|", text)
    return text.rstrip("|")


def mandarin_to_phonemes(text: str) -> str:
    """One Mandarin run -> phoneme string 'n|i↓↑|x|ɑʊ↓↑'."""
    text = normalize_mandarin(read_numbers(text.strip()))
    return bopomofo_to_phones(to_bopomofo(text))
