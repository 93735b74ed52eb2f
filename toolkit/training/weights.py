"""Loading weights into a recipe strictly, with a readable report of what does not fit.

The report is the one the DiT loader already gives (toolkit.models.diffrhythm.checkpoints): it works on
any module, so the trainer reuses it instead of keeping a second copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from .checkpoint import read_model_weights


def strict_load(module: nn.Module, state: Mapping[str, torch.Tensor], source: str = "state dict") -> None:
    """`load_state_dict(strict=True)`; a mismatch raises CheckpointMismatchError naming every bad key.

    Values are copied into the module's existing tensors, so fp16 files land in fp32 parameters.
    """
    from ..models.diffrhythm.checkpoints import CheckpointMismatchError, load_state_dict_strict

    try:
        load_state_dict_strict(module, state, source=source)
    except CheckpointMismatchError as err:
        if any(".lora_" in k for k in err.unexpected + err.missing):
            hint = ("\n  hint: LoRA adapter keys differ; set train.lora as in the run that wrote the file, or "
                    "export merged weights with `python -m toolkit.bin.train export-lora`")
            raise CheckpointMismatchError(str(err) + hint, err.missing, err.unexpected, err.wrong_shape) from None
        raise


def init_from(module: nn.Module, path: str | Path, use_ema: bool = True) -> None:
    """Load a published-format or trainer checkpoint into `module` strictly (cast to the module's dtypes)."""
    state = read_model_weights(path, use_ema=use_ema)
    strict_load(module, state, source=f"train.init_from={path}")
