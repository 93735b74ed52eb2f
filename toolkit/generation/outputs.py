"""What a generation front end writes per output: the audio (atomically), its tags, and a JSON run manifest.

Audio: as the recipe levelled it (never clipped), float32 WAV, 24-bit FLAC, Vorbis OGG or MP3
(toolkit.audio.save_audio scales floats to PCM correctly). Tags (mutagen): title, plain lyrics, synchronised
lyrics (ID3 SYLT in WAV / MP3; an LRC text in the Vorbis comment SYNCEDLYRICS for FLAC / OGG, which has no
synchronised frame) holding only the lines actually sung, and the text fields the recipe and the run give
(PROMPT, SEED, STEPS, GUIDANCE, CHECKPOINT_SHA256, ...: ID3 TXXX frames / Vorbis comments). Tags travel with
the audio, so user files appear in them by name and content hash, never by path; the manifest `song.json`
beside `song.wav` (which stays on the user's machine) records the full request.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..audio import save_audio
from ..io import atomic_path, atomic_write_text

FORMATS = ("wav", "flac", "mp3", "ogg")


def plain_lyrics(lrc: str | None) -> str | None:
    """The lyric text of an LRC, one line per timed line (instrumental gaps left out)."""
    if not lrc:
        return None
    from ..lrc import parse_lrc

    lines = [line.text for line in parse_lrc(lrc).lines if line.text]
    return "\n".join(lines) or None


def synced_lines(lrc: str | None) -> list[tuple[str, int]]:
    """[(text, milliseconds)] for an ID3 SYLT frame."""
    if not lrc:
        return []
    from ..lrc import parse_lrc

    return [(line.text, int(round(line.time * 1000))) for line in parse_lrc(lrc).lines if line.text]


def write_song_tags(path: Path, *, title: str | None, lrc: str | None, extra: Mapping[str, str]) -> None:
    """Title and lyrics through toolkit.data.tags, then SYLT and the generation fields."""
    import mutagen
    from mutagen.id3 import ID3, SYLT, TXXX

    from ..data.tags import write_tags

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
    wav = wav.detach().float().cpu()
    peak = float(wav.abs().max()) if wav.numel() else 0.0
    if peak > 1.0:
        raise ValueError(f"{path.name}: the audio peaks at {peak:.3f} (full scale 1) and would clip; a recipe sets its "
                         "output level before writing (toolkit.audio.fit_level)")
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
