"""Training dataset of whole utterances (F5-TTS trains on utterances, not random windows).

Reads the feature files of `toolkit.bin.extract` (latent [T, D] and the transcript as token ids, cached
as one line). Items longer than `max_frames` are cut (their transcript then says more than the audio:
keep utterances short, as upstream's 30 s limit does). Keys are (index, step, position) like every
dataset of the shared trainer; nothing here is random.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from ...data.dataset import load_split_features
from ...protocols import Dataset
from ...registry import DATASETS


@DATASETS.register("speech_utterances")
class SpeechUtterances(Dataset):
    """Whole utterances: cached latent + transcript ids; collate pads latents with 0 and ids with -1."""

    def __init__(self, features_dir: str, split: str = "train", max_frames: int = 4096, seed: int = 0,
                 min_frames: int = 1):
        self.features_dir = Path(features_dir)
        items = load_split_features(self.features_dir, split, what="utterance")
        self.items = [it for it in items if it["line_tokens"] and it["latent"].shape[0] >= min_frames]
        if not self.items:
            raise ValueError(f"{self.features_dir / f'{split}.jsonl'} lists no utterance with a transcript")
        self.max_frames = int(max_frames)
        self.lengths = [min(int(it["latent"].shape[0]), self.max_frames) for it in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: int | Sequence[int]) -> dict[str, Any]:
        index, _step, position = (key, 0, key) if isinstance(key, int) else key
        item = self.items[index]
        tokens = [t for line in item["line_tokens"] for t in line]
        return {"latent": item["latent"][: self.max_frames].float(), "text": torch.tensor(tokens, dtype=torch.long),
                "sample_index": position}

    @staticmethod
    def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
        lens = torch.tensor([it["latent"].shape[0] for it in items])
        latent = torch.zeros(len(items), int(lens.max()), items[0]["latent"].shape[1])
        n = max(it["text"].shape[0] for it in items)
        text = torch.full((len(items), n), -1, dtype=torch.long)
        for i, it in enumerate(items):
            latent[i, :lens[i]] = it["latent"]
            text[i, :it["text"].shape[0]] = it["text"]
        return {"latent": latent, "lens": lens, "text": text,
                "sample_index": torch.tensor([it["sample_index"] for it in items])}
