"""The frozen teacher of a distillation objective: a copy of the recipe with the teacher's weights.

A copy of the whole recipe (not only its backbone) so that the teacher computes its condition values with its
own conditioners too. It is held outside the module tree (`FlowRecipe.teacher_recipe`): it never enters the
student's state dict, parameters, EMA or optimiser, and it is loaded from its file again after a resume (the
student has moved on; the teacher has not).
"""

from __future__ import annotations

import copy
from typing import Any

from ..checkpoints import read_weights
from ..weights import load_strict


def frozen_teacher(recipe: Any, path: str, use_ema: bool = True) -> Any:
    """A copy of `recipe` holding the weights of `path` (strictly: same keys and shapes), in eval mode, frozen."""
    state = read_weights(path, prefer_ema=use_ema)
    teacher = copy.deepcopy(recipe)
    load_strict(teacher, state, source=f"objective.teacher={path}",
                hint="the teacher must have the student's architecture (the same config)")
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher
