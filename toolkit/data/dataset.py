"""Training dataset over cached song features (written by `toolkit.bin.extract`).

Each song's feature file holds its latent [T, D], its lyric lines as (seconds, token ids) and its
prepared style. An item is a random window (toolkit.data.windows) drawn from a generator keyed on
(seed, step, position), so items do not depend on worker or process counts; lyric tokens are placed
on the window's frames by the lyrics conditioner's placement rule.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import torch

from ..protocols import Dataset
from ..conditioners.lyrics_lrc import place_tokens
from ..registry import DATASETS
from ..keyed_random import keyed_generator
from .windows import choose_window

FEATURE_SUFFIX = ".pt"


def song_id(entry: dict[str, Any]) -> str:
    return str(entry.get("id") or Path(entry["path"]).stem)


def read_manifest(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest not found: {path} (run the data stage first)")
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def feature_path(features_dir: str | Path, entry: dict[str, Any]) -> Path:
    return Path(features_dir) / f"{song_id(entry)}{FEATURE_SUFFIX}"


def load_split_features(features_dir: str | Path, split: str, what: str = "song") -> list[dict[str, Any]]:
    """The feature files (written by toolkit.bin.extract) of every entry of FEATURES/<split>.jsonl, in order."""
    features_dir = Path(features_dir)
    manifest = features_dir / f"{split}.jsonl"
    entries = read_manifest(manifest)
    missing = [song_id(e) for e in entries if not feature_path(features_dir, e).is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} {what}(s) of {manifest} have no features in {features_dir} "
                                f"(e.g. {missing[:3]}): run the extract stage first")
    return [torch.load(feature_path(features_dir, e), map_location="cpu", weights_only=True) for e in entries]


@DATASETS.register("latent_windows")
class LatentWindows(Dataset):
    """Random windows of cached song latents with lyrics shifted into the window and the start time."""

    def __init__(self, features_dir: str, split: str = "train", max_frames: int = 2048, seed: int = 0,
                 end_at_last_line: bool = False, min_frames: int = 1):
        self.features_dir = Path(features_dir)
        self.songs = load_split_features(self.features_dir, split)
        if not self.songs:
            raise ValueError(f"{self.features_dir / f'{split}.jsonl'} lists no songs")
        self.max_frames, self.seed = int(max_frames), int(seed)
        self.end_at_last_line, self.min_frames = end_at_last_line, int(min_frames)
        self.lengths = [min(int(s["latent"].shape[0]), self.max_frames) for s in self.songs]

    def __len__(self) -> int:
        return len(self.songs)

    def __getitem__(self, key: int | Sequence[int]) -> dict[str, Any]:
        index, step, position = (key, 0, key) if isinstance(key, int) else key
        song = self.songs[index]
        latent = song["latent"]
        lines = [(float(t), list(tok)) for t, tok in zip(song["line_times"], song["line_tokens"])]
        window = choose_window(latent.shape[0], self.max_frames, lines, float(song["frame_rate"]),
                               keyed_generator(self.seed, "window", step, position),
                               self.end_at_last_line, self.min_frames)
        tokens = place_tokens(window.lines, window.frames, frame_rate=float(song["frame_rate"]))
        return {
            "latent": latent[window.start:window.start + window.frames].float(),
            "lyrics": tokens,
            "style": song["style"],
            "start_time": torch.tensor(window.start_time, dtype=torch.float32),
            "sample_index": position,
        }

    @staticmethod
    def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
        """Pad latents and lyrics to the longest item of the batch (padding frames are zero / filler)."""
        lens = torch.tensor([item["latent"].shape[0] for item in items])
        frames, dim = int(lens.max()), items[0]["latent"].shape[1]
        latent = torch.zeros(len(items), frames, dim)
        lyrics = torch.zeros(len(items), frames, dtype=torch.long)
        for i, item in enumerate(items):
            latent[i, :lens[i]] = item["latent"]
            lyrics[i, :lens[i]] = item["lyrics"][:lens[i]]
        return {
            "latent": latent, "lyrics": lyrics, "lens": lens,
            "style": torch.stack([item["style"] for item in items]),
            "start_time": torch.stack([item["start_time"] for item in items]),
            "sample_index": torch.tensor([item["sample_index"] for item in items]),
        }
