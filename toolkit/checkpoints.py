"""Reading checkpoint files, once for the whole toolkit: ours and the published ones, EMA or online weights.

Files: `.safetensors` (a bare state dict), or anything `torch.load(weights_only=True)` reads, memory-mapped
when it is a zip archive (every torch.save since 1.6), so a 2 GB file is not copied into RAM before the
model takes its tensors. What a file may hold:
  * ours (toolkit.training): {"format_version": 1, "model_state_dict", "ema_model_state_dict"?, "config", ...};
  * upstream trainers (DiffRhythm, F5-TTS): {"model_state_dict", "ema_model_state_dict", "optimizer", ...};
  * published inference files: {"model_state_dict": ...} (DiffRhythm cfm_model.pt) or a bare state dict
    (safetensors; F5-TTS's holds the EMA copy under `ema_model.*`).
EMA copies (ema-pytorch) prefix every key with `ema_model.` and add the bookkeeping entries `initted` and
`step`; `strip_ema` removes both. Strict loading and its mismatch report are toolkit.weights'.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

FORMAT_VERSION = 1
EMA_PREFIX = "ema_model."
EMA_BOOKKEEPING = ("initted", "step")
MODEL_KEY, EMA_KEY = "model_state_dict", "ema_model_state_dict"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used (unreadable, wrong format or version, no weights)."""


def read_file(path: str | Path, mmap: bool = True) -> Any:
    """The raw contents of a checkpoint file; with `mmap`, tensors stay memory-mapped where the format allows
    (for reading weights; a resumed trainer, which updates its optimizer state in place, reads into memory)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and zipfile.is_zipfile(path))
    except Exception as err:  # a truncated file, another format, or pickled objects weights_only refuses
        raise CheckpointError(f"cannot read {path}: {err}") from err


def check_ours(raw: Any, path: str | Path) -> dict[str, Any]:
    """`raw` as one of our trainer checkpoints; another format or version is refused with what to do."""
    if not isinstance(raw, dict) or "format_version" not in raw:
        keys = sorted(raw)[:8] if isinstance(raw, dict) else type(raw).__name__
        raise CheckpointError(
            f"{path} is not a toolkit checkpoint (no 'format_version'; it holds {keys}). To start training from "
            f"published weights use train.init_from={path}; to generate with them use --pretrained DIR")
    version = raw["format_version"]
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format_version {version}; this toolkit reads version {FORMAT_VERSION}. Use the "
            f"toolkit version that wrote it ({raw.get('toolkit_version', 'unknown')}), or export its weights there "
            "and pass them as train.init_from")
    return raw


def load_checkpoint(path: str | Path, mmap: bool = False) -> dict[str, Any]:
    """One of our trainer checkpoints, read into memory. `mmap=True` maps it instead (pages read when used),
    which is only safe while nobody rewrites the file in place (the trainer replaces files atomically, but a
    copy over a hard-linked last.pt would change a mapped payload under its reader)."""
    return check_ours(read_file(path, mmap), path)


def strip_ema(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """ema-pytorch layout -> plain keys; the bookkeeping entries, bare or prefixed, are dropped."""
    out = {}
    for key, value in state.items():
        plain = key[len(EMA_PREFIX):] if key.startswith(EMA_PREFIX) else key
        if plain not in EMA_BOOKKEEPING:
            out[plain] = value
    return out


def strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Keys without `prefix` where they have it (a CFM wrapper's `transformer.`, say)."""
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state.items()}


def select_weights(raw: Any, use_ema: bool | None, source: str | Path, prefer_ema: bool = False) -> dict[str, Any]:
    """The state dict a file holds, EMA copy stripped of its prefix and bookkeeping.

    use_ema: True / False pick the EMA or the online weights and fail when absent; None picks by
    `prefer_ema` among what is there (upstream DiffRhythm inference reads the online weights of
    cfm_model.pt; F5-TTS inference the EMA copy).
    """
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"{source} holds a {type(raw).__name__}, not a state dict")
    has_model, has_ema = MODEL_KEY in raw, EMA_KEY in raw
    if has_model or has_ema:
        if use_ema is None:
            use_ema = has_ema if (prefer_ema or not has_model) else False
        key = EMA_KEY if use_ema else MODEL_KEY
        if key not in raw:
            other = "--ema no" if use_ema else "the EMA weights"
            raise CheckpointError(f"{source} has no '{key}' (it holds {sorted(raw)[:8]}); use {other}")
        return strip_ema(raw[key]) if use_ema else dict(raw[key])
    if not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise CheckpointError(f"{source} holds no model weights (keys: {sorted(raw)[:10]})")
    is_ema = any(k.startswith(EMA_PREFIX) for k in raw)
    if use_ema and not is_ema:
        raise CheckpointError(f"{source} is a bare state dict without EMA weights")
    return strip_ema(raw) if is_ema else dict(raw)


def read_weights(path: str | Path, use_ema: bool | None = None, prefer_ema: bool = False,
                 mmap: bool = True) -> dict[str, Any]:
    """`select_weights` of a file; our checkpoints of another format version are refused."""
    raw = read_file(path, mmap)
    if isinstance(raw, Mapping) and "format_version" in raw:
        check_ours(raw, path)
    return select_weights(raw, use_ema, path, prefer_ema)
