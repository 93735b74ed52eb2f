"""Trainer checkpoints: what they hold, atomic writing, keeping the last K, loading and weight reading.

Format (format_version 1), every value loadable with `torch.load(weights_only=True)`:
  format_version        1
  model_state_dict      the recipe's state_dict (what is trained; frozen codecs are not in it)
  ema_model_state_dict  ema-pytorch layout: "ema_model.<key>" entries plus "initted" and "step"
                        (absent when EMA is off)
  optimizer_state_dict, scheduler_state_dict   AdamW and the warm-up/decay LambdaLR
  scaler_state_dict     fp16 GradScaler (GPU fp16 runs only)
  step                  optimizer updates done
  config                the fully resolved config as a plain dict
  rng_state             list, one entry per process: {"torch", "python", "numpy"[, "cuda"]}
  data_state            the batch plan's state (toolkit.training.batching.BatchPlan.state)
  toolkit_version       the toolkit version that wrote it
Files: <exp>/checkpoints/step_00001000.pt every `save_every` steps (the last `keep_last` kept) and
`last.pt`, atomically replaced, which resume reads.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from ..io import atomic_path, atomic_torch_save

FORMAT_VERSION = 1
LAST = "last.pt"
STEP_FILE = re.compile(r"^step_(\d+)\.pt$")
EMA_PREFIX = "ema_model."
EMA_BOOKKEEPING = ("initted", "step")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used (wrong format, version or contents)."""


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read one of our trainer checkpoints; reject other formats and versions with a clear message."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # a truncated file, or pickled objects weights_only refuses
        raise CheckpointError(f"cannot read checkpoint {path}: {err}") from err
    if not isinstance(ckpt, dict) or "format_version" not in ckpt:
        keys = sorted(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(
            f"{path} is not a toolkit trainer checkpoint (no 'format_version'; it holds {keys}). "
            f"To start training from published weights use train.init_from={path}")
    version = ckpt["format_version"]
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format_version {version}; this toolkit reads version {FORMAT_VERSION}. "
            f"Use the toolkit version that wrote it ({ckpt.get('toolkit_version', 'unknown')}), or export its "
            f"weights there and pass them as train.init_from")
    return ckpt


def strip_ema(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """ema-pytorch layout -> plain model keys (drops `initted` / `step`)."""
    out = {}
    for key, value in state.items():
        plain = key[len(EMA_PREFIX):] if key.startswith(EMA_PREFIX) else key
        if plain in EMA_BOOKKEEPING:  # `initted` / `step`, bare or as `ema_model.*` (F5-TTS .safetensors)
            continue
        out[plain] = value
    return out


def _read_any(path: Path) -> Any:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"cannot read weights from {path}: {err}") from err


def read_model_weights(path: str | Path, use_ema: bool = True) -> dict[str, torch.Tensor]:
    """A plain state dict from any supported file.

    Ours or an upstream trainer checkpoint: the EMA weights (prefix stripped) when `use_ema` and present,
    else "model_state_dict". A published `cfm_model.pt` ({"model_state_dict": fp16}): that dict.
    A `.safetensors` file or a bare state dict: itself. Tensors keep their stored dtype.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    raw = _read_any(path)
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"{path} holds a {type(raw).__name__}, not a state dict")
    if "format_version" in raw and raw["format_version"] != FORMAT_VERSION:
        load_checkpoint(path)  # raises the version error
    if use_ema and "ema_model_state_dict" in raw:
        return strip_ema(raw["ema_model_state_dict"])
    if "model_state_dict" in raw:
        return dict(raw["model_state_dict"])
    if "ema_model_state_dict" in raw:
        return strip_ema(raw["ema_model_state_dict"])
    if all(isinstance(v, torch.Tensor) for v in raw.values()):
        return strip_ema(raw) if any(k.startswith(EMA_PREFIX) for k in raw) else dict(raw)
    raise CheckpointError(f"{path} has no model weights (keys: {sorted(raw)[:10]})")


def _link_or_copy(src: Path, dst: Path) -> None:
    """Atomically make `dst` hold the bytes of `src` (a hard link where the file system allows)."""
    with atomic_path(dst) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            import shutil

            shutil.copyfile(src, tmp)


class CheckpointManager:
    """Writes step_XXXXXXXX.pt atomically, points last.pt at it, keeps the last `keep_last` step files."""

    def __init__(self, directory: str | Path, keep_last: int = 3):
        self.directory = Path(directory)
        self.keep_last = int(keep_last)

    @property
    def last(self) -> Path:
        return self.directory / LAST

    def step_files(self) -> list[tuple[int, Path]]:
        if not self.directory.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.directory.iterdir() if (m := STEP_FILE.match(p.name))]
        return sorted(found)

    def remove_stale_temporaries(self) -> None:
        """Drop half-written files a killed run left behind (atomic writes use `.<name>.*.tmp*`)."""
        if self.directory.is_dir():
            for p in self.directory.iterdir():
                if p.name.startswith(".") and ".tmp" in p.name:
                    p.unlink(missing_ok=True)

    def save(self, payload: dict[str, Any]) -> Path:
        path = self.directory / f"step_{int(payload['step']):08d}.pt"
        atomic_torch_save(payload, path)
        _link_or_copy(path, self.last)
        if self.keep_last > 0:
            for _, old in self.step_files()[:-self.keep_last]:
                old.unlink(missing_ok=True)
        return path
