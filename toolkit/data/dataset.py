"""Training dataset over cached features (written by `toolkit.bin.extract`), for any configured conditions.

Each song's feature file holds its latent [T, D], its frame rate and, per condition, what the condition's
conditioner cached (`conditions`), plus the stamps of the settings that made them (toolkit.data.extract).
An item is a window of the latent (toolkit.data.windows) drawn from a generator keyed on (seed, step,
position), so items do not depend on worker or process counts; each conditioner crops its cached value to
the window. The dataset takes the recipe's condition set (`conditions`), so a condition added in a config
reaches training with no code here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..keyed_random import keyed_generator
from ..protocols import Dataset
from ..registry import DATASETS
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
    """Windows of cached latents with every configured condition cropped to the window.

    Args:
        features_dir, split: the extract stage's folder and the split's manifest in it.
        conditions: the recipe's toolkit.conditions.ConditionSet (given by the trainer).
        max_frames: the window; window: "random" (a random crop) or "start" (from the first frame);
        require: conditions a song must have a value for (e.g. a transcript), others are left out;
        min_frames: shorter songs are left out; seed: base seed of the windows.
    """

    def __init__(self, features_dir: str, conditions: Any, split: str = "train", max_frames: int = 2048,
                 window: str = "random", require: Sequence[str] = (), min_frames: int = 1, seed: int = 0):
        self.features_dir = Path(features_dir)
        self.conditions, self.window = conditions, window
        songs = load_split_features(self.features_dir, split)
        stale = [s["id"] for s in songs if not set(conditions.specs) <= set(s.get("conditions", {}))]
        if stale:
            raise ValueError(f"{len(stale)} feature file(s) in {self.features_dir} lack condition(s) of this config "
                             f"(e.g. {stale[:3]}): rerun the extract stage with the same config")
        unknown = sorted(set(require) - set(conditions.specs))
        if unknown:
            raise ValueError(f"data.require names {unknown}, which are not conditions ({sorted(conditions.specs)})")
        self.songs = [s for s in songs if s["latent"].shape[0] >= min_frames
                      and all(_present(s["conditions"][name]) for name in require)]
        if not self.songs:
            raise ValueError(f"{self.features_dir / f'{split}.jsonl'} lists no usable song (at least {min_frames} "
                             f"frames{' and a value for ' + ', '.join(require) if require else ''})")
        self.max_frames, self.seed = int(max_frames), int(seed)
        self.lengths = [min(int(s["latent"].shape[0]), self.max_frames) for s in self.songs]

    def __len__(self) -> int:
        return len(self.songs)

    def __getitem__(self, key: int | Sequence[int]) -> dict[str, Any]:
        index, step, position = (key, 0, key) if isinstance(key, int) else key
        song = self.songs[index]
        latent, cached = song["latent"], song["conditions"]
        span = choose_window(latent.shape[0], self.max_frames, float(song["frame_rate"]),
                             keyed_generator(self.seed, "window", step, position), self.window)
        for name, conditioner in self.conditions.items():
            span = conditioner.limit_window(cached[name], span)
        return {
            "latent": latent[span.start:span.start + span.frames].float(),
            "conditions": {name: c.crop(cached[name], span) for name, c in self.conditions.items()},
            "sample_index": position,
        }

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Latents padded with zeros to the longest item; each condition batched by its conditioner."""
        lens = torch.tensor([item["latent"].shape[0] for item in items])
        latent = torch.zeros(len(items), int(lens.max()), items[0]["latent"].shape[1])
        for i, item in enumerate(items):
            latent[i, :lens[i]] = item["latent"]
        return {"latent": latent, "lens": lens,
                "conditions": self.conditions.collate([item["conditions"] for item in items]),
                "sample_index": torch.tensor([item["sample_index"] for item in items])}


def _present(value: Any) -> bool:
    if value is None:
        return False
    if torch.is_tensor(value):
        return value.numel() > 0
    return bool(value) if isinstance(value, (list, tuple, dict, str)) else True
