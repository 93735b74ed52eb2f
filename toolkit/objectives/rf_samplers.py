"""Samplers of rectified-flow models (Stable Audio Open Small), as stable-audio-tools' `sample_rf` runs them.

Time runs from t = sigma_max (noise) down to 0, x_t = (1 - t) x + t noise, and the model predicts the
velocity noise - x (the reverse of the toolkit's CFM flow time tau = 1 - t and velocity x1 - x0; Euler here is
the flow sampler's Euler under that change of variables, see docs/components/stable_audio.md).

* grid "logsnr" (sample_rf's): t = sigmoid(-linspace(logsnr_max, 2, steps + 1)) with logsnr_max = -6 for
  sigma_max 1 (else log((1 - sigma_max)/sigma_max + 1e-6)), then t[0] = sigma_max and t[-1] = 0.
  grid "linspace": linspace(sigma_max, 0, steps + 1), optionally moved by a DistributionShift for the
  sequence length (upstream's grid when no explicit sigmas are given).
* euler: x += (t_{i+1} - t_i) v(x, t_i).
* pingpong (Small's distilled sampler): denoised = x - t_i v; x = (1 - t_{i+1}) denoised + t_{i+1} noise_i,
  a fresh N(0, 1) draw every step (the last one multiplied by 0).
* dpmpp: flow DPM-Solver++(2M) with lambda(t) = log((1 - t)/t) on the denoised estimates.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

from ..protocols import Backbone
from ..registry import SAMPLERS
from .diffusion_times import DistributionShift
from .guidance import Callback, ConfiguredSampler, GuidedModel, Model, batch_conditions, check_whole, sampler_options
from .noise_streams import initial_noise, step_noise_fn

METHODS = ("euler", "pingpong", "dpmpp")
GRIDS = ("logsnr", "linspace")


def logsnr_grid(steps: int, sigma_max: float = 1.0) -> torch.Tensor:
    """[steps + 1] times of stable-audio-tools' sample_rf (float32, CPU)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    sigma_max = min(sigma_max, 1)
    logsnr_max = math.log(((1 - sigma_max) / sigma_max) + 1e-6) if sigma_max < 1 else -6
    t = torch.sigmoid(-torch.linspace(logsnr_max, 2, steps + 1))
    t[0] = sigma_max
    t[-1] = 0
    return t


def linspace_grid(steps: int, sigma_max: float = 1.0, shift: DistributionShift | None = None,
                  seq_len: int | None = None) -> torch.Tensor:
    """[steps + 1] times linspace(sigma_max, 0), shifted for `seq_len` frames when a shift is given."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    t = torch.linspace(min(sigma_max, 1), 0, steps + 1)
    if shift is not None:
        if seq_len is None:
            raise ValueError("a distribution-shifted grid needs the sequence length")
        t = shift.time_shift(t, seq_len)
    return t


class FlowTimeView(Backbone):
    """A rectified-flow backbone seen in the toolkit's CFM convention: flow time tau = 1 - t, velocity x1 - x0.

    forward(x, cond, conditions, tau, drop) = -backbone(x, cond, conditions, 1 - tau, drop), so the toolkit's
    `flow` sampler (Euler / midpoint from tau = 0 to 1) integrates a Stable Audio Open Small model.
    """

    def __init__(self, backbone: Backbone):
        super().__init__()
        self.backbone = backbone
        self.latent_dim = getattr(backbone, "latent_dim", None)

    def inputs(self):
        return self.backbone.inputs()

    def forward(self, x, cond, conditions, time, drop=None):
        return -self.backbone(x, cond, conditions, 1 - torch.as_tensor(time, device=x.device), drop)


def rf_euler(model: Model, x: torch.Tensor, t: torch.Tensor, callback: Callback = None) -> torch.Tensor:
    for i, (t_curr, t_next) in enumerate(zip(t[:-1], t[1:], strict=True)):
        v = model(x, t_curr * torch.ones((x.shape[0],), dtype=x.dtype, device=x.device))
        x = x + (t_next - t_curr) * v
        if callback is not None:
            callback({"x": x, "i": i + 1, "t": t_curr, "sigma": t_curr, "denoised": x - t_next * v})
    return x


def rf_pingpong(model: Model, x: torch.Tensor, t: torch.Tensor, noise: Callable[[int], torch.Tensor],
                callback: Callback = None) -> torch.Tensor:
    ones = x.new_ones([x.shape[0]])
    for i in range(len(t) - 1):
        denoised = x - t[i] * model(x, t[i] * ones)
        if callback is not None:
            callback({"x": x, "i": i, "t": t[i], "sigma": t[i], "denoised": denoised})
        x = (1 - t[i + 1]) * denoised + t[i + 1] * noise(i)
    return x


def _log_snr(s: torch.Tensor) -> torch.Tensor:
    return ((1 - s) / s).log()


def dpmpp_step(x: torch.Tensor, denoised: torch.Tensor, old: torch.Tensor | None, t_prev: torch.Tensor | None,
               t_curr: torch.Tensor, t_next: torch.Tensor) -> torch.Tensor:
    """One flow DPM-Solver++(2M) update of x from t_curr to t_next (1 = noise, 0 = data) given the denoised
    estimate at t_curr and `old`, the one at t_prev (None: a first-order step, as is the last step to t = 0).
    From t = 1 the step is exactly Euler's (lambda = -inf), and so is the one after it (r = inf)."""
    alpha_next = 1 - t_next
    h = _log_snr(t_next) - _log_snr(t_curr)
    if old is not None and t_next != 0:
        r = (_log_snr(t_curr) - _log_snr(t_prev)) / h
        denoised = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old
    return (t_next / t_curr) * x - alpha_next * (-h).expm1() * denoised


def rf_dpmpp(model: Model, x: torch.Tensor, t: torch.Tensor, callback: Callback = None) -> torch.Tensor:
    ones = x.new_ones([x.shape[0]])
    old = None
    for i in range(len(t) - 1):
        t_curr, t_next = t[i], t[i + 1]
        denoised = x - t_curr * model(x, t_curr * ones)
        if callback is not None:
            callback({"x": x, "i": i, "t": t_curr, "sigma": t_curr, "denoised": denoised})
        x = dpmpp_step(x, denoised, old, t[i - 1] if i else None, t_curr, t_next)
        old = denoised
    return x


@SAMPLERS.register("rectified_flow")
class RectifiedFlowSampler(ConfiguredSampler):
    """Rectified-flow sampling as stable-audio-tools does it: ping-pong, Euler or flow DPM++ from t = 1 to 0.

    Args (all overridable per call): method ("pingpong", "euler", "dpmpp"); steps (model calls; Stable Audio
    Open Small: 8 ping-pong steps, cfg 1); sigma_max (start time, < 1 for a variation); time_grid ("logsnr",
    sample_rf's, or "linspace" with an optional `dist_shift` = DistributionShift kwargs); cfg_scale; scale_phi;
    cfg_interval ((lo, hi) of sigma = t, None = always); uncond_drop (cross_attn, prepend, as upstream).
    sample(backbone, noise, cond, conditions, *, negative_conditions=None, init=None, shape=None, seed=None,
    step_noise=None, callback=None, trace=None, **overrides): as the v_diffusion sampler; init: latents of a
    variation, x = init (1 - sigma_max) + noise sigma_max; step_noise: ping-pong's per-step N(0, 1) draws
    [steps, B, T, D] (or a callable i -> tensor); callback(dict) per step (x after the step for euler, before
    it otherwise).
    """

    def __init__(self, method: str = "pingpong", steps: int = 8, sigma_max: float = 1.0, time_grid: str = "logsnr",
                 dist_shift: Mapping[str, Any] | None = None, cfg_scale: float = 1.0, scale_phi: float = 0.0,
                 cfg_interval: tuple[float, float] | None = None,
                 uncond_drop: tuple[str, ...] | list[str] = ("cross_attn", "prepend")):
        self.defaults = dict(method=method, steps=steps, sigma_max=sigma_max, time_grid=time_grid,
                             dist_shift=dist_shift, cfg_scale=cfg_scale, scale_phi=scale_phi,
                             cfg_interval=cfg_interval, uncond_drop=tuple(uncond_drop))
        self._check(method, time_grid)

    @staticmethod
    def _check(method: str, grid: str) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown rectified-flow sampling method {method!r}; choose one of {METHODS}")
        if grid not in GRIDS:
            raise ValueError(f"unknown rectified-flow time grid {grid!r}; choose one of {GRIDS}")

    def time_grid(self, steps: int, sigma_max: float, grid: str, dist_shift: Mapping[str, Any] | None,
                  seq_len: int) -> torch.Tensor:
        if grid == "logsnr":
            return logsnr_grid(steps, sigma_max)
        shift = DistributionShift(**dict(dist_shift)) if dist_shift else None
        return linspace_grid(steps, sigma_max, shift, seq_len)

    @torch.no_grad()
    def sample(self, backbone: Backbone, noise: torch.Tensor | None, cond: torch.Tensor | None,
               conditions: Mapping[str, torch.Tensor], *, negative_conditions: Mapping[str, torch.Tensor] | None = None,
               init: torch.Tensor | None = None, shape: tuple[int, int, int] | None = None, seed: int | None = None,
               step_noise=None, callback: Callback = None, trace: list | None = None,
               mask: torch.Tensor | None = None, **overrides) -> torch.Tensor:
        check_whole(mask, "rectified_flow")
        o = sampler_options("rectified_flow", self.defaults, overrides)
        self._check(o["method"], o["time_grid"])
        x, stream = initial_noise(noise, cond, shape, seed)
        sigma_max = min(o["sigma_max"], 1.0)
        if init is not None:
            x = init.to(x) * (1 - sigma_max) + x * sigma_max
        t = self.time_grid(o["steps"], sigma_max, o["time_grid"], o["dist_shift"], x.shape[1]).to(x.device)
        model = GuidedModel(backbone, batch_conditions(conditions, x.shape[0]), cfg_scale=o["cfg_scale"],
                            uncond_drop=o["uncond_drop"], negative_conditions=negative_conditions,
                            scale_phi=o["scale_phi"], interval=o["cfg_interval"], sigma_of_time=None, trace=trace)
        if o["method"] == "euler":
            return rf_euler(model, x, t, callback)
        if o["method"] == "dpmpp":
            return rf_dpmpp(model, x, t, callback)
        return rf_pingpong(model, x, t, step_noise_fn(step_noise, stream, x), callback)
