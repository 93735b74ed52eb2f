"""The v-diffusion and rectified-flow training losses of Stable Audio Open (stable-audio-tools' training step).

For clean latents x, noise n and a noise level t in [0, 1] (t = 1 pure noise):
  * v ("v_diffusion", Stable Audio Open 1.0): alpha, sigma = cos(t pi/2), sin(t pi/2);
    x_t = alpha x + sigma n, target = alpha n - sigma x.
  * rectified flow ("rectified_flow", Small's rf_denoiser): alpha, sigma = 1 - t, t; x_t = (1 - t) x + t n,
    target = n - x. This is the toolkit's CFM path read backwards: with tau = 1 - t, x0 = n, x1 = x, CFM's
    x_tau = (1 - tau) x0 + tau x1 is the same point and its velocity x1 - x0 is minus this target. The
    objective stays separate from `cfm` because everything else differs: no audio-prompt span, upstream's
    time distributions and length shift, condition dropout inside the backbone's inputs.
loss = mean of (backbone(x_t, t) - target)^2 over every element, or over the valid frames only with
`mask_padding` (upstream's MSELoss with a padding mask).

Random draws (rng per item, like `cfm`: item i draws from keyed_generator("noising", seed, step, index[i])):
  1. its time draw (U(0, 1) for "uniform", N(0, 1) for the normal-based distributions; none for "sobol",
     whose batch of times comes from a scrambled Sobol engine seeded from (seed, step));
  2. one U(0, 1) per drop input in `drop_probs` order (dropped if u < p; upstream: bernoulli(p) for
     cross_attn, then for prepend, only for inputs that are present);
  3. noise: randn(len_i, D) for the valid frames, then randn(T - len_i, D).
Per batch (generator keyed (seed, step, -1)): the padding-mask dropout uniform (only with mask_padding).
Then the time distribution's transform and, if configured, the DistributionShift for the padded length T.
Any draw can be injected through `draws`: "time" [B] (final, after the shift), "noise" [B, T, D],
"drop" {input: bool or [B] bool}, "mask_padding" bool.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch.nn import functional as F

from ..keyed_random import keyed_generator, keyed_seed
from ..protocols import Backbone, Objective
from ..registry import OBJECTIVES
from .diffusion_times import NORMAL_DRAWS, TIME_DISTRIBUTIONS, DistributionShift, sobol_uniform, times_from_draws
from .guidance import present_groups

PATHS = ("v", "rectified_flow")
BATCH_KEY = -1
DEFAULT_DROPS = {"cross_attn": 0.1, "prepend": 0.1}  # upstream cfg_dropout_prob 0.1 on both token inputs


def alphas_sigmas(path: str, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The data and noise scales at noise level t."""
    if path == "v":
        return torch.cos(t * math.pi / 2), torch.sin(t * math.pi / 2)
    if path == "rectified_flow":
        return 1 - t, t
    raise ValueError(f"unknown noising path {path!r}; choose one of {PATHS}")


def noised_and_target(path: str, x: torch.Tensor, noise: torch.Tensor,
                      t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x, noise [B, ...], t [B] -> (x_t, regression target) as upstream computes them."""
    alphas, sigmas = alphas_sigmas(path, t)
    alphas = alphas.view(-1, *([1] * (x.dim() - 1)))
    sigmas = sigmas.view(-1, *([1] * (x.dim() - 1)))
    noised = x * alphas + noise * sigmas
    target = noise * alphas - x * sigmas if path == "v" else noise - x
    return noised, target


def squared_errors(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """The squared errors of every element, or of the elements of valid [B, T] frames (flat)."""
    err = F.mse_loss(pred.float(), target.float(), reduction="none")
    return err.flatten() if valid is None else err[valid[..., None].expand_as(err)]


def masked_mse(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Mean squared error over all elements, or over the elements of valid [B, T] frames (upstream's MSELoss)."""
    return squared_errors(pred, target, valid).mean()


class NoisingObjective(Objective):
    """Shared body of the v and rectified-flow objectives (`path` set by the registered subclasses)."""

    path = "v"
    default_time = "sobol"

    def __init__(self, time_distribution: str | None = None, drop_probs: Mapping[str, float] | None = None,
                 dist_shift: Mapping[str, Any] | None = None, mask_padding: bool = False,
                 mask_padding_dropout: float = 0.0, trunc_left: float = 0.075, log_snr_mean: float = -1.2,
                 log_snr_std: float = 2.0, seed: int = 0):
        super().__init__()
        time_distribution = time_distribution or self.default_time
        if time_distribution not in TIME_DISTRIBUTIONS:
            raise ValueError(f"time_distribution must be one of {TIME_DISTRIBUTIONS}, got {time_distribution!r}")
        self.time_distribution = time_distribution
        self.drop_probs = dict(DEFAULT_DROPS if drop_probs is None else drop_probs)
        self.shift = DistributionShift(**dict(dist_shift)) if dist_shift else None
        self.mask_padding, self.mask_padding_dropout = bool(mask_padding), float(mask_padding_dropout)
        self.time_kwargs = {"trunc_left": trunc_left, "log_snr_mean": log_snr_mean, "log_snr_std": log_snr_std}
        self.seed = seed

    @property
    def drop_groups(self) -> tuple[str, ...]:
        """What `drop_probs` drops: a bare backbone's input names, or a recipe's drop groups."""
        return tuple(self.drop_probs)

    def _draw(self, x1: torch.Tensor, lens: torch.Tensor, step: int, index: torch.Tensor) -> dict[str, Any]:
        b, t, d = x1.shape
        raw, uniforms, noises = [], [], []
        for i in range(b):
            g = keyed_generator("noising", self.seed, step, int(index[i]))
            if self.time_distribution == "uniform":
                raw.append(torch.rand(1, generator=g))
            elif self.time_distribution in NORMAL_DRAWS:
                raw.append(torch.randn(1, generator=g))
            uniforms.append(torch.rand(1, len(self.drop_probs), generator=g))
            n = min(int(lens[i]), t)
            noises.append(torch.cat([torch.randn(n, d, generator=g), torch.randn(t - n, d, generator=g)]))
        if self.time_distribution == "sobol":
            raw_t = sobol_uniform(b, keyed_seed("noising-sobol", self.seed, step))
        else:
            raw_t = torch.cat(raw)
        time = times_from_draws(self.time_distribution, raw_t, **self.time_kwargs)
        if self.shift is not None:
            time = self.shift.time_shift(time, t)
        uniforms = torch.cat(uniforms)
        drop = {name: uniforms[:, k] < p for k, (name, p) in enumerate(self.drop_probs.items())}
        use_mask = self.mask_padding
        if use_mask and self.mask_padding_dropout > 0:
            u = torch.rand(1, generator=keyed_generator("noising", self.seed, step, BATCH_KEY))
            use_mask = bool(u > self.mask_padding_dropout)  # upstream: random.random() > mask_padding_dropout
        dev = x1.device
        return {"time": time.to(dev), "noise": torch.stack(noises).to(device=dev, dtype=x1.dtype),
                "drop": {k: v.to(dev) for k, v in drop.items()}, "mask_padding": use_mask}

    def forward(self, backbone: Backbone, x1: torch.Tensor, conditions: Mapping[str, torch.Tensor],
                lens: torch.Tensor, *, step: int = 0, sample_index: torch.Tensor | None = None,
                num_valid_global: int | torch.Tensor | None = None,
                draws: Mapping[str, Any] | None = None) -> dict[str, torch.Tensor]:
        """x1 [B, T, D] clean latents, lens [B] valid frames -> {"loss", "loss_sum", "num_loss_frames", "pred",
        "target", "x_t", "noise", "time", "drop", "valid"} (valid: the [B, T] mask the loss used, or None).

        num_valid_global: the valid frames of the whole (multi-process, all micro-batches) step, as the trainer
        counts them: a masked loss is its sum / (frames x D) as in `cfm`; the unmasked loss, upstream's local mean,
        is weighted by this batch's share of those frames, so the sum the trainer forms is the step's mean.
        """
        b, t, _ = x1.shape
        lens = lens.to(x1.device)
        index = torch.arange(b) if sample_index is None else sample_index
        drawn = self._draw(x1, lens, step, index)
        draws = dict(draws or {})
        time = torch.as_tensor(draws.get("time", drawn["time"])).to(device=x1.device, dtype=x1.dtype).expand(b)
        noise = draws.get("noise", drawn["noise"]).to(device=x1.device, dtype=x1.dtype)
        drop = dict(drawn["drop"])
        for name, flag in (draws.get("drop") or {}).items():
            drop[name] = torch.as_tensor(flag, dtype=torch.bool, device=x1.device).expand(b)
        present = present_groups(backbone, conditions)  # inputs given (bare backbone) or groups (routed)
        drop = {name: flags for name, flags in drop.items() if name in present}
        use_mask = bool(draws.get("mask_padding", drawn["mask_padding"]))

        x_t, target = noised_and_target(self.path, x1, noise, time)
        pred = backbone(x_t, torch.zeros_like(x1), conditions, time, drop)
        valid = (torch.arange(t, device=x1.device)[None, :] < lens[:, None]) if use_mask else None
        err = squared_errors(pred, target, valid)
        frames = valid.sum() if valid is not None else torch.tensor(b * t, device=x1.device)
        if valid is not None and num_valid_global is not None:
            loss = err.sum() / (torch.as_tensor(num_valid_global, device=x1.device) * x1.shape[2])
        else:
            loss = err.mean() if err.numel() else err.sum()
            if num_valid_global is not None:  # this batch's share of the global frames: summed over processes and
                # micro-batches (as the trainer sums them) the losses give the frame-weighted mean
                loss = loss * lens.sum() / torch.as_tensor(num_valid_global, device=x1.device)
        return {"loss": loss, "loss_sum": err.sum(), "num_loss_frames": frames, "pred": pred, "target": target,
                "x_t": x_t, "noise": noise, "time": time, "drop": drop, "valid": valid}


@OBJECTIVES.register("v_diffusion")
class VDiffusionObjective(NoisingObjective):
    """v-prediction diffusion loss of Stable Audio Open 1.0 (cos/sin schedule; default times: Sobol uniform)."""

    path = "v"
    default_time = "sobol"


@OBJECTIVES.register("rectified_flow")
class RectifiedFlowObjective(NoisingObjective):
    """Rectified-flow loss of Stable Audio Open Small (t = 1 noise; default times: truncated logit-normal)."""

    path = "rectified_flow"
    default_time = "trunc_logit_normal"
