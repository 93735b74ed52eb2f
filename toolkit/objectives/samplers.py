"""Flow ODE sampler: Euler / midpoint / DPM-Solver++(2M) over a time grid, classifier-free guidance, editing masks.

`steps` is the number of ODE updates everywhere in the toolkit: the grid has steps + 1 points and
Euler calls the backbone `steps` times (twice that with guidance run as separate passes, or `steps`
batched passes of twice the batch). Upstream DiffRhythm's `steps=32` is linspace(0, 1, 32), i.e.
**31** Euler updates (62 DiT passes with CFG): use steps=31 to reproduce it. F5-TTS's nfe_step=32 is
32 updates over linspace(0, 1, 33) (or its EPSS table for 5/6/7/10/12/16 steps).

Methods: "euler" (one evaluation per update, first order), "midpoint" (two, second order) and "dpmpp" (one,
second order: flow DPM-Solver++(2M), the multistep solver of rf_samplers, on the denoised estimate
x + (1 - t) v in the rectified-flow time 1 - t; its first two and its last updates are Euler's).

Guidance: v = v_c + (v_c - v_u) * cfg_strength, where v_u sees the negative conditions: the groups in
`uncond_drop` are dropped (DiffRhythm: audio prompt and lyrics; F5-TTS: audio and text) and the
entries of `negative_conditions` replace the conditional ones (DiffRhythm: the fixed negative style
embedding instead of the style). By default the two halves run as ONE batched forward
[conditional; unconditional] with per-item drop masks; `guidance="separate"` runs two passes (same
numbers up to floating-point reassociation; less peak memory). cfg_strength < 1e-5 skips guidance.
`guidance_interval=(lo, hi)` guides only evaluations at flow times lo <= t <= hi (Kynkaanniemi et al.
2024, "Applying guidance in a limited interval"); outside it the conditional velocity alone is used, one
pass instead of two. The default [0, 1] guides every evaluation, as upstream.

Editing / continuation: `mask` [B, T] bool, True = generate. The backbone's audio prompt is
where(mask, 0, cond) and the output is where(mask, x_1, cond): frames outside the mask are copied from
the reference latent `cond` exactly.

Resuming: given `snapshots` (toolkit.protocols.SamplerSnapshots), the state after each update is offered to
them under a digest of every input (noise, reference, mask, conditions, negatives, time grid, method,
guidance, dtype), and a state saved under the same digest is resumed from: the updates continue from it and
the result is bit-identical to an uninterrupted run on the same machine (the updates are deterministic).

Noise: pass `noise` [B, T, D] (parity tests, custom schemes) or None to draw it with `draw_noise`:
item i from a torch.Generator seeded `seed + i` (so items differ, a seed reproduces the batch, and
item i alone is reproduced with seed + i), or from the global generator when seed is None.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from ..io import sha256_value
from ..protocols import Backbone, Sampler, SamplerSnapshots
from ..registry import SAMPLERS
from . import time_grids
from .rf_samplers import dpmpp_step

METHODS = ("euler", "midpoint", "dpmpp")
GUIDANCE = ("batched", "separate")


def draw_noise(batch: int, frames: int, dim: int, seed: int | None = None, dtype: torch.dtype = torch.float32,
               device: torch.device | str = "cpu") -> torch.Tensor:
    """[batch, frames, dim] standard normal noise; item i from a generator seeded seed + i (None: global RNG)."""
    if seed is None:
        return torch.randn(batch, frames, dim).to(device=device, dtype=dtype)
    items = [torch.randn(frames, dim, generator=torch.Generator().manual_seed(seed + i)) for i in range(batch)]
    return torch.stack(items).to(device=device, dtype=dtype)


def check_interval(interval: tuple[float, float] | list[float]) -> tuple[float, float]:
    lo, hi = (float(v) for v in interval)
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"guidance_interval must be [lo, hi] with 0 <= lo <= hi <= 1, got {list(interval)}")
    return lo, hi


def guidance_batch(cond: torch.Tensor, conditions: Mapping[str, torch.Tensor], negative: Mapping[str, torch.Tensor],
                   uncond_drop: tuple[str, ...], drop: Mapping[str, torch.Tensor] | None = None
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The inputs of guidance's one batched forward, [conditional; unconditional]: (audio prompt, conditions
    with `negative`'s entries in the second half, drop flags by group). The unconditional half drops the
    `uncond_drop` groups; `drop` ({group: [B] bool}, a training draw) applies to both halves."""
    b = cond.shape[0]
    both = {k: torch.cat([v, negative.get(k, v)]) for k, v in conditions.items()}
    second = torch.cat([torch.zeros(b, dtype=torch.bool), torch.ones(b, dtype=torch.bool)]).to(cond.device)
    flags = {g: torch.cat([v, v]).to(cond.device) for g, v in (drop or {}).items()}
    for group in uncond_drop:
        flags[group] = flags[group] | second if group in flags else second
    return torch.cat([cond, cond]), both, flags


def integration_dtype(param_dtype: torch.dtype) -> torch.dtype:
    """The dtype the ODE is integrated in for a model of `param_dtype`: the model's own, as upstream's fp16
    inference does, except bf16, whose 8-bit mantissa would round the flow times and the state (a bf16 model
    integrates in fp32 and computes in bf16)."""
    return torch.float32 if param_dtype == torch.bfloat16 else param_dtype


def _param_dtype(module: torch.nn.Module) -> torch.dtype:
    for p in module.parameters():
        if p.is_floating_point():
            return integration_dtype(p.dtype)
    return torch.float32


def _to_batch(value: torch.Tensor, batch: int) -> torch.Tensor:
    if value.ndim > 0 and value.shape[0] == 1 and batch > 1:
        return value.expand(batch, *value.shape[1:])
    return value


@SAMPLERS.register("flow")
class FlowSampler(Sampler):
    """Flow-matching ODE sampler (Euler/midpoint; linspace, EPSS, sway grids; batched CFG; edit masks).

    Resumable (see the module docstring). Args (all overridable per call in `sample`):
        steps: number of ODE updates (upstream DiffRhythm's steps=32 == 31 here).
        method: "euler", "midpoint" (2 evaluations per update) or "dpmpp" (1; second order, multistep).
        time_grid: "linspace" or "epss"; sway_coef: sway sampling coefficient (None = off).
        cfg_strength: guidance scale (< 1e-5 disables guidance).
        uncond_drop: condition groups dropped in the unconditional half.
        guidance: "batched" (one forward of 2B items) or "separate" (two forwards).
        guidance_interval: (lo, hi) flow times at which guidance applies (default (0, 1): everywhere).
        dtype: compute dtype of the integration; None = the backbone's parameter dtype (an fp16
            model then gets an fp16 time grid, as upstream's fp16 inference does).
    """

    resumable = True

    def __init__(self, steps: int = 31, method: str = "euler", time_grid: str = "linspace",
                 sway_coef: float | None = None, cfg_strength: float = 4.0,
                 uncond_drop: tuple[str, ...] | list[str] = ("audio", "lyrics"), guidance: str = "batched",
                 dtype: torch.dtype | str | None = None,
                 guidance_interval: tuple[float, float] | list[float] = (0.0, 1.0)):
        if method not in METHODS:
            raise ValueError(f"unknown ODE method '{method}'; choose one of {METHODS}")
        if guidance not in GUIDANCE:
            raise ValueError(f"guidance must be one of {GUIDANCE}, got '{guidance}'")
        self.steps, self.method, self.time_grid, self.sway_coef = steps, method, time_grid, sway_coef
        self.cfg_strength, self.uncond_drop, self.guidance = cfg_strength, tuple(uncond_drop), guidance
        self.dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        self.guidance_interval = check_interval(guidance_interval)

    @torch.no_grad()
    def sample(self, backbone: Backbone, noise: torch.Tensor | None, cond: torch.Tensor,
               conditions: Mapping[str, torch.Tensor], *, negative_conditions: Mapping[str, torch.Tensor] | None = None,
               mask: torch.Tensor | None = None, steps: int | None = None, method: str | None = None,
               time_grid: str | None = None, sway_coef: float | None = None, cfg_strength: float | None = None,
               guidance: str | None = None, guidance_interval: tuple[float, float] | None = None,
               seed: int | None = None, dtype: torch.dtype | None = None,
               t: torch.Tensor | None = None,
               callback: Callable[[int, int, torch.Tensor, torch.Tensor], Any] | None = None,
               return_trajectory: bool = False, snapshots: SamplerSnapshots | None = None
               ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Integrate from noise (t=0) to data (t=1).

        backbone: a toolkit Backbone (eval mode); noise: [B, T, D] or None (drawn, see `draw_noise`);
        cond: [B, T, D] reference latent (zeros when nothing is given); conditions: the backbone's
        conditions for the conditional half (tensors with a leading batch dim of B or 1);
        negative_conditions: entries replacing them in the unconditional half; mask: [B, T] bool,
        True = generate (default: every frame); t: an explicit time grid (overrides steps / grid / sway);
        callback(i, steps, t_i, x) after each update (progress bars; a resumed run starts at the first update
        not done); snapshots: where the state is saved and resumed from (not with return_trajectory);
        returns the latents [B, T, D] (and the trajectory [steps + 1, B, T, D] if asked).
        """
        steps = self.steps if steps is None else steps
        method = method or self.method
        if method not in METHODS:
            raise ValueError(f"unknown ODE method '{method}'; choose one of {METHODS}")
        cfg = self.cfg_strength if cfg_strength is None else cfg_strength
        guidance = guidance or self.guidance
        lo, hi = self.guidance_interval if guidance_interval is None else check_interval(guidance_interval)
        dtype = dtype or self.dtype or _param_dtype(backbone)
        sway_coef = self.sway_coef if sway_coef is None else sway_coef
        b, frames, dim = cond.shape
        device = cond.device

        cond = cond.to(dtype)
        if mask is None:
            mask = torch.ones(b, frames, dtype=torch.bool, device=device)
        mask = mask.to(device=device, dtype=torch.bool)
        step_cond = torch.where(mask[..., None], torch.zeros_like(cond), cond)
        cast = {k: (_to_batch(v, b).to(dtype) if torch.is_tensor(v) and v.is_floating_point() else _to_batch(v, b))
                for k, v in conditions.items()}
        x = draw_noise(b, frames, dim, seed, dtype, device) if noise is None else noise.to(device=device, dtype=dtype)
        if t is None:
            t = time_grids.time_grid(steps, time_grid or self.time_grid, sway_coef, dtype, device)
        else:
            t = t.to(device=device, dtype=dtype)

        guided = cfg >= 1e-5
        if guided:
            negative = {**cast}
            for k, v in (negative_conditions or {}).items():
                v = _to_batch(v, b)
                negative[k] = v.to(dtype) if torch.is_tensor(v) and v.is_floating_point() else v
            if guidance == "batched":
                x_cond, both, drop_both = guidance_batch(step_cond, cast, negative, self.uncond_drop)
            else:
                drop_u = {g: torch.ones(b, dtype=torch.bool, device=device) for g in self.uncond_drop}

        self.last_nfe = 0  # model evaluations per item of the last call (a guided one counts two)

        def velocity(time: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            if not guided or not lo <= float(time) <= hi:
                self.last_nfe += 1
                return backbone(y, step_cond, cast, time)
            self.last_nfe += 2
            if guidance == "batched":
                v, u = backbone(torch.cat([y, y]), x_cond, both, time, drop_both).chunk(2)
            else:
                v = backbone(y, step_cond, cast, time)
                u = backbone(y, step_cond, negative, time, drop_u)
            return v + (v - u) * cfg

        trajectory = [x] if return_trajectory else None
        n = len(t) - 1
        start, key = 0, None
        old = None  # dpmpp: the previous update's denoised estimate (part of the state it resumes from)
        if snapshots is not None and not return_trajectory:
            key = sha256_value({"noise": x, "cond": cond, "mask": mask, "conditions": cast,
                                "negative": negative_conditions or {}, "t": t, "method": method, "cfg": cfg,
                                "guidance": [guidance, lo, hi, self.uncond_drop], "dtype": str(dtype)})
            saved = snapshots.load(key)
            if saved is not None:
                start, state = saved[0], saved[1].to(device=device, dtype=dtype)
                x, old = (state[0], state[1]) if method == "dpmpp" else (state, None)
        for i in range(start, n):
            t0, t1 = t[i], t[i + 1]
            dt = t1 - t0
            if method == "euler":
                x = x + dt * velocity(t0, x)
            elif method == "midpoint":
                half = dt / 2
                x_mid = x + velocity(t0, x) * half
                x = x + dt * velocity(t0 + half, x_mid)
            else:  # rectified-flow time s = 1 - t: noise at 1, data at 0
                denoised = x + (1 - t0) * velocity(t0, x)
                x = dpmpp_step(x, denoised, old, 1 - t[i - 1] if i else None, 1 - t0, 1 - t1)
                old = denoised
            if trajectory is not None:
                trajectory.append(x)
            if key is not None:
                snapshots.save(key, i + 1, n, torch.stack([x, old]) if method == "dpmpp" else x)
            if callback is not None:
                callback(i, n, t1, x)

        out = torch.where(mask[..., None], x, cond)
        if return_trajectory:
            return out, torch.stack(trajectory)
        return out

