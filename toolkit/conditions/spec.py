"""One entry of a recipe config's `conditions:` section, read and checked.

    conditions:
      style:                          # the condition's name (the key its values travel under)
        conditioner: style_features   # a registered conditioner node (bare name or {type: ..., ...})
        source: path                  # manifest / dataset field (dotted, e.g. tags.bpm); null = derived from
                                      # the frames (start time, duration); default: what the conditioner
                                      # reads (its `default_source`), so swapping the conditioner swaps it
        request: style                # the request value it reads at generation (default: its name)
        input: style                  # the backbone input it binds to (default: its name); a list binds one
                                      # value to several inputs (Stable Audio's seconds_total: cross_attn and
                                      # global), one conditioner and one set of weights
        drop: style                   # drop group for training dropout and guidance (default: none)
        drop_at: [cross_attn]         # with several inputs: those where the drop applies (default: all of them;
                                      # stable-audio-tools drops the cross-attention copy, keeps the global one)
        uncond: negative              # what guidance's unconditional half sees when its group is not
                                      # dropped there: keep (the same value), dropped (the null value) or negative
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FIELDS = ("conditioner", "source", "request", "input", "drop", "drop_at", "uncond")
UNCOND = ("keep", "dropped", "negative")
AUDIO_GROUP = "audio"  # the audio prompt's drop group; no condition may take the name
DEFAULT_SOURCE = "<conditioner default>"  # `source:` left out: the conditioner's own default_source


class ConditionConfigError(ValueError):
    """A `conditions:` entry that cannot be used; the message names the entry and the fix."""


@dataclass(frozen=True)
class ConditionSpec:
    name: str
    conditioner: Any
    source: str | None
    request: str | None
    inputs: tuple[str, ...]
    drop: str | None = None
    uncond: str = "keep"
    drop_at: tuple[str, ...] = ()  # the inputs where the drop group applies (all of `inputs` by default)

    @property
    def input(self) -> str:
        """The first (usually only) input it binds to."""
        return self.inputs[0]

    def dropped_at(self, input_name: str) -> bool:
        """Whether dropping the condition's group drops its value at `input_name`."""
        return self.drop is not None and input_name in self.drop_at


def _plain(node: Any) -> Any:
    if hasattr(node, "items") and not isinstance(node, Mapping):
        node = dict(node.items())
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(node, (DictConfig, ListConfig)):
            return OmegaConf.to_container(node, resolve=True)
    except ImportError:  # omegaconf is a core dependency; plain dicts work without it
        pass
    return node


def parse_condition(name: str, node: Any) -> ConditionSpec:
    node = _plain(node)
    if not isinstance(node, Mapping):
        raise ConditionConfigError(f"conditions.{name} must be a mapping with at least `conditioner:`, "
                                   f"not {node!r}")
    unknown = sorted(set(node) - set(FIELDS))
    if unknown:
        raise ConditionConfigError(f"conditions.{name}: unknown key(s) {unknown}; an entry has {list(FIELDS)}")
    if node.get("conditioner") is None:
        raise ConditionConfigError(f"conditions.{name} names no conditioner: add `conditioner: <registered name>`")
    if name == AUDIO_GROUP:
        raise ConditionConfigError(f"'{AUDIO_GROUP}' is the audio prompt's drop group; rename the condition")
    uncond = node.get("uncond", "keep")
    if uncond not in UNCOND:
        raise ConditionConfigError(f"conditions.{name}.uncond must be one of {UNCOND}, not {uncond!r}")
    source = node.get("source", DEFAULT_SOURCE)
    request = node.get("request", name)
    inputs = _names(node.get("input", name), f"conditions.{name}.input")
    drop_at = _names(node["drop_at"], f"conditions.{name}.drop_at") if node.get("drop_at") is not None else inputs
    stray = sorted(set(drop_at) - set(inputs))
    if stray:
        raise ConditionConfigError(f"conditions.{name}.drop_at names {stray}, which it does not bind to; its inputs: "
                                   f"{list(inputs)}")
    if node.get("drop_at") is not None and node.get("drop") is None:
        raise ConditionConfigError(f"conditions.{name}.drop_at needs a drop group (`drop:`) to apply")
    return ConditionSpec(name=name, conditioner=node["conditioner"], source=source, request=request,
                         inputs=inputs, drop=node.get("drop"), uncond=uncond, drop_at=drop_at)


def _names(value: Any, where: str) -> tuple[str, ...]:
    """An input name or a list of them -> a tuple without repeats."""
    names = [value] if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else None
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ConditionConfigError(f"{where} must be an input name or a list of input names, not {value!r}")
    if len(set(names)) != len(names):
        raise ConditionConfigError(f"{where} repeats an input: {names}")
    return tuple(names)


def parse_conditions(node: Any) -> list[ConditionSpec]:
    """The `conditions:` section in config order; empty or missing is an error (a recipe conditions on
    something: an unconditional model would still say so with an empty section... but not by accident)."""
    node = _plain(node)
    if not isinstance(node, Mapping) or not node:
        raise ConditionConfigError("the recipe config has no `conditions:` section (a mapping of condition name "
                                   "-> {conditioner, source, input, drop}); see docs/architecture.md")
    return [parse_condition(str(name), entry) for name, entry in node.items()]


def field_value(record: Mapping[str, Any], path: str | None) -> Any:
    """The value at a dotted path of a record (manifest entry or request values); None when absent."""
    if path is None:
        return None
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value
