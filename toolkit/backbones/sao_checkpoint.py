"""Published Stable Audio Open checkpoints: the released configurations, and strict loading by component.

A released `model.safetensors` / `model.ckpt` (state_dict) holds, under the names of stable-audio-tools'
ConditionedDiffusionModelWrapper:
    model.model.*                    the DiT                      -> dit_sao (toolkit.backbones.dit_sao)
    conditioner.conditioners.<id>.*  learned conditioner weights  -> number (seconds_*), t5_text proj_out if any
    pretransform.model.*             the Oobleck VAE              -> the oobleck codec
The T5 encoder is not in the file (t5-base, loaded from its own folder by t5_text).

`load_published` loads every part strictly through toolkit.weights: a missing, unexpected or wrong-shape key
is named with its published name, nothing is loaded on a mismatch. RELEASED holds the two released
configurations, deduced from the key lists (tests/fixtures/reference/sao_*_dit_keys.txt, built with
stable-audio-tools 0.0.19 on the meta device; Small's from a config reconstructed from public sources).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..codecs.loading import read_state_dict
from ..conditioners.number import NumberConditioner
from ..weights import load_strict
from .dit_sao import SAODiT

DIT_PREFIX = "model.model."
CONDITIONER_PREFIX = "conditioner.conditioners."
PRETRANSFORM_PREFIX = "pretransform.model."

_NUMBER = {"type": "number", "output_dim": 768, "min_val": 0, "max_val": 512}
RELEASED: dict[str, dict[str, Any]] = {
    "sao_1.0": {  # stabilityai/stable-audio-open-1.0
        "dit": {"embed_dim": 1536, "depth": 24, "num_heads": 24, "latent_dim": 64, "cond_token_dim": 768,
                "project_cond_tokens": False, "global_cond_dim": 1536, "diffusion_objective": "v"},
        "conditioners": {"prompt": {"type": "t5_text", "output_dim": 768, "max_length": 128},
                         "seconds_start": dict(_NUMBER), "seconds_total": dict(_NUMBER)},
        "inputs": {"cross_attn": ["prompt", "seconds_start", "seconds_total"],
                   "global": ["seconds_start", "seconds_total"]},
        "objective": "v_diffusion",
        "sampler": {"type": "v_diffusion", "method": "dpmpp-3m-sde", "steps": 100, "cfg_scale": 7.0,
                    "sigma_min": 0.3, "sigma_max": 500.0, "rho": 1.0},
    },
    "sao_small": {  # stabilityai/stable-audio-open-small (reconstructed config, see the module docstring)
        "dit": {"embed_dim": 1024, "depth": 16, "num_heads": 8, "latent_dim": 64, "cond_token_dim": 768,
                "project_cond_tokens": True, "global_cond_dim": 768, "qk_norm": "ln",
                "diffusion_objective": "rf_denoiser"},
        "conditioners": {"prompt": {"type": "t5_text", "output_dim": 768, "max_length": 64},
                         "seconds_total": {**_NUMBER, "max_val": 256}},
        "inputs": {"cross_attn": ["prompt", "seconds_total"], "global": ["seconds_total"]},
        "objective": "rectified_flow",
        "sampler": {"type": "rectified_flow", "method": "pingpong", "steps": 8, "cfg_scale": 1.0},
    },
}


def released_config(name: str) -> dict[str, Any]:
    if name not in RELEASED:
        raise ValueError(f"unknown released Stable Audio Open model {name!r}; known: {sorted(RELEASED)}")
    return copy.deepcopy(RELEASED[name])


def build_released_dit(name: str, device: torch.device | str = "cpu") -> SAODiT:
    """The released-size DiT (on the meta device: shapes and keys without memory)."""
    with torch.device(device):
        return SAODiT(**released_config(name)["dit"])


def build_released_number_conditioners(name: str, device: torch.device | str = "cpu") -> dict[str, nn.Module]:
    """The released model's number conditioners by id (the only conditioners with keys in the checkpoint)."""
    out = {}
    with torch.device(device):
        for cid, node in released_config(name)["conditioners"].items():
            if node.pop("type") == "number":
                out[cid] = NumberConditioner(**node, key=cid)
    return out


class PublishedLayout(nn.Module):
    """Modules arranged under the published names (model.model, conditioner.conditioners.<id>, pretransform.model).

    Its state_dict() keys are those of a released checkpoint, so `load_strict` on it reports a mismatch in
    the file's own names. The modules are shared, not copied.
    """

    def __init__(self, dit: nn.Module, conditioners: Mapping[str, nn.Module] | None = None,
                 pretransform: nn.Module | None = None):
        super().__init__()
        self.model = nn.Module()
        self.model.model = dit
        self.conditioner = nn.Module()
        self.conditioner.conditioners = nn.ModuleDict(dict(conditioners or {}))
        if pretransform is not None:
            self.pretransform = nn.Module()
            self.pretransform.model = pretransform


def split_published(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """{"dit": {...}, "conditioners": {id: {...}}, "pretransform": {...}, "other": {...}}, prefixes removed."""
    parts: dict[str, Any] = {"dit": {}, "conditioners": {}, "pretransform": {}, "other": {}}
    for key, value in state.items():
        if key.startswith(DIT_PREFIX):
            parts["dit"][key[len(DIT_PREFIX):]] = value
        elif key.startswith(CONDITIONER_PREFIX):
            cid, _, rest = key[len(CONDITIONER_PREFIX):].partition(".")
            parts["conditioners"].setdefault(cid, {})[rest] = value
        elif key.startswith(PRETRANSFORM_PREFIX):
            parts["pretransform"][key[len(PRETRANSFORM_PREFIX):]] = value
        else:
            parts["other"][key] = value
    return parts


def read_published(path: str | Path) -> dict[str, torch.Tensor]:
    """A released checkpoint's state dict (.safetensors, or .ckpt / .pt with `state_dict`, read weights_only)."""
    return read_state_dict(path)


def load_published(state: Mapping[str, torch.Tensor] | str | Path, dit: nn.Module,
                   conditioners: Mapping[str, nn.Module] | None = None, pretransform: nn.Module | None = None,
                   source: str | None = None) -> dict[str, int]:
    """Load a published Stable Audio Open state dict (or file) into the given modules, strictly.

    conditioners: {id: module} for every conditioner of the model (a T5 conditioner without proj_out has no
    keys, which is fine). pretransform: the VAE module (e.g. the oobleck codec); None skips the file's
    `pretransform.model.*` keys (load the codec from the same file through its own loader). Returns how many
    tensors went to each part. Raises toolkit.weights.WeightsMismatchError naming every key that does not fit.
    """
    if isinstance(state, (str, Path)):
        source = source or f"Stable Audio Open checkpoint {state}"
        state = read_published(state)
    source = source or "Stable Audio Open state dict"
    if pretransform is None:
        state = {k: v for k, v in state.items() if not k.startswith(PRETRANSFORM_PREFIX)}
    layout = PublishedLayout(dit, conditioners, pretransform)
    hint = ("keys are matched under the published names; the released layouts are in "
            "tests/fixtures/reference/sao_1.0_dit_keys.txt and sao_small_dit_keys.txt (Small's built from a "
            "reconstructed config: a difference listed above is where the file disagrees with it)")
    load_strict(layout, state, source=source, hint=hint)
    parts = split_published(state)
    return {"dit": len(parts["dit"]), "pretransform": len(parts["pretransform"]),
            **{f"conditioner.{cid}": len(v) for cid, v in parts["conditioners"].items()}}
