"""Layers point down: every import statement in toolkit/ (inside functions too) is checked against the layers.

  components  modules, backbones, objectives, codecs, conditioners, conditions, training, data, eval
              (and the top-level helpers) never import toolkit.models, toolkit.generation, toolkit.experiments
              or toolkit.bin; data/ and eval/ do not import conditioners/ (file formats live outside them);
  recipes     toolkit/models/<recipe>/ never imports another recipe, nor generation, experiments or bin;
  serving     toolkit.generation, toolkit.experiments and toolkit.app (the web app) never import toolkit.bin;
  CLIs        only toolkit/bin imports toolkit.bin.
Also: no file in toolkit/bin is over 300 lines, and no recipe's name appears in toolkit/bin.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from golden import REPO_ROOT

TOOLKIT = REPO_ROOT / "toolkit"
COMPONENTS = ("modules", "backbones", "objectives", "codecs", "conditioners", "conditions", "training", "data",
              "eval")
SERVING = ("generation", "experiments", "app")
ABOVE_COMPONENTS = ("models", *SERVING, "bin")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            if node.module is None:  # from . import x
                found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, target))
    return [(line, name) for line, name in found if name == "toolkit" or name.startswith("toolkit.")]


def layer_of(module: str) -> tuple[str, str | None]:
    """('components' | 'models' | 'generation' | 'experiments' | 'app' | 'bin' | 'top', the sub-package)."""
    parts = module.split(".")
    if len(parts) < 2:
        return "top", None
    first = parts[1]
    if first == "models":
        return "models", parts[2] if len(parts) > 2 else None
    if first in (*SERVING, "bin"):
        return first, None
    return "components", first


def violation(source: str, target: str) -> str | None:
    src_layer, src_sub = layer_of(source)
    dst_layer, dst_sub = layer_of(target)
    if dst_layer == "bin" and src_layer != "bin":
        return "only toolkit/bin imports toolkit.bin"
    if src_layer in ("components", "top") and dst_layer in ABOVE_COMPONENTS:
        return "a component imports a recipe, the serving layer or a CLI"
    if src_layer == "components" and src_sub in ("data", "eval") and dst_sub == "conditioners":
        return "data/ and eval/ do not import conditioners/"
    if src_layer == "models" and dst_layer in SERVING:
        return "a recipe imports the serving layer"
    if src_layer == "models" and dst_layer == "models" and src_sub and dst_sub and src_sub != dst_sub:
        shared = {"base", "requests", "factory"}
        if src_sub not in shared and dst_sub not in shared:
            return "one recipe imports another"
    if src_layer in SERVING and dst_layer == "bin":
        return "the serving layer imports a CLI"
    return None


def all_violations(root: Path = TOOLKIT) -> list[str]:
    out = []
    for path in sorted(root.rglob("*.py")):
        source = module_name(path)
        for line, target in imports_of(path):
            why = violation(source, target)
            if why:
                out.append(f"{path.relative_to(REPO_ROOT)}:{line}: {source} imports {target}: {why}")
    return out


def test_layers_point_down():
    bad = all_violations()
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("source, target, expected", [
    ("toolkit.data.dataset", "toolkit.conditioners.lyrics_lrc", "data/ and eval/"),
    ("toolkit.eval.songs", "toolkit.models.diffrhythm.recipe", "a component imports"),
    ("toolkit.models.f5tts.recipe", "toolkit.models.diffrhythm.checkpoints", "one recipe imports another"),
    ("toolkit.models.f5tts.recipe", "toolkit.bin.common", "only toolkit/bin"),
    ("toolkit.generation.runner", "toolkit.bin.common", "only toolkit/bin"),
    ("toolkit.codecs.oobleck", "toolkit.generation.sources", "a component imports"),
    ("toolkit.app.ui", "toolkit.bin.common", "only toolkit/bin"),
    ("toolkit.models.diffrhythm.recipe", "toolkit.app.service", "a recipe imports the serving layer"),
    ("toolkit.eval.songs", "toolkit.app.jobs", "a component imports"),
])
def test_the_checker_catches_each_kind_of_violation(source, target, expected):
    assert expected in (violation(source, target) or "")


def test_imports_inside_functions_and_relative_imports_are_seen(tmp_path):
    pkg = tmp_path / "toolkit" / "data"
    pkg.mkdir(parents=True)
    (pkg / "x.py").write_text("def f():\n    from ..conditioners import lyrics_lrc\n    from ..models import base\n")
    names = {name for _, name in imports_of_rooted(pkg / "x.py", tmp_path)}
    assert names == {"toolkit.conditioners", "toolkit.models"}


def imports_of_rooted(path: Path, root: Path) -> list[tuple[int, str]]:
    global REPO_ROOT
    saved, REPO_ROOT = REPO_ROOT, root
    try:
        return imports_of(path)
    finally:
        REPO_ROOT = saved


def test_cli_files_are_thin_and_name_no_recipe():
    from toolkit.registry import RECIPES

    names = RECIPES.names()
    for path in sorted((TOOLKIT / "bin").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        assert len(text.splitlines()) <= 300, f"{path.name} has {len(text.splitlines())} lines (at most 300)"
        for name in names:
            assert name not in text.lower(), f"{path.name} names the recipe {name!r}"
