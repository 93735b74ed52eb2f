"""The models a web app serves: toolkit checkpoints and folders of published files, through toolkit.generation.sources.

A checkpoint's source is read once. A published folder's source is resolved per request, as the CLI resolves it
for its first request (a recipe may pick the file by the request: DiffRhythm's 285-s DiT for a long song). Models
are built on first use and kept; the manifest's model record (file hashes) is computed once per weights file.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..generation import sources
from ..models.requests import RequestValidator


@dataclass
class Settings:
    """Where and in which number format models run, and how outputs are written. With `requested` (the
    --dtype given: auto, fp32, ...) each model's format is decided for its own backbone, as the generate CLI
    does; without it every model runs in `dtype`."""

    device: torch.device
    dtype_name: str
    dtype: torch.dtype
    dtype_reason: str = ""
    no_chunked: bool = False
    requested: str | None = None
    save_state_every: float | None = 60.0  # seconds between saves of a running job's sampler state (None: off)
    _choices: dict[str, tuple[str, torch.dtype, str]] = field(default_factory=dict, repr=False)

    def dtype_for(self, source: sources.ModelSource) -> tuple[str, torch.dtype, str]:
        """(name, dtype, reason) of the format `source`'s model runs in (decided once per backbone kind)."""
        if self.requested is None:
            return self.dtype_name, self.dtype, self.dtype_reason
        from ..generation.devices import backbone_component, pick_dtype

        component = backbone_component(source.cfg)
        if component not in self._choices:
            choice = pick_dtype(self.requested, self.device, component)
            self._choices[component] = (choice.name, choice.dtype, choice.reason)
        return self._choices[component]


@dataclass
class ServedModel:
    """One --ckpt file or --pretrained folder, its recipe, and what has been built from it."""

    label: str
    kind: str                                   # "ckpt" or "pretrained"
    path: Path
    recipe: str
    recipe_cls: type
    overrides: tuple[str, ...] = ()
    ema: str = "auto"
    options: Mapping[str, Any] = field(default_factory=dict)   # the recipe's pretrained_options
    source: sources.ModelSource | None = None    # a checkpoint's (fixed) source
    _validators: dict[str, RequestValidator] = field(default_factory=dict, repr=False)
    _built: dict[str, Any] = field(default_factory=dict, repr=False)
    _records: dict[str, dict] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def request_type(self) -> type:
        return self.recipe_cls.request_type

    def source_for(self, request: Any = None, settings: Settings | None = None) -> sources.ModelSource:
        if self.source is not None:
            return self.source
        source = sources.from_folder(self.path, list(self.overrides), self.options, request, self.recipe)
        return _unchunked(source) if settings is not None and settings.no_chunked else source

    def validator(self, source: sources.ModelSource) -> RequestValidator:
        key = _key(source)
        with self._lock:
            if key not in self._validators:
                self._validators[key] = source.recipe_cls.validator_type(source.cfg)
            return self._validators[key]

    def is_built(self, source: sources.ModelSource) -> bool:
        return _key(source) in self._built

    def built(self, source: sources.ModelSource, settings: Settings) -> tuple[Any, dict]:
        """(the recipe with its weights, the manifest's model record); built once per weights file and config."""
        key = _key(source)
        with self._lock:
            if key not in self._built:
                self._built[key] = sources.build(source, settings.device, settings.dtype_for(source)[1])
                self._records[key] = source.record()
            return self._built[key], self._records[key]


def _key(source: sources.ModelSource) -> str:
    import json

    return f"{source.path.resolve()}|{json.dumps(sources.plain_config(source), sort_keys=True, default=str)}"


def _unchunked(source: sources.ModelSource) -> sources.ModelSource:
    if sources.codec_takes(source.cfg, "chunked"):
        from ..config import apply_overrides

        source.cfg = apply_overrides(source.cfg, ["codec.chunked=false"])
    return source


def serve_checkpoint(path: str | Path, overrides: Sequence[str] = (), ema: str = "auto",
                     settings: Settings | None = None) -> ServedModel:
    source = sources.from_checkpoint(path, list(overrides), ema)
    if settings is not None and settings.no_chunked:
        source = _unchunked(source)
    return ServedModel(label=f"{path} ({source.recipe})", kind="ckpt", path=Path(path), recipe=source.recipe,
                       recipe_cls=source.recipe_cls, overrides=tuple(overrides), ema=ema, source=source)


def serve_folder(folder: str | Path, overrides: Sequence[str] = (), options: Mapping[str, Any] | None = None,
                 recipe: str | None = None) -> ServedModel:
    """A published folder, checked now (its recipe claims it and its files are there)."""
    cls = sources.recipe_class(recipe) if recipe else sources.from_folder_recipe(folder)
    name = sources.recipe_name(cls)
    declared = {opt.field for opt in getattr(cls, "pretrained_options", ())}
    chosen = {k: v for k, v in (options or {}).items() if k in declared}
    sources.from_folder(folder, list(overrides), chosen, None, name)
    return ServedModel(label=f"{folder} ({name}, published)", kind="pretrained", path=Path(folder), recipe=name,
                       recipe_cls=cls, overrides=tuple(overrides), options=chosen)


def by_recipe(models: Sequence[ServedModel]) -> dict[str, list[ServedModel]]:
    out: dict[str, list[ServedModel]] = {}
    for model in models:
        out.setdefault(model.recipe, []).append(model)
    return out
