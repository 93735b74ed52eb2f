"""OmegaConf configs: `_base_` inheritance, command-line `key=value` overrides, atomic dumps.

`_base_: [a.yaml, b.yaml]` (paths relative to the file, or `toolkit:<path>` for a preset shipped in the
package) merge left to right, then the file itself, then overrides. An override that sets a node's type
(`codec=dac`, or `codec.type=dac`) replaces the
whole node, so arguments of the old component do not leak into the new one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf

from .io import atomic_write_text

BASE_KEY = "_base_"
PACKAGE_PREFIX = "toolkit:"


class _Loader(yaml.SafeLoader):
    """YAML with 1.2-style floats: `1e-4` is a number, not the string PyYAML 1.1 rules make of it."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|\.[0-9_]+(?:[eE][-+]?[0-9]+)?"
               r"|[0-9][0-9_]*[eE][-+]?[0-9]+|\.inf|\.Inf|\.INF|\.nan|\.NaN|\.NAN)$"),
    list("-+0123456789."))


def _yaml(text: str):
    return yaml.load(text, Loader=_Loader)


class ConfigError(ValueError):
    """A config file or override that cannot be applied."""


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> DictConfig:
    cfg = _load_with_bases(Path(path), chain=())
    return apply_overrides(cfg, overrides)


def _load_with_bases(path: Path, chain: tuple[Path, ...]) -> DictConfig:
    path = path.resolve()
    if path in chain:
        cycle = " -> ".join(str(p) for p in (*chain, path))
        raise ConfigError(f"_base_ inheritance loops: {cycle}")
    if not path.is_file():
        where = f" (a _base_ of {chain[-1]})" if chain else ""
        raise ConfigError(f"config file not found: {path}{where}")
    try:
        raw = _yaml(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping at the top level, not {type(raw).__name__}")
    bases = raw.pop(BASE_KEY, [])
    if isinstance(bases, str):
        bases = [bases]
    merged = OmegaConf.create()
    for base in bases:
        merged = OmegaConf.merge(merged, _load_with_bases(resolve_base(base, path.parent), chain + (path,)))
    return OmegaConf.merge(merged, OmegaConf.create(raw))


def resolve_base(base: str, folder: Path) -> Path:
    """A `_base_` entry: relative to the including file, or `toolkit:<path>` inside the installed package
    (the presets recipes ship, e.g. toolkit:models/f5tts/presets/f5tts.yaml)."""
    if str(base).startswith(PACKAGE_PREFIX):
        return Path(__file__).resolve().parent / str(base)[len(PACKAGE_PREFIX):]
    return folder / base


def load_preset(name: str) -> DictConfig:
    """A preset shipped in the package (`toolkit:` path), with its own bases."""
    return _load_with_bases(resolve_base(PACKAGE_PREFIX + name, Path.cwd()), chain=())


def parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key=value (for example backbone.depth=4)")
    key, value = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override '{text}' has an empty key")
    try:
        parsed = _yaml(value) if value.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"override '{text}': the value is not valid YAML: {err}") from err
    return key, parsed


def apply_overrides(cfg: DictConfig, overrides: Iterable[str]) -> DictConfig:
    cfg = cfg.copy()
    for text in overrides:
        key, value = parse_override(text)
        parts = key.split(".")
        if parts[-1] == "type" and len(parts) > 1:
            # A new type replaces the whole node.
            parent = ".".join(parts[:-1])
            OmegaConf.update(cfg, parent, {"type": value}, merge=False, force_add=True)
            continue
        current = OmegaConf.select(cfg, key, default=None)
        if isinstance(current, DictConfig) and not isinstance(value, dict):
            # `codec=dac` where codec was a {type: ...} node: the node becomes the bare name.
            OmegaConf.update(cfg, key, value, merge=False, force_add=True)
            continue
        try:
            OmegaConf.update(cfg, key, value, merge=False, force_add=True)
        except Exception as err:  # OmegaConf raises several error types for bad paths
            raise ConfigError(f"cannot apply override '{text}': {err}") from err
    return cfg


def to_yaml(cfg: DictConfig | ListConfig | dict) -> str:
    if not isinstance(cfg, (DictConfig, ListConfig)):
        cfg = OmegaConf.create(cfg)
    return OmegaConf.to_yaml(cfg, resolve=True)


def save_config(cfg: DictConfig | dict, path: str | Path) -> Path:
    """Write the fully resolved config atomically."""
    return atomic_write_text(Path(path), to_yaml(cfg))


def to_plain(cfg: Any) -> Any:
    """DictConfig -> plain python containers (for checkpoints and JSON)."""
    if isinstance(cfg, (DictConfig, ListConfig)):
        return OmegaConf.to_container(cfg, resolve=True)
    return cfg
