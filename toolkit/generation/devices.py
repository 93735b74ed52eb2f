"""Where and in which number format a front end runs the model."""

from __future__ import annotations

import torch

from ..models.requests import RequestError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


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


def pick_dtype(name: str | None, device: torch.device) -> tuple[str, torch.dtype, str]:
    """(name, dtype, reason) for the trainable part of the model."""
    if name is None or name == "auto":
        if device.type == "cuda":
            name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
            return name, DTYPES[name], f"auto: CUDA device {'with' if name == 'bf16' else 'without'} bf16"
        return "fp32", torch.float32, "auto: fp32 on this device"
    if name not in DTYPES:
        raise RequestError(f"--dtype {name}: choose auto, {', '.join(DTYPES)}")
    reason = "asked for"
    if device.type == "cpu" and name == "fp16":
        reason += "; fp16 on a CPU is very slow (no native fp16 arithmetic): fp32 or bf16 is the right choice"
    return name, DTYPES[name], reason
