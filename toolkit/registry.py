"""One registry per component kind; components are built from config nodes.

A config node is a bare name (`codec: mel`) or a mapping with a `type` key
(`codec: {type: oobleck, chunk_frames: 128}`); the other keys become constructor arguments.
Built-in components register themselves when their module is imported; the registry imports
the built-in component packages and the `toolkit.plugins` entry points on first lookup.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any

from . import protocols

PLUGIN_GROUP = "toolkit.plugins"
# Packages whose modules hold built-in components (imported on the first registry lookup).
BUILTIN_PACKAGES = (
    "toolkit.codecs", "toolkit.backbones", "toolkit.objectives", "toolkit.conditioners",
    "toolkit.models", "toolkit.eval", "toolkit.data",
)


class RegistryError(ValueError):
    """A bad registration or a config node that names no known component."""


class Registry:
    def __init__(self, kind: str, base: type):
        self.kind = kind
        self.base = base
        self._entries: dict[str, type] = {}

    def register(self, name: str) -> Callable[[type], type]:
        """Class decorator: register `cls` under `name` after checking it implements the protocol."""

        def decorate(cls: type) -> type:
            if name in self._entries and self._entries[name] is not cls:
                other = self._entries[name]
                raise RegistryError(
                    f"{self.kind} '{name}' is already registered by {other.__module__}.{other.__qualname__}; "
                    f"pick another name for {cls.__module__}.{cls.__qualname__}")
            if not (inspect.isclass(cls) and issubclass(cls, self.base)):
                raise RegistryError(
                    f"cannot register {cls!r} as {self.kind} '{name}': it must subclass "
                    f"{self.base.__module__}.{self.base.__qualname__}")
            if inspect.isabstract(cls):
                missing = ", ".join(sorted(cls.__abstractmethods__))
                raise RegistryError(
                    f"cannot register {cls.__qualname__} as {self.kind} '{name}': it does not implement {missing}")
            self._entries[name] = cls
            cls.registered_name = name
            return cls

        return decorate

    def names(self) -> list[str]:
        load_components()
        return sorted(self._entries)

    def get(self, name: str) -> type:
        load_components()
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "(none)"
            raise RegistryError(f"unknown {self.kind} '{name}'; known {self.kind}s: {known}") from None

    def build(self, node: Any, *, context: Mapping[str, Any] | None = None, **extra: Any) -> Any:
        """Build from a bare name or a `{type: name, **kwargs}` node; `extra` fills derived arguments.

        Derived values (for example a codec's latent_dim handed to the backbone) are given once, by the
        caller: setting one in the node is an error. `context` holds derived values offered to every
        component of a kind (a codec's frame rate to each conditioner): each is passed only when the
        class's constructor takes it.
        """
        name, kwargs = split_node(node, self.kind)
        cls = self.get(name)
        if context:
            params = inspect.signature(cls.__init__).parameters
            extra = {**{k: v for k, v in context.items() if k in params}, **extra}
        clash = sorted(set(kwargs) & set(extra))
        if clash:
            raise RegistryError(
                f"{self.kind} '{name}': {', '.join(clash)} follow from other components and must not be set "
                f"in the config")
        try:
            return cls(**kwargs, **extra)
        except TypeError as err:
            raise RegistryError(f"cannot build {self.kind} '{name}' from {kwargs}: {err}") from err

    def describe(self) -> dict[str, str]:
        """name -> first line of the class docstring."""
        load_components()
        return {n: (inspect.getdoc(c) or "").split("\n")[0] for n, c in sorted(self._entries.items())}


def split_node(node: Any, kind: str = "component") -> tuple[str, dict[str, Any]]:
    """A config node -> (type name, constructor kwargs)."""
    if isinstance(node, str):
        return node, {}
    if isinstance(node, Mapping) or hasattr(node, "items"):
        from omegaconf import DictConfig, OmegaConf

        plain = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
        if "type" not in plain:
            raise RegistryError(f"a {kind} node needs a 'type' key (got keys {sorted(plain)})")
        name = plain.pop("type")
        return name, plain
    raise RegistryError(f"a {kind} node must be a name or a mapping with 'type', not {type(node).__name__}")


CODECS = Registry("codec", protocols.Codec)
BACKBONES = Registry("backbone", protocols.Backbone)
OBJECTIVES = Registry("objective", protocols.Objective)
SAMPLERS = Registry("sampler", protocols.Sampler)
CONDITIONERS = Registry("conditioner", protocols.Conditioner)
RECIPES = Registry("recipe", protocols.Recipe)
METRICS = Registry("metric", protocols.Metric)
DATASETS = Registry("dataset", protocols.Dataset)
REGISTRIES = {r.kind: r for r in (CODECS, BACKBONES, OBJECTIVES, SAMPLERS, CONDITIONERS, RECIPES, METRICS, DATASETS)}

_loaded = False


def load_components() -> None:
    """Import every built-in component module and every plugin entry point, once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for package_name in BUILTIN_PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.walk_packages(package.__path__, prefix=package_name + "."):
            importlib.import_module(info.name)
    for ep in entry_points(group=PLUGIN_GROUP):
        ep.load()
