"""Feature extraction: per song, the codec latent and what each configured condition caches, stamped.

One `.pt` file per song in the features folder, written atomically, so a rerun does only what is missing
and several processes can share the work by shards (`--shard i/n` takes every n-th song from i):

    {"format": 2, "id", "latent" [T, D], "frame_rate", "conditions": {name: cached value},
     "stamps": {"latent": <hash of the codec settings>, name: <hash of that condition's settings>}}

A stamp is a short hash of the settings a part was made with (a condition's also covers the codec, whose
frame grid its values live on). A rerun compares them: only the parts whose settings changed are made again
(a new style conditioner re-embeds the styles and keeps the latents), and the report says which and why.
`stamps.json` in the folder records the stamps of the last run (the comparison harness keys its feature
cache on the same stamps).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..audio import AudioError, load_audio
from ..conditions import ConditionSet, Span
from ..conditions.spec import field_value, parse_conditions
from ..config import to_plain
from ..io import atomic_torch_save, atomic_write_text
from ..registry import CODECS
from .dataset import feature_path, song_id

log = logging.getLogger(__name__)
FEATURE_FORMAT = 2
LATENT = "latent"


def stamp(value: Any) -> str:
    """A short hash of plain config data (its JSON with sorted keys)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def feature_stamps(codec_node: Any, conditions_node: Any) -> dict[str, str]:
    """{"latent": codec stamp, <condition>: its conditioner + source + the codec} for a config's sections."""
    codec = stamp(to_plain(codec_node))
    stamps = {LATENT: codec}
    for spec in parse_conditions(conditions_node):
        stamps[spec.name] = stamp({"conditioner": to_plain(spec.conditioner), "source": spec.source, "codec": codec})
    return stamps


@dataclass
class ExtractReport:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    remade: dict[str, int] = field(default_factory=dict)  # part -> songs whose part was made again

    def summary(self) -> dict[str, Any]:
        return {"done": len(self.done), "skipped (already extracted)": len(self.skipped),
                "remade (settings changed)": self.remade, "failed": self.failed}


def shard_of(entries: list[dict[str, Any]], shard: int, num_shards: int) -> list[dict[str, Any]]:
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard {shard} is outside 0..{num_shards - 1}")
    return entries[shard::num_shards]


class Extractor:
    """The codec and the condition set of a config, and the stamps of their settings."""

    def __init__(self, codec_node: Any, conditions_node: Any, max_frames: int):
        self.codec = CODECS.build(codec_node)
        self.codec.requires_grad_(False).eval()
        self.conditions = ConditionSet.for_codec(conditions_node, self.codec, max_frames)
        self.max_frames = int(max_frames)
        self.stamps = feature_stamps(codec_node, conditions_node)

    def stale_parts(self, existing: Mapping[str, Any] | None) -> list[str]:
        """Parts of a song's feature file to make (again): all for a missing or older file."""
        if existing is None or existing.get("format") != FEATURE_FORMAT:
            return list(self.stamps)
        old = existing.get("stamps", {})
        return [part for part, value in self.stamps.items() if old.get(part) != value]

    def extract_song(self, entry: dict[str, Any], existing: Mapping[str, Any] | None, parts: list[str]
                     ) -> dict[str, Any]:
        if LATENT in parts or existing is None:
            wav, _ = load_audio(entry["path"], self.codec.sample_rate, self.codec.channels)
            with torch.inference_mode():
                latent = self.codec.encode(wav[None])[0].float().contiguous()
        else:
            latent = existing["latent"]
        span = Span.whole(latent.shape[0], self.codec.frame_rate, self.max_frames)
        cached = dict(existing.get("conditions", {})) if existing is not None else {}
        for name, conditioner in self.conditions.items():
            if name in parts or name not in cached:
                cached[name] = conditioner.extract(field_value(entry, self.conditions.specs[name].source), span)
        return {"format": FEATURE_FORMAT, "id": song_id(entry), "latent": latent,
                "frame_rate": float(self.codec.frame_rate), "conditions": cached, "stamps": dict(self.stamps)}


def _read_existing(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a broken file is made again
        return None


def extract_all(entries: Iterable[dict[str, Any]], out_dir: str | Path, extractor: Extractor,
                progress: bool = True) -> ExtractReport:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = ExtractReport()
    entries = list(entries)
    if progress:
        from tqdm import tqdm

        entries = tqdm(entries, desc="extract", unit="song")
    for entry in entries:
        name, target = song_id(entry), feature_path(out_dir, entry)
        existing = _read_existing(target)
        parts = extractor.stale_parts(existing)
        if not parts:
            report.skipped.append(name)
            continue
        if existing is not None:
            for part in parts:
                report.remade[part] = report.remade.get(part, 0) + 1
        try:
            atomic_torch_save(extractor.extract_song(entry, existing, parts), target)
        except (AudioError, ValueError) as err:  # a bad song is reported, the rest go on
            report.failed[name] = str(err)
            log.warning("extract: %s failed: %s", name, err)
            continue
        report.done.append(name)
    for part, count in report.remade.items():
        what = "the codec" if part == LATENT else f"condition '{part}'"
        log.warning("extract: %s made again for %d song(s): the settings of %s changed since they were extracted",
                    part, count, what)
    atomic_write_text(out_dir / "stamps.json", json.dumps(extractor.stamps, indent=1) + "\n")
    return report


def write_split_manifest(out_dir: str | Path, split: str, entries: list[dict[str, Any]]) -> Path:
    """`<features>/<split>.jsonl`: the split's manifest entries whose features exist (the dataset reads it)."""
    ready = [e for e in entries if feature_path(out_dir, e).is_file()]
    text = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in ready)
    return atomic_write_text(Path(out_dir) / f"{split}.jsonl", text)
