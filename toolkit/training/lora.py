"""LoRA adapters on linear layers, with base-model key names left untouched.

`LoRALinear` subclasses nn.Linear and keeps its `weight` / `bias`; the adapter adds `lora_A` [r, in],
`lora_B` [out, r] and a `lora_scale` buffer (alpha / r), so a LoRA model's state dict is the base model's
keys plus `<layer>.lora_A|lora_B|lora_scale`. Merging (W + scale * B @ A, computed in float64) needs only
the state dict (`merge_lora_state_dict`), and the merged dict loads strictly into the plain recipe.
Why not peft: see docs/training.md (key names, merge without the model, EMA/DDP need nothing special).
"""

from __future__ import annotations

import fnmatch
import math
from typing import Iterable, Mapping

import torch
from torch import nn
from torch.nn import functional as F

# Attention and MLP projections of the Llama-style DiT blocks (DiffRhythm) and F5's DiT blocks.
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
                   "to_q", "to_k", "to_v", "to_out.0", "ff.ff.0.0", "ff.ff.2")
LORA_SUFFIXES = (".lora_A", ".lora_B", ".lora_scale")


class LoRALinear(nn.Linear):
    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, rank: int, alpha: float,
                 device=None, dtype=None):
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        if rank < 1:
            raise ValueError(f"LoRA rank must be at least 1, got {rank}")
        self.rank = int(rank)
        self.lora_A = nn.Parameter(torch.empty(rank, in_features, device=device, dtype=dtype))
        self.lora_B = nn.Parameter(torch.zeros(out_features, rank, device=device, dtype=dtype))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.register_buffer("lora_scale", torch.tensor(float(alpha) / rank, dtype=torch.float32))

    @classmethod
    def from_linear(cls, linear: nn.Linear, rank: int, alpha: float) -> "LoRALinear":
        w = linear.weight
        new = cls(linear.in_features, linear.out_features, linear.bias is not None, rank=rank, alpha=alpha,
                  device=w.device, dtype=w.dtype)
        with torch.no_grad():
            new.weight.copy_(w)
            if linear.bias is not None:
                new.bias.copy_(linear.bias)
        new.weight.requires_grad_(linear.weight.requires_grad)
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = F.linear(x, self.weight, self.bias)
        return base + F.linear(F.linear(x, self.lora_A), self.lora_B) * self.lora_scale.to(x.dtype)

    def merged_linear(self) -> nn.Linear:
        linear = nn.Linear(self.in_features, self.out_features, self.bias is not None,
                           device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            linear.weight.copy_(merge_weight(self.weight, self.lora_A, self.lora_B, self.lora_scale))
            if self.bias is not None:
                linear.bias.copy_(self.bias)
        return linear


def merge_weight(weight, lora_a, lora_b, scale) -> torch.Tensor:
    delta = lora_b.double() @ lora_a.double() * float(scale)
    return (weight.double() + delta).to(weight.dtype)


def _matches(name: str, targets: Iterable[str]) -> bool:
    """A target matches a module whose full name ends with it (`q_proj`, `mlp.up_proj`) or fits a glob."""
    for t in targets:
        if name == t or name.endswith("." + t) or fnmatch.fnmatchcase(name, t):
            return True
    return False


def apply_lora(model: nn.Module, rank: int, alpha: float | None = None,
               targets: Iterable[str] = DEFAULT_TARGETS) -> list[str]:
    """Replace the matching nn.Linear layers by LoRALinear in place; returns their names.

    Freezes everything else: afterwards only `lora_A` / `lora_B` require grad.
    """
    targets = list(targets)
    alpha = float(rank if alpha is None else alpha)
    names = [n for n, m in model.named_modules()
             if type(m) is nn.Linear and _matches(n, targets)]
    if not names:
        linear = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        raise ValueError(f"train.lora.targets {targets} match no linear layer; linear layers are: "
                         f"{', '.join(linear[:30])}{' ...' if len(linear) > 30 else ''}")
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear.from_linear(getattr(parent, child), rank, alpha))
    for pname, param in model.named_parameters():
        param.requires_grad_(pname.endswith(".lora_A") or pname.endswith(".lora_B"))
    return names


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every LoRALinear by a plain nn.Linear holding the merged weight (in place)."""
    for name, module in list(model.named_modules()):
        if isinstance(module, LoRALinear):
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, module.merged_linear())
    return model


def has_lora(state: Mapping[str, torch.Tensor]) -> bool:
    return any(k.endswith(LORA_SUFFIXES) for k in state)


def merge_lora_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A LoRA model's state dict -> the plain model's (adapters merged into `weight`, adapter keys gone)."""
    out = {k: v for k, v in state.items() if not k.endswith(LORA_SUFFIXES)}
    for key in state:
        if key.endswith(".lora_A"):
            prefix = key[: -len("lora_A")]
            try:
                out[prefix + "weight"] = merge_weight(state[prefix + "weight"], state[key],
                                                      state[prefix + "lora_B"], state[prefix + "lora_scale"])
            except KeyError as err:
                raise ValueError(f"LoRA layer {prefix[:-1]} is incomplete in the state dict: no {err}") from None
    return out
