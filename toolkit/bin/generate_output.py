"""What toolkit-generate writes per song: the audio (atomically), its tags, and a JSON run manifest.

Audio: peak-normalised to PEAK_DB dBFS (never clipped), float32 WAV, 24-bit FLAC, Vorbis OGG or MP3
(toolkit.audio.save_audio scales floats to PCM correctly). Tags (mutagen): title, plain lyrics, synchronised
lyrics (ID3 SYLT in WAV / MP3; an LRC text in the Vorbis comment SYNCEDLYRICS for FLAC / OGG, which has no
synchronised frame), and prompt, seed, steps, guidance and checkpoint hash (ID3 TXXX frames / Vorbis comments
PROMPT, SEED, STEPS, GUIDANCE, CHECKPOINT_SHA256). The manifest `song.json` beside `song.wav` reproduces it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

import torch

from toolkit.audio import peak_normalize, save_audio
from toolkit.io import atomic_path, atomic_write_text

PEAK_DB = -1.0
FORMATS = ("wav", "flac", "mp3", "ogg")


def sha256_prefix(path: str | Path, length: int = 16) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()[:length]


def plain_lyrics(lrc: str | None) -> str | None:
    """The lyric text of an LRC, one line per timed line (instrumental gaps left out)."""
    if not lrc:
        return None
    from toolkit.conditioners.lrc import parse_lrc

    lines = [line.text for line in parse_lrc(lrc).lines if line.text]
    return "\n".join(lines) or None


def synced_lines(lrc: str | None) -> list[tuple[str, int]]:
    """[(text, milliseconds)] for an ID3 SYLT frame."""
    if not lrc:
        return []
    from toolkit.conditioners.lrc import parse_lrc

    return [(line.text, int(round(line.time * 1000))) for line in parse_lrc(lrc).lines if line.text]


def write_song_tags(path: Path, *, title: str | None, lrc: str | None, extra: Mapping[str, str]) -> None:
    """Title and lyrics through toolkit.data.tags, then SYLT and the generation fields."""
    import mutagen
    from mutagen.id3 import ID3, SYLT, TXXX

    from toolkit.data.tags import write_tags

    write_tags(path, title=title, lyrics=plain_lyrics(lrc))
    audio = mutagen.File(str(path))
    tags = audio.tags
    if isinstance(tags, ID3):
        sylt = synced_lines(lrc)
        if sylt:
            # format 2 = milliseconds, type 1 = lyrics
            tags.setall("SYLT", [SYLT(encoding=3, lang="und", format=2, type=1, desc="", text=sylt)])
        for key, value in extra.items():
            tags.add(TXXX(encoding=3, desc=key, text=[value]))
    else:  # Vorbis comments (FLAC, OGG)
        if lrc:
            tags["SYNCEDLYRICS"] = [lrc]
        for key, value in extra.items():
            tags[key] = [value]
    audio.save()


def save_song(path: Path, wav: torch.Tensor, sample_rate: int, fmt: str, *, title: str | None,
              lrc: str | None, tag_fields: Mapping[str, str], manifest: Mapping[str, Any]) -> list[Path]:
    """Write `path` (audio + tags, atomically) and `path.with_suffix('.json')`; returns both paths."""
    wav = peak_normalize(wav.detach().float().cpu(), PEAK_DB)
    with atomic_path(path) as tmp:
        save_audio(tmp, wav, sample_rate, format=fmt)
        write_song_tags(tmp, title=title, lrc=lrc, extra=tag_fields)
    written = [path]
    try:
        json_path = path.with_suffix(".json")
        atomic_write_text(json_path, json.dumps(manifest, indent=2, ensure_ascii=False, default=_jsonable) + "\n")
        written.append(json_path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return written


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(f"cannot write a {type(value).__name__} into a manifest")
