"""Resize the text embedding of an F5 DiT for a new vocabulary (fine-tuning on a new language or symbols).

The table has one row per token plus row 0 (the filler). Rows are matched by TOKEN, not by index: a token
of the new vocabulary that the old one has keeps its learned row wherever it now sits; new tokens get
rows drawn from N(mean, std) of the old rows (seeded), so they start as plausible, distinct embeddings.

    old = read_vocab("F5TTS_v1_Base/vocab.txt"); new = read_vocab("my_vocab.txt")
    state = resize_state_dict(read_f5_state_dict("model_1250000.safetensors"), old, new)   # a file's weights
    resize_text_embedding(recipe.transformer, old, new)                                      # a built model
Then train with `text.vocab=my_vocab.txt` (backbone.text_num_embeds follows from it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .checkpoints import TEXT_TABLE


def resize_table(table: torch.Tensor, old_vocab: Sequence[str], new_vocab: Sequence[str],
                 seed: int = 0) -> torch.Tensor:
    """[len(old)+1, d] -> [len(new)+1, d]: row 0 kept, known tokens keep their rows, new ones drawn."""
    if table.shape[0] != len(old_vocab) + 1:
        raise ValueError(f"the text table has {table.shape[0]} rows but the old vocabulary has {len(old_vocab)} "
                         f"tokens (+1 filler row = {len(old_vocab) + 1}): pass the vocab.txt the weights were "
                         "trained with")
    old_index = {tok: i + 1 for i, tok in enumerate(old_vocab)}
    rows = table[1:].float()
    gen = torch.Generator().manual_seed(seed)
    fresh = torch.randn(len(new_vocab) + 1, table.shape[1], generator=gen) * rows.std() + rows.mean()
    out = fresh.to(table.dtype)
    out[0] = table[0]
    for j, tok in enumerate(new_vocab, start=1):
        if tok in old_index:
            out[j] = table[old_index[tok]]
    return out


def resize_state_dict(state: Mapping[str, torch.Tensor], old_vocab: Sequence[str], new_vocab: Sequence[str],
                      seed: int = 0) -> dict[str, torch.Tensor]:
    """A backbone state dict (keys without `transformer.`) with its text table resized."""
    if TEXT_TABLE not in state:
        raise KeyError(f"the state dict has no {TEXT_TABLE} (is it an F5 DiT's, with prefixes stripped?)")
    return {**state, TEXT_TABLE: resize_table(state[TEXT_TABLE], old_vocab, new_vocab, seed)}


def resize_text_embedding(backbone: nn.Module, old_vocab: Sequence[str], new_vocab: Sequence[str],
                          seed: int = 0) -> nn.Module:
    """Resize a built F5DiT's text embedding in place (its text_num_embeds follows)."""
    emb = backbone.text_embed.text_embed
    table = resize_table(emb.weight.detach(), old_vocab, new_vocab, seed)
    new = nn.Embedding(table.shape[0], table.shape[1], device=emb.weight.device, dtype=emb.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(table)
    backbone.text_embed.text_embed = new
    backbone.text_num_embeds = len(new_vocab)
    return backbone
