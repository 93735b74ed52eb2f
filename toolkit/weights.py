"""Strict state-dict loading with one readable report of everything that does not fit.

Every loader of the toolkit (codecs, backbones, conditioners, the trainer) goes through
`load_strict`, so a checkpoint of the wrong model always fails the same way: it names the
missing keys (in the model, not in the file), the unexpected keys (in the file, not in the model)
and the keys whose shapes differ, and it loads nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


class WeightsMismatchError(RuntimeError):
    """A state dict does not fit the module; the message lists missing, unexpected and wrong-shape keys."""

    def __init__(self, message: str, missing: list[str], unexpected: list[str],
                 wrong_shape: list[tuple[str, tuple, tuple]]):
        super().__init__(message)
        self.missing, self.unexpected, self.wrong_shape = missing, unexpected, wrong_shape


def mismatch(module: nn.Module, state: Mapping[str, torch.Tensor]):
    """(missing, unexpected, wrong_shape) of `state` against `module.state_dict()`."""
    expected = module.state_dict()
    missing = sorted(k for k in expected if k not in state)
    unexpected = sorted(k for k in state if k not in expected)
    wrong = sorted((k, tuple(state[k].shape), tuple(v.shape)) for k, v in expected.items()
                   if k in state and tuple(state[k].shape) != tuple(v.shape))
    return missing, unexpected, wrong


def _listing(title: str, items: list[str], limit: int = 20) -> str:
    shown = "\n".join(f"    {item}" for item in items[:limit])
    more = f"\n    ... and {len(items) - limit} more" if len(items) > limit else ""
    return f"  {title} ({len(items)}):\n{shown}{more}"


def mismatch_message(module: nn.Module, state: Mapping[str, torch.Tensor], source: str = "state dict") -> str:
    """'' when `state` fits `module` exactly, else the report."""
    missing, unexpected, wrong = mismatch(module, state)
    if not (missing or unexpected or wrong):
        return ""
    parts = [f"{source} does not match {type(module).__name__}:"]
    if missing:
        parts.append(_listing("missing keys (in the model, not in the file)", missing))
    if unexpected:
        parts.append(_listing("unexpected keys (in the file, not in the model)", unexpected))
    if wrong:
        shapes = [f"{k}: {f} vs {m}" for k, f, m in wrong]
        parts.append(_listing("wrong-shape keys (file shape vs model shape)", shapes))
    return "\n".join(parts)


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], source: str = "state dict",
                hint: str = "", assign: bool = False) -> nn.Module:
    """`load_state_dict(strict=True)`; a mismatch raises WeightsMismatchError (with `hint` appended)."""
    message = mismatch_message(module, state, source)
    if message:
        missing, unexpected, wrong = mismatch(module, state)
        raise WeightsMismatchError(message + (f"\n  hint: {hint}" if hint else ""), missing, unexpected, wrong)
    module.load_state_dict(dict(state), strict=True, assign=assign)
    return module
