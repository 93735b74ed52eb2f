"""Feature extraction: per song, the codec latent, the prepared style and the lyric lines as tokens.

One `.pt` file per song in the features folder, written atomically, so a rerun skips finished songs
and several processes can share the work by shards (`--shard i/n` takes every n-th song from i).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch

from ..audio import AudioError, load_audio
from ..io import atomic_torch_save, atomic_write_text
from .dataset import feature_path, song_id

log = logging.getLogger(__name__)


@dataclass
class ExtractReport:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def shard_of(entries: list[dict[str, Any]], shard: int, num_shards: int) -> list[dict[str, Any]]:
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard {shard} is outside 0..{num_shards - 1}")
    return entries[shard::num_shards]


def song_lyrics_value(entry: dict[str, Any]) -> Any:
    """The manifest's lyrics (LRC or plain text; the conditioner tells them apart), or None."""
    text = entry.get("lyrics") or ""
    return text if text.strip() else None


def style_value(entry: dict[str, Any], source: str) -> Any:
    """What the style conditioner embeds for a song: its audio, or its tags as a text prompt."""
    if source == "audio":
        return {"audio": entry["path"]}
    if source == "tags":
        return {"text": ", ".join(entry.get("tags") or [])}
    raise ValueError(f"style source must be 'audio' or 'tags', got '{source}'")


def extract_song(entry: dict[str, Any], codec, lyrics, style, style_source: str = "audio") -> dict[str, Any]:
    wav, _ = load_audio(entry["path"], codec.sample_rate, codec.channels)
    with torch.inference_mode():
        latent = codec.encode(wav[None])[0].float()
    value = song_lyrics_value(entry)
    lines = [] if value is None else lyrics.token_lines(value, latent.shape[0])
    return {
        "id": song_id(entry),
        "latent": latent.contiguous(),
        "frame_rate": float(codec.frame_rate),
        "line_times": [float(t) for t, _ in lines],
        "line_tokens": [list(map(int, tokens)) for _, tokens in lines],
        "style": style.prepare(style_value(entry, style_source)).float(),
        "tags": entry.get("tags") or {},
    }


def extract_all(entries: Iterable[dict[str, Any]], out_dir: str | Path, codec, lyrics, style,
                style_source: str = "audio", progress: bool = True) -> ExtractReport:
    out_dir = Path(out_dir)
    report = ExtractReport()
    entries = list(entries)
    if progress:
        from tqdm import tqdm

        entries = tqdm(entries, desc="extract", unit="song")
    for entry in entries:
        name, target = song_id(entry), feature_path(out_dir, entry)
        if target.is_file():
            report.skipped.append(name)
            continue
        try:
            atomic_torch_save(extract_song(entry, codec, lyrics, style, style_source), target)
        except (AudioError, ValueError) as err:  # a bad song is reported, the rest go on
            report.failed[name] = str(err)
            log.warning("extract: %s failed: %s", name, err)
            continue
        report.done.append(name)
    return report


def write_split_manifest(out_dir: str | Path, split: str, entries: list[dict[str, Any]]) -> Path:
    """`<features>/<split>.jsonl`: the split's manifest entries whose features exist (the dataset reads it)."""
    ready = [e for e in entries if feature_path(out_dir, e).is_file()]
    text = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in ready)
    return atomic_write_text(Path(out_dir) / f"{split}.jsonl", text)
