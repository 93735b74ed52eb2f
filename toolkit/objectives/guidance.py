"""Classifier-free guidance as stable-audio-tools applies it, for any toolkit Backbone.

One batched forward of [conditional; unconditional] items: the unconditional half drops the `uncond_drop`
inputs (per-item drop masks, so the backbone puts its null value in) or takes `negative_conditions` in their
place, then

    out = u + (c - u) * cfg_scale                                  (stable-audio-tools' form)
    out = phi * out * std(c) / std(out) + (1 - phi) * out          (only with scale_phi != 0; std over channels,
                                                                    unbiased, per frame)

A negative token input that comes with its mask (the backbone's InputSpec names the mask key) has its
masked positions set to zeros first, as upstream does for negative cross-attention tokens. Guidance is
skipped (one plain forward) when cfg_scale == 1, when the unconditional half would equal the conditional one
(no droppable input and no negative), or when `interval` is given and item 0's sigma lies outside it (upstream
decides for the whole batch from item 0).

The toolkit's flow sampler writes the same rule as v + (v - u) * cfg_strength (cfg_strength = cfg_scale - 1);
this module keeps upstream's form and its rescale so Stable Audio Open's numbers are reproduced.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ..protocols import Backbone, Sampler

Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x [B, T, D], t [B]) -> output, what samplers call
Callback = Callable[[dict], Any] | None


def _batch(value, b: int):
    """A tensor with a leading batch of 1 expanded to b (anything else unchanged)."""
    if torch.is_tensor(value) and value.ndim > 0 and value.shape[0] == 1 and b > 1:
        return value.expand(b, *value.shape[1:])
    return value


def batch_conditions(conditions: Mapping[str, torch.Tensor], b: int) -> dict[str, torch.Tensor]:
    """Conditions with a leading batch of 1 expanded to b."""
    return {name: _batch(value, b) for name, value in conditions.items()}


def present_groups(backbone: Backbone, conditions: Mapping[str, Any] | None) -> set[str]:
    """What a drop can act on: with a routed backbone (toolkit.conditions.RoutedBackbone, conditions keyed by
    condition name) the drop groups of the conditions given; with a bare backbone its inputs that have a value."""
    conditions = conditions or {}
    groups_of = getattr(backbone, "groups_of", None)
    if callable(groups_of):
        return set(groups_of(conditions))
    return {name for name, value in conditions.items() if value is not None}


def null_masked_tokens(backbone: Backbone, conditions: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Token inputs with a companion mask in `conditions`: positions where the mask is False become zeros."""
    out = dict(conditions)
    for name, spec in backbone.inputs().items():
        if spec.mask and name in out and conditions.get(spec.mask) is not None:
            keep = conditions[spec.mask].to(device=out[name].device, dtype=torch.bool)[..., None]
            out[name] = torch.where(keep, out[name], torch.zeros_like(out[name]))
    return out


def rescale(guided: torch.Tensor, cond_out: torch.Tensor, phi: float) -> torch.Tensor:
    """phi * guided * std(cond) / std(guided) + (1 - phi) * guided, std over the channel (last) dim."""
    ratio = cond_out.std(dim=-1, keepdim=True) / guided.std(dim=-1, keepdim=True)
    return phi * (guided * ratio) + (1 - phi) * guided


def guided_forward(backbone: Backbone, x: torch.Tensor, cond: torch.Tensor | None,
                   conditions: Mapping[str, torch.Tensor], time: torch.Tensor, *, cfg_scale: float,
                   uncond_drop: Sequence[str], negative_conditions: Mapping[str, torch.Tensor] | None = None,
                   scale_phi: float = 0.0, interval: Sequence[float] | None = None,
                   sigma_of_time: Callable[[torch.Tensor], torch.Tensor] | None = None,
                   return_batch: bool = False):
    """Guided backbone output [B, T, D] (and the [2B, T, D] batch output when `return_batch`, None if unguided)."""
    b = x.shape[0]
    time = torch.as_tensor(time, device=x.device)
    if time.ndim == 0:
        time = time.repeat(b)
    negative = dict(negative_conditions or {})
    present, negated = present_groups(backbone, conditions), present_groups(backbone, negative)
    drop_groups = [g for g in uncond_drop if g in present and g not in negated]
    guided = cfg_scale != 1.0 and bool(drop_groups or negative)
    if guided and interval is not None:
        sigma = sigma_of_time(time[0]) if sigma_of_time is not None else time[0]
        guided = bool(interval[0] <= sigma <= interval[1])
    if not guided:
        out = backbone(x, cond, conditions, time)
        return (out, None) if return_batch else out

    negative = null_masked_tokens(backbone, negative)
    mask_keys = {spec.mask for spec in backbone.inputs().values() if spec.mask}
    orphans = sorted(set(negative) - set(conditions) - mask_keys)
    if orphans:
        raise ValueError(f"negative_conditions {orphans} have no conditional counterpart in conditions")
    both = {}
    for name, value in conditions.items():
        other = negative.get(name, value)
        both[name] = torch.cat([_batch(value, b), _batch(other, b)]) if torch.is_tensor(value) else value
    flags = torch.cat([torch.zeros(b, dtype=torch.bool), torch.ones(b, dtype=torch.bool)]).to(x.device)
    drop = {g: flags for g in drop_groups}
    cond2 = None if cond is None else torch.cat([cond, cond])
    batch_out = backbone(torch.cat([x, x]), cond2, both, torch.cat([time, time]), drop)
    cond_out, uncond_out = batch_out.chunk(2)
    out = uncond_out + (cond_out - uncond_out) * cfg_scale
    if scale_phi != 0.0:
        out = rescale(out, cond_out, scale_phi)
    return (out, batch_out) if return_batch else out


def sampler_options(kind: str, defaults: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A sampler's constructor defaults with the per-call overrides that are not None; unknown names fail."""
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise TypeError(f"{kind} sampler: unknown options {unknown}; known: {sorted(defaults)}")
    return {**defaults, **{k: v for k, v in overrides.items() if v is not None}}


def check_whole(mask: torch.Tensor | None, kind: str) -> None:
    """These samplers regenerate every frame: a generation mask (the `flow` sampler's editing) must be all True."""
    if mask is not None and not bool(torch.as_tensor(mask).all()):
        raise ValueError(f"the {kind} sampler generates every frame; it takes no editing mask (frames to keep)")


class GuidedModel:
    """model(x [B, T, D], t [B]) -> guided backbone output, with fixed conditions (what the samplers integrate).

    `trace`, if a list, receives {"t": t, "out": output} for every call (parity tests, diagnostics).
    """

    def __init__(self, backbone: Backbone, conditions: Mapping[str, torch.Tensor], *, cfg_scale: float = 1.0,
                 uncond_drop: Sequence[str] = ("cross_attn", "prepend"),
                 negative_conditions: Mapping[str, torch.Tensor] | None = None, scale_phi: float = 0.0,
                 interval: Sequence[float] | None = None,
                 sigma_of_time: Callable[[torch.Tensor], torch.Tensor] | None = None, trace: list | None = None):
        self.backbone, self.conditions, self.cfg_scale = backbone, conditions, cfg_scale
        self.uncond_drop, self.negative_conditions, self.scale_phi = tuple(uncond_drop), negative_conditions, scale_phi
        self.interval, self.sigma_of_time, self.trace = interval, sigma_of_time, trace

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = guided_forward(self.backbone, x, None, self.conditions, t, cfg_scale=self.cfg_scale,
                             uncond_drop=self.uncond_drop, negative_conditions=self.negative_conditions,
                             scale_phi=self.scale_phi, interval=self.interval, sigma_of_time=self.sigma_of_time)
        if self.trace is not None:
            self.trace.append({"t": t, "out": out})
        return out


class ConfiguredSampler(Sampler):
    """A stable-audio-tools style sampler whose settings live in `self.defaults` (per-call overrides merge over
    them through `sampler_options`); the recipe skeleton reads these three."""

    defaults: dict[str, Any]

    @property
    def steps(self) -> int:
        return self.defaults["steps"]

    @property
    def uncond_drop(self) -> tuple[str, ...]:
        return self.defaults["uncond_drop"]

    @property
    def cfg_scale(self) -> float:
        return self.defaults["cfg_scale"]
