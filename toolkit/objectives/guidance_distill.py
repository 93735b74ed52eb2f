"""Guidance distillation: a flow model that gives in ONE pass what its teacher gives with classifier-free guidance.

Sampling a guided flow model costs two evaluations per velocity (conditional and unconditional). Following
the first stage of Meng et al. 2023 ("On Distillation of Guided Diffusion Models"), for one fixed guidance
strength w the student learns the teacher's guided velocity

    target = v_c + (v_c - v_u) * w          (the flow sampler's rule, cfg_strength = w)

at the same noisy latent x_t, audio prompt, conditions and flow time the CFM objective draws (its span
prompts, audio-prompt drops and time distribution), where v_c and v_u are the frozen teacher's conditional
and unconditional velocities (the unconditional half drops `uncond_drop` and sees the recipe's negative
conditions, exactly as guidance at sampling does). The student has the teacher's architecture and keys; it
is sampled unguided (`sampler.cfg_strength=0`): half the evaluations of the teacher at the same grid.

The teacher's weights come from `teacher` (a toolkit checkpoint or a published file, as train.init_from
reads them); the recipe loads them into a frozen copy of itself at the first training step
(toolkit.models.teacher) and passes it in as `teacher`, with its condition values and negatives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..registry import OBJECTIVES
from .cfm import CFMObjective
from .samplers import guidance_batch


@OBJECTIVES.register("cfm_guidance_distill")
class GuidanceDistillObjective(CFMObjective):
    """CFM draws, the teacher's guided velocity as the target.

    Args:
        teacher: path of the teacher's weights (required).
        cfg_strength: the guidance strength baked into the student (the teacher's sampler.cfg_strength).
        uncond_drop: the groups guidance's unconditional half drops (the teacher's sampler.uncond_drop).
        teacher_use_ema: from a trainer checkpoint, the teacher is its EMA weights.
        drop_probs: the CFM drops the student sees; by default only the audio prompt is dropped (songs with
            and without a reference), never lyrics or style: the student is always the guided model.
        other arguments: CFMObjective's.
    """

    def __init__(self, teacher: str | None = None, cfg_strength: float = 4.0,
                 uncond_drop: Sequence[str] = ("audio", "lyrics"), teacher_use_ema: bool = True,
                 drop_probs: Mapping[str, float] | None = None, **cfm: Any):
        super().__init__(drop_probs={"audio": 0.3} if drop_probs is None else drop_probs, **cfm)
        if not teacher:
            raise ValueError("cfm_guidance_distill needs objective.teacher: the weights of the guided model to "
                             "distil (a toolkit checkpoint or a published cfm_model.pt)")
        if float(cfg_strength) <= 0:
            raise ValueError(f"objective.cfg_strength must be > 0 (the guidance to distil), got {cfg_strength}")
        self.teacher = str(teacher)
        self.teacher_use_ema = bool(teacher_use_ema)
        self.cfg_strength = float(cfg_strength)
        self.uncond_drop = tuple(uncond_drop)

    @property
    def drop_groups(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([*super().drop_groups, *self.uncond_drop]))

    def target(self, x1, x0, x_t, cond, time, drop, valid, extra: Mapping[str, Any]) -> torch.Tensor:
        missing = {"teacher", "teacher_conditions"} - set(extra)
        if missing:
            raise TypeError(f"cfm_guidance_distill needs {sorted(missing)} from its recipe (FlowRecipe.training_step)")
        teacher, values = extra["teacher"], dict(extra["teacher_conditions"])
        negative = dict(extra.get("negative_conditions") or {})
        if self.frame_mask_key is not None:
            values[self.frame_mask_key] = valid
        with torch.no_grad():
            prompt, both, flags = guidance_batch(cond, values, negative, self.uncond_drop, drop)
            v, u = teacher(torch.cat([x_t, x_t]), prompt, both, torch.cat([time, time]), flags).chunk(2)
            return v + (v - u) * self.cfg_strength
