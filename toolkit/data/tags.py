"""Song tags (title, artist, genre, mood, lyrics) read and written with mutagen, for every container
the toolkit handles: FLAC / Ogg (Vorbis comments), MP3 / WAV / AIFF (ID3), M4A (MP4 atoms).

Lyrics come from ID3 SYLT (synchronised, turned into LRC text) or USLT, Vorbis LYRICS /
UNSYNCEDLYRICS, or MP4 ©lyr. Genre and mood strings holding several values ("chorale, baroque")
are split on , ; / and NUL.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

LRC_LINE = re.compile(r"^\s*\[(\d+):(\d{1,2}(?:[.:]\d+)?)\]", re.MULTILINE)
_SPLIT = re.compile(r"[,;/\x00]")
MP4_MOOD = "----:com.apple.iTunes:MOOD"


class TagError(ValueError):
    """A file whose tags cannot be read or written."""


@dataclass
class SongTags:
    title: str | None = None
    artist: str | None = None
    genres: list[str] = field(default_factory=list)
    moods: list[str] = field(default_factory=list)
    lyrics: str | None = None

    @property
    def lyrics_kind(self) -> str:
        return lyrics_kind(self.lyrics)


def lyrics_kind(text: str | None) -> str:
    """'lrc' when the text has [mm:ss.xx] time stamps, 'plain' when it is other text, else 'none'."""
    if not text or not text.strip():
        return "none"
    return "lrc" if LRC_LINE.search(text) else "plain"


def split_values(values: Iterable[str] | str | None) -> list[str]:
    """'chorale, baroque' / ['a;b', 'c'] -> ['chorale', 'baroque'] / ['a', 'b', 'c'] (order kept, no repeats)."""
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    out: list[str] = []
    for value in values:
        for part in _SPLIT.split(str(value)):
            part = part.strip()
            if part and part not in out:
                out.append(part)
    return out


def format_lrc_time(seconds: float) -> str:
    centis = int(round(max(seconds, 0.0) * 100))
    return f"[{centis // 6000:02d}:{(centis % 6000) / 100:05.2f}]"


def _first(values) -> str | None:
    for value in values or []:
        text = str(value).strip()
        if text:
            return text
    return None


def _sylt_to_lrc(frame) -> str | None:
    """An ID3 SYLT frame (time format 2 = milliseconds) -> LRC text; None for MPEG-frame timing."""
    if getattr(frame, "format", 2) != 2:
        return None
    lines = [f"{format_lrc_time(ms / 1000.0)}{text.strip()}" for text, ms in frame.text if text.strip()]
    return "\n".join(lines) or None


def read_tags(path: str | Path) -> SongTags:
    """Tags of an audio file; an untagged file gives empty SongTags. Raises TagError if unreadable."""
    import mutagen
    from mutagen.id3 import ID3
    from mutagen.mp4 import MP4

    try:
        audio = mutagen.File(str(path))
    except Exception as err:
        raise TagError(f"{path}: cannot read tags ({err})") from err
    if audio is None:
        raise TagError(f"{path}: not an audio file mutagen knows")
    tags = audio.tags
    if tags is None:
        return SongTags()
    if isinstance(tags, ID3):
        lyrics = None
        for frame in tags.getall("SYLT"):
            lyrics = _sylt_to_lrc(frame)
            if lyrics:
                break
        if not lyrics:
            lyrics = _first(f.text for f in tags.getall("USLT"))
        return SongTags(
            title=_first(tags["TIT2"].text) if "TIT2" in tags else None,
            artist=_first(tags["TPE1"].text) if "TPE1" in tags else None,
            genres=split_values(tags["TCON"].genres) if "TCON" in tags else [],
            moods=split_values(tags["TMOO"].text) if "TMOO" in tags else [],
            lyrics=lyrics)
    if isinstance(audio, MP4):
        mood = tags.get(MP4_MOOD)
        return SongTags(
            title=_first(tags.get("\xa9nam")), artist=_first(tags.get("\xa9ART")),
            genres=split_values(tags.get("\xa9gen")),
            moods=split_values([bytes(m).decode("utf-8", "replace") for m in mood] if mood else None),
            lyrics=_first(tags.get("\xa9lyr")))
    # Vorbis comments (FLAC, Ogg Vorbis / Opus / FLAC): case-insensitive keys, lists of values.
    try:
        get = lambda key: tags.get(key) or []  # noqa: E731
        return SongTags(title=_first(get("title")), artist=_first(get("artist")),
                        genres=split_values(get("genre")), moods=split_values(get("mood")),
                        lyrics=_first(get("lyrics")) or _first(get("unsyncedlyrics")))
    except Exception as err:  # an exotic tag type
        raise TagError(f"{path}: unsupported tag format {type(tags).__name__}") from err


def write_tags(path: str | Path, *, title: str | None = None, artist: str | None = None,
               genres: Iterable[str] | str | None = None, moods: Iterable[str] | str | None = None,
               lyrics: str | None = None, comment: str | None = None) -> None:
    """Set the given tags in place (others are kept). Genres and moods are written as one
    comma-separated value, which every player shows; `read_tags` splits them again."""
    import mutagen
    from mutagen.flac import FLAC
    from mutagen.id3 import COMM, ID3, TCON, TIT2, TMOO, TPE1, USLT
    from mutagen.mp4 import MP4, MP4FreeForm
    from mutagen.oggvorbis import OggVorbis

    path = Path(path)
    genre = ", ".join(split_values(genres)) or None
    mood = ", ".join(split_values(moods)) or None
    try:
        audio = mutagen.File(str(path))
    except Exception as err:
        raise TagError(f"{path}: cannot open for tagging ({err})") from err
    if audio is None:
        raise TagError(f"{path}: not an audio file mutagen knows")
    if audio.tags is None:
        audio.add_tags()
    tags = audio.tags
    if isinstance(tags, ID3):  # MP3, and WAV / AIFF with an ID3 chunk
        for frame, value in ((TIT2, title), (TPE1, artist), (TCON, genre), (TMOO, mood)):
            if value is not None:
                tags.setall(frame.__name__, [frame(encoding=3, text=[value])])
        if lyrics is not None:
            tags.setall("USLT", [USLT(encoding=3, lang="und", desc="", text=lyrics)])
        if comment is not None:
            tags.setall("COMM", [COMM(encoding=3, lang="und", desc="", text=[comment])])
    elif isinstance(audio, MP4):
        for key, value in (("\xa9nam", title), ("\xa9ART", artist), ("\xa9gen", genre), ("\xa9lyr", lyrics),
                           ("\xa9cmt", comment)):
            if value is not None:
                tags[key] = [value]
        if mood is not None:
            tags[MP4_MOOD] = [MP4FreeForm(mood.encode("utf-8"))]
    elif isinstance(audio, (FLAC, OggVorbis)) or hasattr(tags, "keys"):
        for key, value in (("TITLE", title), ("ARTIST", artist), ("GENRE", genre), ("MOOD", mood),
                           ("LYRICS", lyrics), ("COMMENT", comment)):
            if value is not None:
                tags[key] = [value]
    else:
        raise TagError(f"{path}: cannot write tags of type {type(tags).__name__}")
    try:
        audio.save()
    except Exception as err:
        raise TagError(f"{path}: cannot save tags ({err})") from err
