"""Build a recipe from a config: the one place that turns `recipe: name` + component nodes into a model."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..registry import RECIPES

# Top-level sections that configure the run around the recipe, not the recipe itself.
RUN_SECTIONS = ("recipe", "train", "data", "generate", "evaluate", "extract")


def recipe_kwargs(cfg: DictConfig | dict) -> dict[str, Any]:
    plain = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    return {k: v for k, v in plain.items() if k not in RUN_SECTIONS}


def build_recipe(cfg: DictConfig | dict, **extra: Any):
    """`cfg.recipe` names the recipe; every other non-run section is a constructor argument."""
    name = cfg["recipe"] if "recipe" in cfg else None
    if name is None:
        raise ValueError("the config names no recipe: add `recipe: diffrhythm` (or another registered recipe)")
    recipe = RECIPES.build(name, **recipe_kwargs(cfg), **extra)
    recipe.config = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    return recipe
