"""The frozen teacher of a distillation objective: a copy of the recipe with the teacher's weights.

A copy of the whole recipe (not only its backbone) so that the teacher computes its condition values with its
own conditioners too. It is held here, outside the module tree (`FlowRecipe.teacher_recipe` asks for it): it
never enters the student's state dict, parameters, EMA or optimiser, a deep copy of the student (the trainer's
EMA model) shares it, and it is loaded from its file again after a resume (the student has moved on; the
teacher has not).
"""

from __future__ import annotations

import copy
import weakref
from pathlib import Path
from typing import Any

from ..checkpoints import read_weights
from ..weights import load_strict

# One teacher per (file, weights, architecture) in a process: the trainer's EMA copy of the student asks for the
# same teacher as the student (at the released size a teacher is 4.4 GB in fp32). Each recipe's answer is kept
# weakly by recipe, so a training step costs one lookup (not a state-dict walk and a file stat).
_LOADED: dict[tuple, Any] = {}
_BY_RECIPE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def frozen_teacher(recipe: Any, path: str, use_ema: bool = True) -> Any:
    """A copy of `recipe` holding the weights of `path` (strictly: same keys and shapes), in eval mode, frozen;
    shared with every recipe of the same architecture that asks for the same file. Read once per process: the
    teacher of a run does not change under it."""
    asked = (str(path), use_ema)
    known = _BY_RECIPE.get(recipe)
    if known is not None and known[0] == asked:
        return known[1]
    architecture = tuple((name, tuple(value.shape)) for name, value in recipe.state_dict().items())
    key = (str(Path(path).resolve()), use_ema, architecture)
    if key not in _LOADED:
        _LOADED.clear()  # one teacher at a time: a new file replaces the old one
        _LOADED[key] = _load(recipe, path, use_ema)
    _BY_RECIPE[recipe] = (asked, _LOADED[key])
    return _LOADED[key]


def _load(recipe: Any, path: str, use_ema: bool) -> Any:
    state = read_weights(path, prefer_ema=use_ema)
    teacher = copy.deepcopy(recipe)
    load_strict(teacher, state, source=f"objective.teacher={path}",
                hint="the teacher must have the student's architecture (the same config)")
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher
