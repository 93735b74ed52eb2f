"""Which model a front end serves: a toolkit checkpoint (`--ckpt`, it carries its config and so its recipe) or
a folder of published files (`--pretrained`, claimed by the recipe whose files it holds)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..checkpoints import check_ours, read_file, strip_ema
from ..config import apply_overrides, to_plain
from ..io import sha256_prefix
from ..models.requests import RequestError
from ..registry import CODECS, RECIPES, split_node
from ..weights import load_strict

EMA_CHOICES = ("auto", "yes", "no")


class SourceError(RequestError):
    """A model source that cannot be served (missing, of another recipe, ambiguous)."""


@dataclass
class ModelSource:
    recipe_cls: type
    cfg: Any
    kind: str                               # "ckpt" or "pretrained"
    path: Path                              # the main weights file
    files: dict[str, Path] = field(default_factory=dict)    # other weight files (hashed into the manifest)
    folders: dict[str, Path] = field(default_factory=dict)  # weight folders (recorded by path)
    payload: Mapping[str, Any] | None = None                # our checkpoint's contents (memory-mapped)
    info: dict[str, Any] = field(default_factory=dict)      # e.g. the published variant
    weights: str | None = None              # "ema" or "model" once built

    @property
    def recipe(self) -> str:
        return str(self.cfg.get("recipe"))

    def record(self) -> dict[str, Any]:
        """What a manifest says about the model: files with content hashes, folders, the weights used."""
        out = {"kind": self.kind, "path": str(self.path.resolve()), "sha256": sha256_prefix(self.path),
               "recipe": self.recipe}
        if self.files:
            out["files"] = {k: {"path": str(p.resolve()), "sha256": sha256_prefix(p)} for k, p in self.files.items()}
        if self.folders:
            out["folders"] = {k: str(p.resolve()) for k, p in self.folders.items()}
        if self.info:
            out.update(self.info)
        if self.weights:
            out["weights"] = self.weights
        return out


def recipe_class(name: str) -> type:
    cls = RECIPES.get(name)
    if not hasattr(cls, "request_type"):
        raise SourceError(f"recipe '{name}' declares no request type: it cannot generate")
    return cls


def generating_recipes() -> list[str]:
    return [n for n in RECIPES.names() if hasattr(RECIPES.get(n), "request_type")]


def from_checkpoint(path: str | Path, overrides: Sequence[str], ema: str = "auto",
                    recipe: str | None = None) -> ModelSource:
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"checkpoint {path} does not exist")
    payload = check_ours(read_file(path), path)
    if "config" not in payload or "model_state_dict" not in payload:
        raise SourceError(f"{path} lacks its config or weights: not a complete toolkit checkpoint")
    if ema == "yes" and "ema_model_state_dict" not in payload:
        raise SourceError(f"{path} has no EMA weights: use --ema no (or auto)")
    from omegaconf import OmegaConf

    cfg = apply_overrides(OmegaConf.create(payload["config"]), overrides)
    found = cfg.get("recipe")
    if recipe is not None and found != recipe:
        raise SourceError(f"{path} is a checkpoint of the '{found}' recipe, not '{recipe}': drop the recipe name or "
                          f"give a {recipe} checkpoint")
    return ModelSource(recipe_class(found), cfg, "ckpt", path, payload=payload, info={"ema": ema})


def recipe_name(cls: type) -> str:
    return next(n for n in RECIPES.names() if RECIPES.get(n) is cls)


def from_folder_recipe(folder: str | Path) -> type:
    """The recipe whose published files `folder` holds (exactly one must claim it)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SourceError(f"--pretrained {folder} is not a folder; put the published files in one (docs/generate.md)")
    claims = [n for n in generating_recipes() if recipe_class(n).is_pretrained_folder(folder)]
    if len(claims) == 1:
        return recipe_class(claims[0])
    if claims:
        raise SourceError(f"--pretrained {folder} holds the files of several recipes ({', '.join(claims)}): name "
                          f"the recipe first, e.g. `toolkit-generate {claims[0]} --pretrained {folder} ...`")
    wanted = []  # what each recipe would need: its own message names the files and where they are published
    for name in generating_recipes():
        try:
            recipe_class(name).pretrained_config(folder, {}, None)
        except NotImplementedError:
            continue
        except (RequestError, ValueError, FileNotFoundError) as err:
            wanted.append(f"[{name}] {err}")
    raise SourceError(f"--pretrained {folder} holds no recipe's published files. " + " ".join(wanted))


def from_folder(folder: str | Path, overrides: Sequence[str], options: Mapping[str, Any], first_request: Any = None,
                recipe: str | None = None) -> ModelSource:
    folder = Path(folder)
    cls = recipe_class(recipe) if recipe is not None else from_folder_recipe(folder)
    if not folder.is_dir():
        raise SourceError(f"--pretrained {folder} is not a folder; put the published files in one (docs/generate.md)")
    raw, found = cls.pretrained_config(folder, options, first_request)
    from omegaconf import OmegaConf

    cfg = apply_overrides(OmegaConf.create(raw), overrides)
    info = {k: v for k, v in found.items() if k not in ("path", "files", "folders")}
    return ModelSource(cls, cfg, "pretrained", Path(found["path"]), files=dict(found.get("files", {})),
                       folders=dict(found.get("folders", {})), info=info)


def codec_takes(cfg: Any, argument: str) -> bool:
    """Whether the configured codec's constructor has `argument` (e.g. `chunked`)."""
    import inspect

    name, _ = split_node(cfg["codec"], "codec")
    return argument in inspect.signature(CODECS.get(name).__init__).parameters


def build(source: ModelSource, device: torch.device, dtype: torch.dtype,
          codec_dtype: torch.dtype = torch.float32) -> Any:
    """The recipe with its weights, in eval mode on `device` (the trainable part in `dtype`, the codec computing
    in `codec_dtype`)."""
    if source.kind == "pretrained":
        recipe = source.recipe_cls.load_pretrained(source.cfg, source.info | {"path": source.path})
        source.weights = "published"
    else:
        from ..models.factory import build_recipe

        recipe = build_recipe(source.cfg)
        payload = source.payload
        use_ema = "ema_model_state_dict" in payload and source.info.get("ema") != "no"
        state = strip_ema(payload["ema_model_state_dict"]) if use_ema else payload["model_state_dict"]
        load_strict(recipe, state, source=str(source.path))
        source.weights = "ema" if use_ema else "model"
    recipe.eval()
    recipe.to_device(device, dtype)
    try:
        recipe.codec.set_compute_dtype(codec_dtype)
    except ValueError as err:
        raise SourceError(f"--codec-dtype: {err}") from None
    for conditioner in recipe.conditions.values():  # models a conditioner loads itself run beside the DiT
        if isinstance(getattr(conditioner, "device", None), torch.device):
            conditioner.device = device
    return recipe


def plain_config(source: ModelSource) -> dict[str, Any]:
    return to_plain(source.cfg)
