"""A learned style from genre / mood / instrument tags ("pop, piano, happy").

The vocabulary is upstream DiffRhythm's suggested prompt keywords (toolkit/assets/music_prompt_keywords.json:
20 genres, 19 moods, 20 instruments) plus `extra_tags` from the config. Tags match case-insensitively,
with '-', '_' and runs of spaces treated alike ("hip hop" == "Hip-Hop"). `prepare` gives a multi-hot
vector over the vocabulary (fixed size, so batches stack without padding); `forward` averages the
embeddings of the present tags, projects them to 512 dims and L2-normalises. A prompt with no known
tag gives the zero vector, which is the null (dropped) style.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..registry import CONDITIONERS
from .style_common import STYLE_DIM, StyleConditioner, StyleError, asset_path, parse_style_value, unit

KEYWORDS_ASSET = "music_prompt_keywords.json"
SEPARATORS = re.compile(r"[,，、;\n]")


def normalize_tag(tag: str) -> str:
    """Case-, hyphen- and spacing-insensitive form of a tag; trailing sentence punctuation is dropped."""
    tag = tag.casefold().strip().strip(".!?。！？ ")
    return re.sub(r"[\s_\-]+", " ", tag).strip()


def load_vocabulary(path: str | os.PathLike | None = None) -> list[str]:
    """Tags of a keyword file: a JSON list, or a JSON object of category -> list (file order)."""
    path = Path(path) if path is not None else asset_path(KEYWORDS_ASSET)
    if not path.is_file():
        raise StyleError(f"tag vocabulary file not found: {path}")
    data = json.loads(path.read_text(encoding="utf-8"))
    groups = data.values() if isinstance(data, dict) else [data]
    tags = [tag for group in groups for tag in group]
    if not all(isinstance(t, str) for t in tags):
        raise StyleError(f"{path}: a tag vocabulary is a list of strings or an object of lists of strings")
    return tags


def split_prompt(prompt: str) -> list[str]:
    return [t for t in (normalize_tag(p) for p in SEPARATORS.split(prompt)) if t]


@CONDITIONERS.register("style_tags")
class TagStyle(StyleConditioner):
    """Learned style from genre/mood/instrument tags of a comma-separated prompt (mean tag embedding -> 512-d).

    vocabulary: keyword JSON (default: the shipped upstream keywords); extra_tags: more tags, appended in
    order. strict: an unknown tag is an error (default: warned about and ignored). embed_dim: width of the
    tag embeddings before the projection to 512. negative: a tag prompt for the guidance negative, or None (zeros).
    """

    default_source = "tags"  # a manifest's genres and moods

    def __init__(self, *, vocabulary: str | os.PathLike | None = None, extra_tags: Sequence[str] = (),
                 strict: bool = False, embed_dim: int = 256, negative: Any = None):
        super().__init__(negative=negative)
        self.tags: list[str] = []
        self.index: dict[str, int] = {}
        extras = SEPARATORS.split(extra_tags) if isinstance(extra_tags, str) else list(extra_tags)
        for tag in [*load_vocabulary(vocabulary), *extras]:
            key = normalize_tag(str(tag))
            if key and key not in self.index:
                self.index[key] = len(self.tags)
                self.tags.append(str(tag).strip())
        if not self.tags:
            raise StyleError("style_tags: the tag vocabulary is empty")
        self.strict = bool(strict)
        self.embedding = nn.Parameter(torch.randn(len(self.tags), embed_dim) * embed_dim ** -0.5)
        self.proj = nn.Linear(embed_dim, STYLE_DIM)

    @property
    def vocab_size(self) -> int:
        return len(self.tags)

    def prepare(self, value: Any, *, num_frames: int | None = None) -> torch.Tensor:
        """A tag prompt ("pop, piano, happy.") or a list of tags -> float32 multi-hot [vocab_size]."""
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            tags = [t for t in (normalize_tag(v) for v in value) if t]
        else:
            kind, payload = parse_style_value(value)
            if kind != "text":
                raise StyleError(f"style_tags embeds tag prompts such as 'pop, piano, happy', not {kind} "
                                 f"({payload!r:.60}); use conditions.style.conditioner=style_features or "
                                 "conditions.style.conditioner=style_mulan for audio")
            tags = split_prompt(payload)
        known = [self.index[t] for t in tags if t in self.index]
        unknown = [t for t in tags if t not in self.index]
        if unknown:
            message = (f"style_tags: unknown tag(s) {', '.join(repr(t) for t in unknown)}; known tags: "
                       f"{', '.join(self.tags)}. Add tags with conditions.style.conditioner.extra_tags=[...]")
            if self.strict:
                raise StyleError(message)
            warnings.warn(message + " (ignored)", stacklevel=2)
        hot = torch.zeros(self.vocab_size)
        hot[known] = 1.0
        return hot

    def tags_of(self, prepared: torch.Tensor) -> list[str]:
        """The vocabulary tags present in one prepared vector."""
        return [self.tags[i] for i in prepared.nonzero().flatten().tolist()]

    def forward(self, prepared: torch.Tensor) -> torch.Tensor:
        """[B, vocab_size] multi-hot -> [B, 512] unit vectors (zeros where no tag is present)."""
        if prepared.dim() != 2 or prepared.shape[-1] != self.vocab_size:
            raise StyleError(f"style_tags.forward takes [B, {self.vocab_size}] multi-hot tags, not "
                             f"{list(prepared.shape)}; were they prepared with another vocabulary?")
        hot = prepared.to(self.embedding.dtype)
        count = hot.sum(-1, keepdim=True)
        mean = hot @ self.embedding / count.clamp(min=1.0)
        return unit(self.proj(mean)) * (count > 0)

    def extra_repr(self) -> str:
        return f"vocab_size={self.vocab_size}, strict={self.strict}"
