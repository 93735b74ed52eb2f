"""Where and in which number format a front end runs the model."""

from __future__ import annotations

import sys
from typing import Any

import torch

from ..models.requests import RequestError


def pick_device(name: str) -> torch.device:
    if name != "auto":
        try:
            device = torch.device(name)
        except RuntimeError as err:
            raise RequestError(f"--device {name}: {err}") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RequestError(f"--device {name}: this torch sees no CUDA device; use --device cpu")
        if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise RequestError(f"--device {name}: MPS is not available here; use --device cpu")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(requested: str | None, device: torch.device, component: str = "dit"):
    """The number format of a component ("dit": the trainable part; "codec") as toolkit.precision decides it
    from what the device has (never a timing); -> a DtypeChoice (dtype, name, reason, ...)."""
    import warnings

    from ..precision import choose_dtype

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            choice = choose_dtype(requested or "auto", device, component=component)
    except ValueError as err:
        raise RequestError(f"--dtype {requested}: {err}") from None
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    return choice


def backbone_component(cfg: Any) -> str:
    """The precision-policy entry (toolkit.precision.AUTO_LOW_PRECISION) of a config's backbone: its own where
    bf16 was studied for it (e.g. dit_diffrhythm), else the generic "dit"."""
    from ..precision import AUTO_LOW_PRECISION
    from ..registry import split_node

    name, _ = split_node(cfg["backbone"], "backbone")
    return name if name in AUTO_LOW_PRECISION else "dit"
