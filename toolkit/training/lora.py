"""LoRA training through peft, with the base model's state-dict keys left as they are.

`apply_lora` wraps the targeted nn.Linear layers in peft's LoRA layers (adapter "default") and freezes every
other parameter. peft keeps a wrapped layer's weight at `<layer>.base_layer.weight` and its adapter at
`<layer>.lora_A.default.weight`; hooks on each wrapped layer show its state dict as `<layer>.weight` / `.bias`
(the base model's keys: published weights load into a LoRA model strictly, checkpoints keep their key names)
plus `<layer>.lora_A.weight` / `<layer>.lora_B.weight` (peft's file names without `base_model.model.`), and take
that layout back on load. The EMA, resume, DDP and the strict loaders all see that one layout.

A LoRA run writes its adapter as a peft folder (toolkit.adapters) beside every checkpoint: EXP/adapter/.
Why peft and not a module of our own: docs/training.md (measured: same speed, memory and outputs).
"""

from __future__ import annotations

import copy
import fnmatch
import functools
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..adapters import Adapter, inject, new_config, write_adapter
from ..checkpoints import strip_ema
from ..io import sha256_files

# Attention and MLP projections of the Llama-style DiT blocks (DiffRhythm) and F5's DiT blocks.
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
                   "to_q", "to_k", "to_v", "to_out.0", "ff.ff.0.0", "ff.ff.2")
ADAPTER = "default"       # peft's name of the adapter a run trains
ADAPTER_DIR = "adapter"   # EXP/adapter: the run's adapter as a peft folder
_LORA_KEY = re.compile(r"^(.+)\.lora_([AB])\.weight$")
_PEFT_ADAPTER_KEY = re.compile(rf"^(lora_[AB])\.{ADAPTER}\.(.+)$")


def _matches(name: str, targets: Iterable[str]) -> bool:
    """A target matches a module whose full name ends with it (`q_proj`, `mlp.up_proj`) or fits a glob."""
    return any(name == t or name.endswith("." + t) or fnmatch.fnmatchcase(name, t) for t in targets)


def resolve_targets(model: nn.Module, targets: Iterable[str]) -> list[str]:
    """Full names of the nn.Linear layers that `train.lora.targets` selects; an error if none."""
    targets = list(targets)
    names = [n for n, m in model.named_modules() if type(m) is nn.Linear and _matches(n, targets)]
    if not names:
        linear = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        raise ValueError(f"train.lora.targets {targets} match no linear layer; linear layers are: "
                         f"{', '.join(linear[:30])}{' ...' if len(linear) > 30 else ''}")
    return names


def apply_lora(model: nn.Module, rank: int, alpha: float | None = None, targets: Iterable[str] = DEFAULT_TARGETS,
               dropout: float = 0.0) -> list[str]:
    """Wrap the targeted linear layers in peft LoRA layers (in place); returns their names.

    Afterwards only the adapters require grad. B starts at zero (peft's default), so the model's outputs
    are unchanged until training moves it.
    """
    if int(rank) < 1:
        raise ValueError(f"LoRA rank must be at least 1, got {rank}")
    names = resolve_targets(model, targets)
    inject(model, names, int(rank), float(rank if alpha is None else alpha), ADAPTER, dropout=dropout)
    for name in names:
        layer = model.get_submodule(name)
        layer.register_state_dict_post_hook(_published_keys)
        layer.register_load_state_dict_pre_hook(_peft_keys)
    return names


def _published_keys(module: nn.Module, state_dict: dict, prefix: str, local_metadata: Any) -> None:
    """peft's keys of one wrapped layer -> `weight`, `bias`, `lora_A.weight`, `lora_B.weight` (in place, in order)."""
    own = [(key, state_dict.pop(key)) for key in [k for k in state_dict if k.startswith(prefix)]]
    for key, value in own:
        rest = key[len(prefix):]
        if rest.startswith("base_layer."):
            rest = rest[len("base_layer."):]
        elif match := _PEFT_ADAPTER_KEY.match(rest):
            rest = f"{match.group(1)}.{match.group(2)}"
        state_dict[prefix + rest] = value


def _peft_keys(module: nn.Module, state_dict: dict, prefix: str, *args: Any) -> None:
    """The inverse of `_published_keys`, before the layer loads (the layout peft's layers expect)."""
    for key in [k for k in state_dict if k.startswith(prefix)]:
        rest = key[len(prefix):]
        if rest in ("weight", "bias"):
            state_dict[f"{prefix}base_layer.{rest}"] = state_dict.pop(key)
        elif rest in ("lora_A.weight", "lora_B.weight"):
            part = rest.split(".")[0]
            state_dict[f"{prefix}{part}.{ADAPTER}.weight"] = state_dict.pop(key)


def has_lora(state: Mapping[str, torch.Tensor]) -> bool:
    return any(_LORA_KEY.match(k) for k in state)


def split_lora_state(state: Mapping[str, torch.Tensor]
                     ) -> tuple[dict[str, torch.Tensor], dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """A LoRA run's state dict -> (the base model's state dict, {module: (A, B)})."""
    base, parts = {}, {}
    for key, value in state.items():
        match = _LORA_KEY.match(key)
        if match:
            parts.setdefault(match.group(1), {})[match.group(2)] = value
        else:
            base[key] = value
    weights = {}
    for module, ab in sorted(parts.items()):
        if set(ab) != {"A", "B"}:
            lacking = "lora_B" if "A" in ab else "lora_A"
            raise ValueError(f"LoRA layer {module} is incomplete in the state dict: no {lacking}")
        weights[module] = (ab["A"], ab["B"])
    return base, weights


# ------------------------------------------------------------------------------------------------ the run's adapter

@functools.lru_cache(maxsize=8)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    """A base file's sha256, hashed once per (path, size, mtime): every checkpoint of a run records it."""
    return sha256_files([path])


def made_for(config: Mapping[str, Any], *, step: int | None = None, weights: str | None = None) -> dict[str, Any]:
    """What an adapter of a run records about the model it fits: recipe, backbone node, base weights."""
    from .. import __version__

    train = config.get("train") or {}
    base = None
    if train.get("init_from"):
        path = Path(train["init_from"])
        stat = path.stat() if path.is_file() else None
        base = {"file": "/".join(path.parts[-2:]),
                "sha256": _file_sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns) if stat else None,
                "use_ema": bool(train.get("init_use_ema", True))}
    return {"format": 1, "toolkit_version": __version__, "recipe": config.get("recipe"),
            "backbone": config.get("backbone"), "base_weights": base, "step": step, "weights": weights}


def run_adapter(state: Mapping[str, torch.Tensor], config: Mapping[str, Any], *, step: int | None = None,
                weights: str | None = None) -> Adapter:
    """The adapter of a LoRA run's state dict, with the run's rank / alpha / dropout (from its resolved config)."""
    from .config import TrainConfig

    lora = TrainConfig.from_config(config.get("train") or {}).lora
    _, tensors = split_lora_state(state)
    if not tensors:
        raise ValueError("the state dict has no LoRA adapters (train.lora.rank was 0): its weights are plain already")
    ranks = sorted({int(a.shape[0]) for a, _ in tensors.values()})
    if ranks != [lora.rank]:
        raise ValueError(f"the adapters have rank {ranks} but the config says train.lora.rank={lora.rank}")
    alpha = float(lora.rank if lora.alpha is None else lora.alpha)
    return Adapter(config=new_config(lora.rank, alpha, list(tensors), lora.dropout), weights=tensors,
                   made_for=made_for(config, step=step, weights=weights))


def checkpoint_adapter(payload: Mapping[str, Any], use_ema: bool = True) -> Adapter:
    """The adapter of a trainer checkpoint (its EMA weights when `use_ema` and present)."""
    ema = use_ema and "ema_model_state_dict" in payload
    state = strip_ema(payload["ema_model_state_dict"]) if ema else payload["model_state_dict"]
    return run_adapter(state, payload.get("config") or {}, step=payload.get("step"),
                       weights="ema" if ema else "online")


def write_checkpoint_adapter(payload: Mapping[str, Any], directory: str | Path, use_ema: bool = True) -> Path:
    """Write a trainer checkpoint's adapter as a peft folder (atomic file by file)."""
    return write_adapter(checkpoint_adapter(payload, use_ema), directory)


# ------------------------------------------------------------------------------------------------ EMA

def ema_copy(model: nn.Module) -> nn.Module:
    """A deep copy for the EMA that shares what does not train: frozen parameters, and modules kept outside the
    module tree (a recipe's frozen codec). A LoRA run's EMA thus costs the adapters, not a second base model."""
    memo: dict[int, Any] = {id(p): p for p in model.parameters() if not p.requires_grad}
    for value in vars(model).values():
        if isinstance(value, nn.Module):
            memo[id(value)] = value
    return copy.deepcopy(model, memo)


def frozen_parameter_names(model: nn.Module) -> set[str]:
    """Parameters the EMA can skip (shared with the online model by `ema_copy`)."""
    return {name for name, p in model.named_parameters() if not p.requires_grad}
