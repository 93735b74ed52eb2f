"""Rectified-flow conditional flow matching (CFM), the training loss of DiffRhythm and F5-TTS.

For data x1 and noise x0, a time t and the straight path x_t = (1 - t) x0 + t x1, the backbone
predicts the velocity x1 - x0 given x_t, an audio prompt `cond` and the other conditions:

    loss = mean over the loss region (frames x channels) of (backbone(x_t, cond, ...) - (x1 - x0))^2

Span masking. Per item a span of `span_fraction` (default 70-100 %) of its valid frames is "to be
generated": `cond` is zero there and equals x1 elsewhere, so the frames outside the span act as an
audio prompt and editing / continuation is really trained. `loss_region="valid"` scores every valid
frame (DiffRhythm), `"span"` only the span (F5-TTS: the prompt frames are given, so scoring them
teaches nothing). `released=True` reproduces the released DiffRhythm trainer exactly: the span is
drawn and then overwritten by the full valid mask (cond is zero on every valid frame and x1 only on
padding), the loss covers the valid frames, and one drop decision is made for the whole batch.

Random draws. `rng="per_sample"` (default): item i of a batch draws from its own torch.Generator seeded
by a hash of (seed, step, sample_index[i]), so 1 process or N processes (any batch split) give the
same numbers for the same global item. In order, from the item's generator:
    1. u_frac ~ U(0,1)          -> span fraction lo + (hi - lo) * u_frac
    2. u_start ~ U(0,1)         -> span start
    3. time: logit-normal sigmoid(randn(1)) or uniform rand(1)
    4. drop_per="sample": one U(0,1) per drop group in `drop_probs` order, then one for the joint drop
       (only if joint_drop_prob > 0); dropped if u < p.
    5. x0: randn(len_i, D) for the valid frames, then randn(T - len_i, D) for the padding frames.
       Noise comes last and valid frames first, so no draw of an item depends on how much padding
       its batch has.
With drop_per="batch" the uniforms of step 4 come once per batch from the generator keyed
(seed, step, -1), the same on every process. `rng="global"` replays upstream instead: torch's global
generator draws frac = zeros(B).uniform_(lo, hi), rand_like(frac), randn_like(x1), the time
(sigmoid(normal(0, 1, (B,))) or rand(B)), then python `random.random()` per drop group (+ joint);
seeding torch and python `random` before the call reproduces upstream bit for bit.
Any draw can be injected through `draws` (parity tests): "x0" [B,T,D], "time" [B], "span_mask" [B,T]
bool (True = generated), "drop" {group: bool or [B] bool}; injected values skip nothing else (the
remaining draws keep their order).

Normalisation. `loss` = sum of squared errors over the region / (frames x D), where frames is
`num_valid_global` if given (the loss-region frame count of the global batch, for data-parallel runs)
and the local count otherwise. `loss_sum` and `num_loss_frames` are returned for trainers that
all-reduce the count themselves.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..keyed_random import keyed_generator
from ..protocols import Backbone, Objective
from ..registry import OBJECTIVES

TIME_DISTRIBUTIONS = ("logit_normal", "uniform")
LOSS_REGIONS = ("valid", "span")
BATCH_KEY = -1  # sample index of the per-batch generator


def override_draws(drop: Mapping[str, bool] | None = None, time: float | None = None) -> dict | None:
    """`draws` forcing condition drops ({group: bool}) and/or one flow time for the whole batch, as the
    trainer's validation asks (None when nothing is forced)."""
    draws: dict[str, Any] = {}
    if drop:
        draws["drop"] = dict(drop)
    if time is not None:
        if not 0.0 <= float(time) < 1.0:
            raise ValueError(f"a fixed flow time must be in [0, 1), not {time}")
        draws["time"] = torch.tensor(float(time))
    return draws or None


def span_mask(frac: torch.Tensor, u_start: torch.Tensor, lens: torch.Tensor, num_frames: int) -> torch.Tensor:
    """[B, T] bool: frames [start, start + int(frac * len)) with start = int((len - length) * u_start)."""
    lengths = (frac * lens).long()
    start = ((lens - lengths) * u_start).long().clamp(min=0)
    frames = torch.arange(num_frames, device=lens.device)[None, :]
    valid = frames < lens[:, None]
    return (frames >= start[:, None]) & (frames < (start + lengths)[:, None]) & valid


@OBJECTIVES.register("cfm")
class CFMObjective(Objective):
    """Rectified-flow CFM loss: logit-normal/uniform time, span prompts, per-group condition drops.

    Args:
        time_distribution: "logit_normal" (DiffRhythm: sigmoid of N(0,1)) or "uniform" (F5-TTS).
        loss_region: "valid" (all valid frames) or "span" (only the generated span).
        span_fraction: (lo, hi) fraction of an item's valid frames in its generated span.
        drop_probs: {group: probability} of classifier-free-guidance drops; the order is the draw order.
            Default {"audio": 0.3, "lyrics": 0.1, "style": 0.1} (upstream DiffRhythm CFM defaults).
        joint_drop_prob: probability of dropping `joint_drop_groups` together (F5-TTS: 0.2 for audio and
            text), drawn after the per-group uniforms; 0 draws nothing.
        joint_drop_groups: the groups of the joint drop (default: every group of drop_probs).
        drop_per: "sample" (each item decides) or "batch" (one decision for the batch, as upstream).
        released: reproduce the released DiffRhythm trainer (see the module docstring); forces
            loss_region "valid" and drop_per "batch".
        rng: "per_sample" (keyed generators) or "global" (upstream's global-generator draw order).
        seed: base seed of the keyed generators.
        frame_mask_key: if set, conditions[frame_mask_key] = the [B, T] valid-frame mask is passed to
            the backbone (F5-TTS's DiT takes one; DiffRhythm's does not).
    """

    def __init__(self, time_distribution: str = "logit_normal", loss_region: str = "valid",
                 span_fraction: Sequence[float] = (0.7, 1.0), drop_probs: Mapping[str, float] | None = None,
                 joint_drop_prob: float = 0.0, joint_drop_groups: Sequence[str] | None = None,
                 drop_per: str = "sample", released: bool = False, rng: str = "per_sample", seed: int = 0,
                 frame_mask_key: str | None = None):
        super().__init__()
        if time_distribution not in TIME_DISTRIBUTIONS:
            raise ValueError(f"time_distribution must be one of {TIME_DISTRIBUTIONS}, got '{time_distribution}'")
        if loss_region not in LOSS_REGIONS:
            raise ValueError(f"loss_region must be one of {LOSS_REGIONS}, got '{loss_region}'")
        if drop_per not in ("sample", "batch"):
            raise ValueError(f"drop_per must be 'sample' or 'batch', got '{drop_per}'")
        if rng not in ("per_sample", "global"):
            raise ValueError(f"rng must be 'per_sample' or 'global', got '{rng}'")
        lo, hi = (float(v) for v in span_fraction)
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"span_fraction must satisfy 0 <= lo <= hi <= 1, got {span_fraction}")
        self.time_distribution = time_distribution
        self.released = released
        self.loss_region = "valid" if released else loss_region
        self.drop_per = "batch" if released else drop_per
        self.span_fraction = (lo, hi)
        self.drop_probs = dict({"audio": 0.3, "lyrics": 0.1, "style": 0.1} if drop_probs is None else drop_probs)
        self.joint_drop_prob = float(joint_drop_prob)
        self.joint_drop_groups = tuple(joint_drop_groups) if joint_drop_groups is not None else tuple(self.drop_probs)
        self.rng = rng
        self.seed = seed
        self.frame_mask_key = frame_mask_key

    @property
    def drop_groups(self) -> tuple[str, ...]:
        joint = self.joint_drop_groups if self.joint_drop_prob > 0 else ()
        return tuple(dict.fromkeys([*self.drop_probs, *joint]))

    # ----------------------------------------------------------------------------------------- draws
    def _drops_from_uniforms(self, uniforms: torch.Tensor) -> dict[str, torch.Tensor]:
        """uniforms [B, n_groups (+1 joint)] -> {group: [B] bool}."""
        drops = {g: uniforms[:, i] < p for i, (g, p) in enumerate(self.drop_probs.items())}
        if self.joint_drop_prob > 0:
            joint = uniforms[:, len(self.drop_probs)] < self.joint_drop_prob
            for g in self.joint_drop_groups:
                drops[g] = drops[g] | joint if g in drops else joint
        return drops

    def _num_drop_uniforms(self) -> int:
        return len(self.drop_probs) + (1 if self.joint_drop_prob > 0 else 0)

    def _draw_per_sample(self, x1: torch.Tensor, lens: torch.Tensor, step: int,
                         sample_index: torch.Tensor) -> dict[str, Any]:
        b, t, d = x1.shape
        lo, hi = self.span_fraction
        n_drop = self._num_drop_uniforms()
        frac, u_start, times, noises, uniforms = [], [], [], [], []
        for i in range(b):
            g = keyed_generator("cfm", self.seed, step, int(sample_index[i]))
            frac.append(lo + (hi - lo) * torch.rand(1, generator=g))
            u_start.append(torch.rand(1, generator=g))
            if self.time_distribution == "logit_normal":
                times.append(torch.sigmoid(torch.randn(1, generator=g)))
            else:
                times.append(torch.rand(1, generator=g))
            if self.drop_per == "sample":
                uniforms.append(torch.rand(1, n_drop, generator=g))
            n = min(int(lens[i]), t)
            noises.append(torch.cat([torch.randn(n, d, generator=g), torch.randn(t - n, d, generator=g)]))
        if self.drop_per == "batch":
            g = keyed_generator("cfm", self.seed, step, BATCH_KEY)
            uniforms = [torch.rand(1, n_drop, generator=g).expand(b, n_drop)]
        dev = x1.device
        return {"frac": torch.cat(frac).to(dev), "u_start": torch.cat(u_start).to(dev),
                "x0": torch.stack(noises).to(device=dev, dtype=x1.dtype), "time": torch.cat(times).to(dev),
                "drop": {k: v.to(dev) for k, v in self._drops_from_uniforms(torch.cat(uniforms)).items()}}

    def _draw_global(self, x1: torch.Tensor) -> dict[str, Any]:
        b = x1.shape[0]
        lo, hi = self.span_fraction
        frac = torch.zeros(b, device=x1.device).uniform_(lo, hi)
        u_start = torch.rand_like(frac)
        x0 = torch.randn_like(x1)
        if self.time_distribution == "logit_normal":
            time = torch.normal(mean=0.0, std=1.0, size=(b,), device=x1.device).sigmoid()
        else:
            time = torch.rand(b, device=x1.device)
        rows = 1 if self.drop_per == "batch" else b
        # python `random`, group after group (each group's decisions for all items, then the next group)
        cols = [[random.random() for _ in range(rows)] for _ in range(self._num_drop_uniforms())]
        uniforms = torch.tensor(cols, dtype=torch.float64).T.expand(b, -1) if cols else torch.zeros(b, 0)
        drops = self._drops_from_uniforms(uniforms)
        return {"frac": frac, "u_start": u_start, "x0": x0, "time": time,
                "drop": {k: v.to(x1.device) for k, v in drops.items()}}

    # --------------------------------------------------------------------------------------- forward
    def target(self, x1: torch.Tensor, x0: torch.Tensor, x_t: torch.Tensor, cond: torch.Tensor, time: torch.Tensor,
               drop: Mapping[str, torch.Tensor], valid: torch.Tensor, extra: Mapping[str, Any]) -> torch.Tensor:
        """What the backbone learns to predict at x_t: the straight path's velocity x1 - x0."""
        if extra:
            raise TypeError(f"the {type(self).__name__} objective takes no {sorted(extra)}")
        return x1 - x0

    def forward(self, backbone: Backbone, x1: torch.Tensor, conditions: Mapping[str, torch.Tensor],
                lens: torch.Tensor, *, step: int = 0, sample_index: torch.Tensor | None = None,
                num_valid_global: int | torch.Tensor | None = None,
                draws: Mapping[str, Any] | None = None, **extra: Any) -> dict[str, torch.Tensor]:
        """x1 [B, T, D] clean latents, lens [B] valid frames -> {"loss", "loss_sum", "num_loss_frames",
        "pred", "target", "cond", "x_t", "x0", "time", "span_mask", "drop"}.

        step: the optimiser step (keys the per-sample draws); sample_index: [B] global indices of the
        items (default arange(B); give rank * local_batch + arange(B) or dataset indices under DDP);
        extra: what a subclass's `target` needs (a teacher); the plain objective takes none.
        """
        b, t, d = x1.shape
        lens = lens.to(x1.device)
        if sample_index is None:
            sample_index = torch.arange(b)
        drawn = self._draw_global(x1) if self.rng == "global" else self._draw_per_sample(x1, lens, step, sample_index)
        draws = dict(draws or {})
        x0 = draws.get("x0", drawn["x0"]).to(device=x1.device, dtype=x1.dtype)
        time = torch.as_tensor(draws.get("time", drawn["time"])).to(device=x1.device, dtype=x1.dtype).expand(b)
        drop = dict(drawn["drop"])
        for group, flag in (draws.get("drop") or {}).items():
            drop[group] = torch.as_tensor(flag, dtype=torch.bool, device=x1.device).expand(b)

        valid = torch.arange(t, device=x1.device)[None, :] < lens[:, None]
        if "span_mask" in draws:
            span = draws["span_mask"].to(device=x1.device, dtype=torch.bool)
        else:
            span = span_mask(drawn["frac"], drawn["u_start"], lens, t)
        if self.released:
            span = valid  # upstream computes the random span, then overwrites it with the full mask

        cond = torch.where(span[..., None], torch.zeros_like(x1), x1)
        tt = time[:, None, None]
        x_t = (1 - tt) * x0 + tt * x1
        if self.frame_mask_key is not None:
            conditions = {**conditions, self.frame_mask_key: valid}
        target = self.target(x1, x0, x_t, cond, time, drop, valid, extra)
        pred = backbone(x_t, cond, conditions, time, drop)

        region = valid if self.loss_region == "valid" else span
        err = torch.nn.functional.mse_loss(pred.float(), target.float(), reduction="none")[region]
        loss_sum = err.sum()
        count = region.sum()
        if num_valid_global is None:
            loss = err.mean() if err.numel() else loss_sum * 0.0
        else:
            loss = loss_sum / (torch.as_tensor(num_valid_global, device=x1.device) * d)
        return {"loss": loss, "loss_sum": loss_sum, "num_loss_frames": count, "pred": pred, "target": target,
                "cond": cond, "x_t": x_t, "x0": x0, "time": time, "span_mask": span, "drop": drop}
