"""Reading codec weight files (safetensors, TorchScript archives, torch.save); strict loading is toolkit.weights."""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import torch

from ..checkpoints import read_file
from ..weights import WeightsMismatchError, load_strict  # noqa: F401  (the codecs' loader)


def is_torchscript_file(path: str | Path) -> bool:
    """TorchScript archives hold a `code/` folder (plain torch.save archives do not)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return any("/code/" in n or n.startswith("code/") for n in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def jit_load(path: str | Path) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in favour of torch.export
        return torch.jit.load(str(path), map_location="cpu")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors, a TorchScript file (its parameters) or a torch.save file.

    torch.save files are read with weights_only=True; a checkpoint dict is unwrapped from
    `state_dict` / `model_state_dict` / `model` when the tensors sit under one of those.
    """
    path = Path(path)
    if path.is_file() and is_torchscript_file(path):
        return {k: v.detach().clone() for k, v in jit_load(path).state_dict().items()}
    obj = read_file(path)
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path} does not hold a state dict of tensors (top-level keys: {list(obj)[:8]})")
    return dict(obj)
