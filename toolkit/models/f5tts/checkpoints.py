"""Load published F5-TTS checkpoints into `F5DiT`, strictly, with a clear report on a vocabulary mismatch.

Formats (tests/fixtures/reference/f5tts_keys.txt):
  * `model_1250000.safetensors` (F5TTS_v1_Base): the EMA weights, keys `ema_model.transformer.*` plus the
    EMA bookkeeping `ema_model.initted` / `ema_model.step`;
  * upstream trainer `.pt`: {"ema_model_state_dict": same keys, "model_state_dict": `transformer.*` online
    weights, optimizer, step, ...}; upstream inference uses the EMA weights, and so do we by default;
  * our own trainer checkpoints (`transformer.*` under model_state_dict / ema_model_state_dict).
Files are read by toolkit.checkpoints (EMA selection, prefixes); `mel_spec.*` entries (none are persistent
upstream) would be dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from ...backbones.dit_f5 import F5DiT
from ...checkpoints import read_weights, strip_prefix
from ...weights import WeightsMismatchError, load_strict

RELEASED_CONFIG = dict(dim=1024, depth=22, heads=16, dim_head=64, ff_mult=2, dropout=0.1, latent_dim=100,
                       text_num_embeds=2545, text_dim=512, conv_layers=4, text_mask_padding=True)
TEXT_TABLE = "text_embed.text_embed.weight"


class VocabMismatchError(WeightsMismatchError):
    """The checkpoint's text-embedding table does not fit the model's vocabulary."""


def released_config(**overrides) -> dict:
    """Constructor kwargs of F5TTS_v1_Base (337 M parameters), with overrides (e.g. text_num_embeds)."""
    return {**RELEASED_CONFIG, **overrides}


def build_released_backbone(device: str | torch.device | None = None, **overrides) -> F5DiT:
    """The released-size DiT with fresh weights (`device="meta"` for a weightless shape check)."""
    with torch.device(device or "cpu"):
        return F5DiT(**released_config(**overrides))


def read_f5_state_dict(path: str | Path, use_ema: bool | None = None) -> dict[str, torch.Tensor]:
    """A published / trainer / safetensors file -> backbone state dict; None takes the EMA weights when the
    file has them (what upstream inference uses), else the online ones."""
    state = strip_prefix(read_weights(path, use_ema=use_ema, prefer_ema=True), "transformer.")
    return {k: v for k, v in state.items() if not k.startswith("mel_spec.")}


def table_vocab_size(state: Mapping[str, torch.Tensor]) -> int | None:
    table = state.get(TEXT_TABLE)
    return None if table is None else int(table.shape[0]) - 1


def check_vocab(model: F5DiT, state: Mapping[str, torch.Tensor], source: str) -> None:
    theirs, ours = table_vocab_size(state), model.text_num_embeds
    if theirs is not None and theirs != ours:
        raise VocabMismatchError(
            f"{source}: vocabulary size mismatch: the checkpoint's text embedding has {theirs} tokens "
            f"(table [{theirs + 1}, {state[TEXT_TABLE].shape[1]}]) but the model was built for {ours}. "
            "Use the vocab.txt the checkpoint was trained with (text.vocab=...), or resize the table for a new "
            "vocabulary with toolkit.models.f5tts.vocab.resize_state_dict / resize_text_embedding "
            "(docs/f5tts.md, 'New vocabulary').",
            [], [], [(TEXT_TABLE, tuple(state[TEXT_TABLE].shape), (ours + 1, model.text_dim))])


def load_f5_checkpoint_into(model: F5DiT, path: str | Path, *, use_ema: bool | None = None) -> F5DiT:
    """Load a checkpoint strictly into an existing backbone (fp16 files are cast to the model's dtype)."""
    state = read_f5_state_dict(path, use_ema=use_ema)
    check_vocab(model, state, str(path))
    load_strict(model, state, source=str(path))
    return model


def load_f5_checkpoint(path: str | Path, *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
                       use_ema: bool | None = None, **overrides) -> F5DiT:
    """Build the released-size DiT (text_num_embeds from the file unless given) and load the file strictly."""
    state = read_f5_state_dict(path, use_ema=use_ema)
    if "text_num_embeds" not in overrides and table_vocab_size(state) is not None:
        overrides["text_num_embeds"] = table_vocab_size(state)
    with torch.device("meta"):
        model = F5DiT(**released_config(**overrides))
    model = model.to_empty(device=device).to(dtype)
    model.reset_buffers()
    check_vocab(model, state, str(path))
    load_strict(model, state, source=str(path))
    return model.eval()
