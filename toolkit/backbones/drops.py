"""Per-item condition drops, as every backbone reads them from its `drop` argument."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch


def _batch_flags(flags: torch.Tensor | bool | None, batch: int, device: torch.device) -> torch.Tensor | None:
    """A per-item drop mask [B] bool from a bool, a 0-dim or a [B] tensor (None / all-False -> None)."""
    if flags is None:
        return None
    flags = torch.as_tensor(flags, dtype=torch.bool, device=device)
    if flags.ndim == 0:
        flags = flags.expand(batch)
    if flags.shape != (batch,):
        raise ValueError(f"a drop mask must be a bool or have shape [{batch}], got {tuple(flags.shape)}")
    return flags


def drop_masks(drop: Mapping[str, torch.Tensor | bool] | None, groups: Sequence[str], batch: int,
               device: torch.device) -> list[torch.Tensor | None]:
    """One [B] bool mask (or None) per group, in `groups` order; an unknown group is an error."""
    drop = drop or {}
    unknown = set(drop) - set(groups)
    if unknown:
        raise ValueError(f"unknown drop group(s) {sorted(unknown)}; this backbone drops {tuple(groups)}")
    return [_batch_flags(drop.get(g), batch, device) for g in groups]
