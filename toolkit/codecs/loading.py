"""Reading weight files and loading them strictly, with a readable report when they do not fit."""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path
from typing import Mapping

import torch
from torch import nn


class WeightsMismatchError(RuntimeError):
    """A state dict does not fit the module it is loaded into."""


def mismatch_report(module: nn.Module, state: Mapping[str, torch.Tensor], limit: int = 12) -> str:
    """'' when `state` fits `module` exactly, else a list of missing / unexpected / wrong-shape keys."""
    expected = module.state_dict(keep_vars=True)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
             for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    lines = []
    for title, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if items:
            shown = "\n    ".join(items[:limit])
            more = f"\n    ... and {len(items) - limit} more" if len(items) > limit else ""
            lines.append(f"  {title} ({len(items)}):\n    {shown}{more}")
    return "\n".join(lines)


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], what: str = "weights",
                hint: str = "") -> nn.Module:
    """load_state_dict(strict=True), but a mismatch raises one error listing every kind of problem."""
    report = mismatch_report(module, state)
    if report:
        raise WeightsMismatchError(
            f"{what} do not fit {type(module).__name__}:\n{report}" + (f"\n{hint}" if hint else ""))
    module.load_state_dict(dict(state), strict=True)
    return module


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
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file  # a core dependency, imported only when needed

        return dict(load_file(str(path), device="cpu"))
    if is_torchscript_file(path):
        return {k: v.detach().clone() for k, v in jit_load(path).state_dict().items()}
    obj = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path} does not hold a state dict of tensors (top-level keys: {list(obj)[:8]})")
    return dict(obj)
