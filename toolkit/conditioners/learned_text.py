"""A text prompt as learned word tokens: a small trainable text encoder that needs no weights or vocabulary file.

    words = lower-cased runs of letters and digits ("Baroque chorale, organ, 84 BPM" -> baroque chorale organ 84 bpm)
    ids   = 1 + sha1(word) mod buckets, the first `max_words`, padded with 0                    (prepare)
    h     = embedding(ids) + position(i)  -> `layers` transformer encoder layers (padding masked)
    out   = proj(h) * mask, mask = ids != 0                                      [B, max_words, output_dim]

Words are hashed rather than looked up, so any prompt is valid and the table's size is fixed by the config;
two words share a row only when their hashes collide (rare for the few hundred words of a tag vocabulary in
4096 buckets). It stands in for a pretrained text encoder (T5 in Stable Audio Open) when no weights exist: it
learns from the training prompts only, so a word never seen in training means nothing to it.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import torch
from torch import nn

from ..protocols import OUT_TOKENS, Conditioner
from ..registry import CONDITIONERS

WORD = re.compile(r"\w+", re.UNICODE)


def words_of(text: str) -> list[str]:
    return [w.casefold() for w in WORD.findall(text)]


def word_id(word: str, buckets: int) -> int:
    """1 + a stable hash of the word (Python's own hash() changes from run to run)."""
    return 1 + int.from_bytes(hashlib.sha1(word.encode("utf-8")).digest()[:8], "big") % buckets


@CONDITIONERS.register("learned_text")
class LearnedTextConditioner(Conditioner):
    """Text -> learned word tokens + mask (hashed words, learned embeddings, optional transformer layers).

    Args:
        output_dim: token width (the backbone's cross-attention width).
        buckets: rows of the word table (words are hashed into them).
        max_words: tokens per prompt (longer prompts are cut, with a warning-free truncation).
        embed_dim: width inside the encoder; layers, heads: transformer encoder layers over the words (0: none).
        key: the request / manifest field (default "prompt").
        word_dropout: in training, each word is left out with this probability (torch's generator, which the
            trainer seeds and checkpoints), so the model learns what each word means rather than each whole
            prompt: a combination of words never seen together in training still means something.
    prepare(text) -> int64 ids [max_words] (0 = padding); forward(ids [B, N]) -> (tokens [B, N, output_dim],
    mask [B, N] bool); null(B) -> zero tokens and an all-False mask (the null embedding of the cross-attention).
    """

    output_kind = OUT_TOKENS
    default_source = "prompt"

    def __init__(self, output_dim: int = 256, *, buckets: int = 4096, max_words: int = 32, embed_dim: int = 128,
                 layers: int = 0, heads: int = 4, key: str = "prompt", word_dropout: float = 0.0):
        super().__init__()
        if buckets < 1 or max_words < 1:
            raise ValueError(f"learned_text: buckets and max_words must be >= 1 (got {buckets}, {max_words})")
        if not 0 <= word_dropout < 1:
            raise ValueError(f"learned_text: word_dropout must be in [0, 1), got {word_dropout}")
        self.output_dim, self.buckets, self.max_words, self.key = int(output_dim), int(buckets), int(max_words), key
        self.word_dropout = float(word_dropout)
        self.embedding = nn.Embedding(self.buckets + 1, embed_dim, padding_idx=0)
        self.position = nn.Parameter(torch.randn(self.max_words, embed_dim) * 0.02)
        self.encoder = nn.ModuleList(
            nn.TransformerEncoderLayer(embed_dim, heads, 2 * embed_dim, dropout=0.0, batch_first=True, norm_first=True)
            for _ in range(layers))
        self.proj = nn.Linear(embed_dim, self.output_dim)

    def prepare(self, value: Any, *, num_frames: int | None = None) -> torch.Tensor:
        if isinstance(value, (list, tuple)) and len(value) == 1:
            value = value[0]
        if not isinstance(value, str):
            raise ValueError(f"{self.key}: expected a text prompt, got {type(value).__name__} ({value!r:.60})")
        ids = [word_id(w, self.buckets) for w in words_of(value)][: self.max_words]
        out = torch.zeros(self.max_words, dtype=torch.long)
        out[: len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out

    def forward(self, prepared: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if prepared.dim() != 2 or prepared.shape[1] > self.max_words:
            raise ValueError(f"{self.key}: forward takes word ids [B, N <= {self.max_words}], not "
                             f"{list(prepared.shape)}; were they prepared with another max_words? (rerun extract)")
        ids = prepared.to(device=self.proj.weight.device, dtype=torch.long)
        if self.training and self.word_dropout > 0:
            kept = torch.rand(ids.shape, device=ids.device) >= self.word_dropout
            ids = ids * kept  # a left-out word becomes padding
        mask = ids != 0
        h = self.embedding(ids) + self.position[: ids.shape[1]]
        for layer in self.encoder:
            # an all-padding prompt would give NaN in attention: let it attend to itself, it is zeroed below
            h = layer(h, src_key_padding_mask=~mask & mask.any(1, keepdim=True))
        tokens = self.proj(h) * mask[..., None].to(h.dtype)
        return tokens, mask

    def null(self, batch_size: int, num_frames: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        weight = self.proj.weight
        return (torch.zeros(batch_size, self.max_words, self.output_dim, dtype=weight.dtype, device=weight.device),
                torch.zeros(batch_size, self.max_words, dtype=torch.bool, device=weight.device))

    def extra_repr(self) -> str:
        return (f"key={self.key}, buckets={self.buckets}, max_words={self.max_words}, "
                f"layers={len(self.encoder)}, output_dim={self.output_dim}, word_dropout={self.word_dropout}")
