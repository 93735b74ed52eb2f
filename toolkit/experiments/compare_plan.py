"""The comparison harness's plan: which models to train and which variants generate from them (docs/compare.md)."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..models.requests import RequestError

VARIANT_KEYS = {"name", "recipe", "conf", "overrides", "train", "model", "drop_conditions", "description"}
RECIPE_KEYS = {"conf", "generate", "requests", "manifests", "overrides", "description"}
# How a recipe's scripts are called unless its entry gives `args`; {placeholders} are filled in by the runner:
# {out} the file to write, {seconds} {count} {seed} the request set's, {valid} {train} the prepared manifests,
# {data} their folder, {songs} the corpus folder.
REQUEST_ARGS = ("--out", "{out}", "--seconds", "{seconds}", "--limit", "{count}", "--seed", "{seed}",
                "--manifest", "{valid}", "--manifest", "{train}")
MANIFEST_ARGS = ("--data", "{data}", "--songs", "{songs}")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
EGS = Path(__file__).resolve().parents[2] / "egs"


class PlanError(RequestError):
    """A comparison config that cannot be run; the message names the entry and the fix."""


@dataclass
class Script:
    """A recipe's script (request set, manifest fields) and its argument template."""

    path: Path
    args: list[str]

    def command(self, python: str, values: dict[str, Any]) -> list[str]:
        try:
            return [python, str(self.path), *(a.format(**values) for a in self.args)]
        except (KeyError, IndexError) as err:
            raise PlanError(f"{self.path}: argument template {self.args} uses an unknown placeholder {err}; known: "
                            f"{', '.join('{' + k + '}' for k in values)}") from None


@dataclass
class Model:
    """A trained model: recipe config + overrides; several variants may generate from it."""

    name: str
    recipe: str
    conf: Path
    overrides: list[str]
    shared: bool  # a recipe's base model (train: false variants) rather than one variant's own
    own: list[str] = field(default_factory=list)  # what it adds to the common overrides (recipe's + variant's)


@dataclass
class Variant:
    name: str
    recipe: str
    model: str
    overrides: list[str]
    train: bool
    drop_conditions: bool = False
    description: str | None = None
    own: list[str] = field(default_factory=list)  # the variant's own overrides (without the common ones)


@dataclass
class Plan:
    cfg: Any
    conf_path: Path
    exp: Path
    recipes: dict[str, dict[str, Any]]
    models: dict[str, Model] = field(default_factory=dict)
    variants: list[Variant] = field(default_factory=list)
    forwarded: list[str] = field(default_factory=list)


def resolve_path(value: str, conf_dir: Path) -> Path:
    """A path from the compare config: absolute, else beside the config file, else under egs/."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    for base in (conf_dir, EGS):
        if (base / path).exists():
            return (base / path).resolve()
    return (conf_dir / path).resolve()


def split_overrides(cfg, overrides: list[str]) -> tuple[list[str], list[str]]:
    """(overrides of the compare config, overrides forwarded to every model and variant)."""
    from toolkit.config import parse_override

    own, forwarded = [], []
    for text in overrides:
        key, _ = parse_override(text)
        (own if key.split(".")[0] in cfg else forwarded).append(text)
    return own, forwarded


def _string_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise PlanError(f"{where}: give a list of key=value strings, e.g. [sampler.steps=8]")
    bad = [v for v in value if "=" not in v]
    if bad:
        raise PlanError(f"{where}: {bad[0]!r} is not a key=value override")
    return list(value)


def _script(node: Any, default_args: tuple[str, ...], conf_dir: Path, where: str) -> Script | None:
    """A script entry: a path (called with `default_args`) or {script: path, args: [...]}; None when absent."""
    if not node:
        return None
    if isinstance(node, str):
        node = {"script": node}
    if not isinstance(node, dict) or not node.get("script"):
        raise PlanError(f"{where}: give a script path, or {{script: PATH, args: [...]}}")
    path = resolve_path(str(node["script"]), conf_dir)
    if not path.is_file():
        raise PlanError(f"{where}: {path} does not exist")
    args = node.get("args", list(default_args))
    if isinstance(args, str) or not all(isinstance(a, (str, int, float)) for a in args):
        raise PlanError(f"{where}.args: give a list of arguments, e.g. [--out, '{{out}}']")
    return Script(path, [str(a) for a in args])


def make_plan(conf: str | Path, exp: str | Path, overrides: list[str], data: str | None = None) -> Plan:
    """Read the compare config and decide which models to train and which variants use them."""
    from omegaconf import OmegaConf

    from toolkit.config import apply_overrides, load_config

    conf_path = Path(conf).resolve()
    cfg = load_config(conf_path)
    own, forwarded = split_overrides(cfg, overrides)
    cfg = apply_overrides(cfg, own)
    if data:
        cfg = apply_overrides(cfg, [f"corpus.dir={Path(data).resolve()}"])
    cfg = OmegaConf.to_container(cfg, resolve=True)
    conf_dir = conf_path.parent
    recipes = copy.deepcopy(cfg.get("recipes") or {})
    if not recipes:
        raise PlanError(f"{conf_path}: no recipes: section (how to run each recipe: its conf and generate CLI)")
    for name, node in recipes.items():
        if not isinstance(node, dict) or "conf" not in node:
            raise PlanError(f"{conf_path}: recipes.{name} needs a conf: (the recipe's config file)")
        unknown = set(node) - RECIPE_KEYS
        if unknown:
            raise PlanError(f"{conf_path}: recipes.{name}: unknown key(s) {', '.join(sorted(unknown))}; known: "
                            f"{', '.join(sorted(RECIPE_KEYS))}")
        node["conf"] = resolve_path(node["conf"], conf_dir)
        if not node["conf"].is_file():
            raise PlanError(f"recipes.{name}.conf: {node['conf']} does not exist")
        node.setdefault("generate", "toolkit.bin.generate")
        node["requests"] = _script(node.get("requests"), REQUEST_ARGS, conf_dir, f"recipes.{name}.requests")
        node["manifests"] = _script(node.get("manifests"), MANIFEST_ARGS, conf_dir, f"recipes.{name}.manifests")
        node["overrides"] = _string_list(node.get("overrides"), f"recipes.{name}.overrides")
    variants_cfg = cfg.get("variants") or []
    if not variants_cfg:
        raise PlanError(f"{conf_path}: no variants: to compare (a list of {{name, overrides, train}})")
    common = _string_list(cfg.get("common"), "common")
    plan = Plan(cfg=cfg, conf_path=conf_path, exp=Path(exp).resolve(), recipes=recipes, forwarded=forwarded)
    seen: set[str] = set()
    wanted_models: list[tuple[str, str]] = []
    for index, node in enumerate(variants_cfg):
        where = f"variants[{index}]"
        if not isinstance(node, dict) or not node.get("name"):
            raise PlanError(f"{where}: each variant is a mapping with at least a name:")
        name = str(node["name"])
        unknown = set(node) - VARIANT_KEYS
        if unknown:
            raise PlanError(f"{where} ({name}): unknown key(s) {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(sorted(VARIANT_KEYS))}")
        if not NAME_RE.match(name):
            raise PlanError(f"{where}: name {name!r} must be letters, digits, '_', '-' or '.' (it names folders)")
        if name in seen:
            raise PlanError(f"{where}: two variants are named {name!r}")
        seen.add(name)
        recipe = node.get("recipe") or (next(iter(recipes)) if len(recipes) == 1 else None)
        if recipe not in recipes:
            raise PlanError(f"{where} ({name}): recipe {recipe!r} is not under recipes: "
                             f"({', '.join(recipes)})")
        conf_file = resolve_path(node["conf"], conf_dir) if node.get("conf") else recipes[recipe]["conf"]
        if not conf_file.is_file():
            raise PlanError(f"{where} ({name}): conf {conf_file} does not exist")
        own_overrides = _string_list(node.get("overrides"), f"{where} ({name}).overrides")
        base = list(common) + recipes[recipe]["overrides"] + forwarded  # a recipe's own after the common ones
        train = bool(node.get("train", False))
        if train:
            if node.get("model"):
                raise PlanError(f"{where} ({name}): train: true trains the variant's own model; drop model:")
            model = name
            plan.models[model] = Model(model, recipe, conf_file, base + own_overrides, shared=False,
                                       own=recipes[recipe]["overrides"] + own_overrides)
        elif node.get("model"):
            model = str(node["model"])
            wanted_models.append((name, model))
        else:
            model = f"base_{recipe}" if conf_file == recipes[recipe]["conf"] else f"base_{recipe}_{conf_file.stem}"
            plan.models.setdefault(model, Model(model, recipe, conf_file, list(base), shared=True,
                                                own=list(recipes[recipe]["overrides"])))
        plan.variants.append(Variant(name, recipe, model, base + own_overrides, train,
                                     bool(node.get("drop_conditions", False)), node.get("description"),
                                     own_overrides))
    for name, model in wanted_models:
        if model not in plan.models:
            raise PlanError(f"variant {name}: model {model!r} is neither a train: true variant nor a base model "
                             f"({', '.join(plan.models)})")
    return plan


