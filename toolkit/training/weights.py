"""Loading weights into a recipe strictly, with a readable report of what does not fit.

The report is toolkit.weights' (shared by every loader); this adds the LoRA hint the trainer needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..checkpoints import read_weights
from ..weights import load_strict, mismatch


def strict_load(module: nn.Module, state: Mapping[str, torch.Tensor], source: str = "state dict") -> None:
    """`load_state_dict(strict=True)`; a mismatch raises WeightsMismatchError naming every bad key.

    Values are copied into the module's existing tensors, so fp16 files land in fp32 parameters.
    """
    missing, unexpected, _ = mismatch(module, state)
    hint = ""
    if any(".lora_" in k for k in unexpected + missing):
        hint = ("LoRA adapter keys differ; set train.lora as in the run that wrote the file, or "
                "export merged weights with `python -m toolkit.bin.train export-lora`")
    load_strict(module, state, source=source, hint=hint)


def init_from(module: nn.Module, path: str | Path, use_ema: bool = True) -> None:
    """Load a published-format or trainer checkpoint into `module` strictly (cast to the module's dtypes)."""
    state = read_weights(path, prefer_ema=use_ema)
    strict_load(module, state, source=f"train.init_from={path}")
