"""Load published DiffRhythm DiT checkpoints into `DiffRhythmDiT`, strictly.

Formats (docs/reference/diffrhythm.md §10):
  * `cfm_model.pt` as published on the hub: {"model_state_dict": fp16 tensors, keys "transformer.*"};
  * upstream trainer checkpoints: {"ema_model_state_dict": keys "ema_model.transformer.*" plus the EMA
    bookkeeping entries `initted` / `step`, "model_state_dict": the online weights, ...};
  * `.safetensors`: the state dict itself (any of the prefixes above).
Every file is read with `torch.load(weights_only=True)` (or safetensors), and loading is strict: a
mismatch raises `toolkit.weights.WeightsMismatchError` listing missing, unexpected and wrong-shape keys.

Variants: `base` (v1.0 / v1.2 base, 2048 frames), `full` (v1.2 full, 6144 frames, with the song-duration
embedding) and `full-v1.0` (6144 frames, no duration embedding). A v1.2 full checkpoint is recognised by
its `duration_time_embed.*` keys; base and v1.0 full have identical keys, so which of the two a file is
must come from the caller (`variant=`), never from a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from ...backbones.dit_diffrhythm import DiffRhythmDiT
from ...checkpoints import read_weights, strip_prefix
from ...weights import load_strict, mismatch

RELEASED_CONFIG = dict(dim=2048, depth=16, ff_mult=4, text_dim=512, conv_layers=4, latent_dim=64,
                       text_num_embeds=363, style_dim=512, num_heads=32)
VARIANTS = {
    "base": dict(max_frames=2048, duration_embed=False),
    "full": dict(max_frames=6144, duration_embed=True),        # DiffRhythm v1.2 full
    "full-v1.0": dict(max_frames=6144, duration_embed=False),  # DiffRhythm v1.0 full (no duration MLP)
}
DURATION_PREFIX = "duration_time_embed."


def released_config(variant: str = "base") -> dict:
    """Constructor kwargs of the released 1.1 B-parameter DiT (config/diffrhythm-1b.json) for a variant."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown DiffRhythm variant '{variant}'; known: {', '.join(VARIANTS)}")
    return {**RELEASED_CONFIG, **VARIANTS[variant]}


def build_released_backbone(variant: str = "base", device: str | torch.device | None = None,
                            dtype: torch.dtype | None = None) -> DiffRhythmDiT:
    """The released-size DiT with fresh weights (use `device="meta"` for a weightless shape check)."""
    with torch.device(device or "cpu"):
        model = DiffRhythmDiT(**released_config(variant))
    return model if dtype is None else model.to(dtype)


def read_state_dict(path: str | Path, use_ema: bool | None = None) -> dict[str, torch.Tensor]:
    """A checkpoint file -> the DiT's state dict (`transformer.` stripped; see toolkit.checkpoints).

    use_ema: None -> the online weights when the file has them (what upstream inference loads, and all a
    published `cfm_model.pt` holds), else the EMA copy; True / False pick one and fail if it is absent.
    """
    return strip_prefix(read_weights(path, use_ema=use_ema), "transformer.")


def detect_variant(state: Mapping[str, torch.Tensor], variant: str | None = None) -> str:
    """The variant a state dict belongs to; `variant` is the caller's word for base vs v1.0 full.

    Duration-embedding keys -> "full" (v1.2). Without them the file is "base" or "full-v1.0" (identical
    keys): the caller must say which, and a caller's "full" for such a file is an error.
    """
    has_duration = any(k.startswith(DURATION_PREFIX) for k in state)
    if has_duration:
        if variant not in (None, "full"):
            raise ValueError(f"the checkpoint has duration-embedding keys (DiffRhythm v1.2 full), "
                             f"but variant '{variant}' was requested; use variant='full'")
        return "full"
    if variant is None:
        raise ValueError("this checkpoint has no duration embedding, so it is either 'base' (2048 frames, 95 s) "
                         "or 'full-v1.0' (6144 frames, 285 s); their keys are identical: pass variant= explicitly")
    if variant == "full":
        raise ValueError("variant 'full' (v1.2) needs duration-embedding keys, which this checkpoint lacks; "
                         "for DiffRhythm v1.0 full use variant='full-v1.0', for a base model variant='base'")
    if variant not in VARIANTS:
        raise ValueError(f"unknown DiffRhythm variant '{variant}'; known: {', '.join(VARIANTS)}")
    return variant


def load_state_dict_strict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str = "state dict",
                           assign: bool = False) -> None:
    """toolkit.weights.load_strict, with a hint when the song-duration keys are what differs."""
    missing, unexpected, _ = mismatch(model, state)
    hint = ""
    if any(k.startswith(DURATION_PREFIX) for k in missing + unexpected):
        hint = "duration_time_embed.* exists only in DiffRhythm v1.2 full (variant 'full')"
    load_strict(model, state, source=source, hint=hint, assign=assign)


def load_diffrhythm_checkpoint(path: str | Path, variant: str | None = None, *, dtype: torch.dtype = torch.float32,
                               device: str | torch.device = "cpu", use_ema: bool | None = None,
                               config: Mapping | None = None) -> DiffRhythmDiT:
    """Build the DiT for a published checkpoint and load it strictly.

    variant: "base" / "full" / "full-v1.0" (see the module docstring); may be omitted only for a v1.2
    full file. config: constructor kwargs overriding the released size (e.g. a small fine-tune).
    dtype: weights are cast to it (fp32 is the right choice on CPUs; the files are fp16).
    The model is built on the meta device and materialised once, so peak memory is one copy of the
    weights in `dtype` (plus the memory-mapped file).
    """
    state = read_state_dict(path, use_ema=use_ema)
    variant = detect_variant(state, variant)
    kwargs = {**released_config(variant), **(config or {})}
    with torch.device("meta"):
        model = DiffRhythmDiT(**kwargs)
    model = model.to_empty(device=device).to(dtype)
    model.reset_buffers()
    # load_state_dict copies tensor by tensor, casting fp16 -> dtype on the way (no second full copy).
    load_state_dict_strict(model, state, source=str(path))
    return model.eval()


def load_checkpoint_into(model: DiffRhythmDiT, path: str | Path, *, use_ema: bool | None = None) -> DiffRhythmDiT:
    """Load a published / trainer / safetensors checkpoint strictly into an existing backbone (e.g. the
    one a recipe built); fp16 files are cast to the model's dtype. Returns the model."""
    state = read_state_dict(path, use_ema=use_ema)
    load_state_dict_strict(model, state, source=str(path))
    return model
