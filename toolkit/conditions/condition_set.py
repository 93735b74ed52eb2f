"""The conditions of a recipe: built from the config, bound to a backbone's inputs, routed at every call.

`ConditionSet` holds one conditioner per condition (an nn.ModuleDict, so learned conditioners train and
save under `conditions.<name>.*`). `bind` checks every binding against what the backbone class declares
(`INPUTS`) before the backbone exists, and hands back the widths of the optional inputs to build it with;
`check_built` checks the built instance. `RoutedBackbone` is what the objective and the sampler call: they
speak of conditions by name and of drop groups, the backbone of inputs, and the router translates:

  * a condition bound alone to an input of the backbone's own kind is passed under the input's name, and
    its group's per-item drop mask with it (the backbone drops inside: lyric tokens become filler);
  * conditions bound to a generic input (global, cross_attn, prepend, input_concat) are dropped here (a
    dropped item's value becomes zeros, the null embedding of audiocraft and stable-audio-tools) and then
    concatenated in config order (features for global / input_concat, tokens and masks for the others);
  * a condition bound to several inputs (`input: [cross_attn, global]`) reaches each with one value; its drop
    group applies at the inputs of its `drop_at` (all by default);
  * entries that are no condition (a frame mask the objective adds) pass through, and the "audio" group's
    mask goes with the audio prompt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from ..protocols import (
    INPUT_CROSS_ATTN,
    INPUT_GLOBAL,
    INPUT_PREPEND,
    OUT_SCALAR,
    OUT_TOKENS,
    OUT_VECTOR,
    Backbone,
    Conditioner,
    InputSpec,
)
from ..registry import BACKBONES, CONDITIONERS, split_node
from .spec import AUDIO_GROUP, DEFAULT_SOURCE, ConditionConfigError, parse_conditions

MASK_SUFFIX = "/mask"  # token conditions travel as "<name>" (tokens) and "<name>/mask"


def describe_inputs(inputs: Mapping[str, InputSpec]) -> str:
    return ", ".join(f"{name} ({spec.kind}{', optional' if spec.optional else ''})" for name, spec in inputs.items())


class ConditionSet(nn.ModuleDict):
    """name -> conditioner, with each condition's spec in `specs` (config order)."""

    def __init__(self, node: Any, context: Mapping[str, Any] | None = None):
        specs = parse_conditions(node)
        super().__init__({s.name: CONDITIONERS.build(s.conditioner, context=context or {}) for s in specs})
        specs = [replace(s, source=self._default_source(s.name)) if s.source == DEFAULT_SOURCE else s for s in specs]
        object.__setattr__(self, "specs", {s.name: s for s in specs})
        object.__setattr__(self, "bound", {})  # input name -> [condition names], set by bind()
        object.__setattr__(self, "input_specs", {})

    def _default_source(self, name: str) -> str | None:
        source = self[name].default_source
        return name if source == "" else source

    @classmethod
    def for_codec(cls, node: Any, codec: Any, max_frames: int) -> ConditionSet:
        """Conditioners built with what follows from the codec (each takes what its constructor accepts)."""
        return cls(node, {"frame_rate": codec.frame_rate, "max_frames": int(max_frames),
                          "sample_rate": codec.sample_rate, "latent_dim": codec.latent_dim})

    # ------------------------------------------------------------------------------------------ binding
    @property
    def groups(self) -> set[str]:
        """The drop groups of the conditions, plus "audio" (the audio prompt)."""
        return {s.drop for s in self.specs.values() if s.drop} | {AUDIO_GROUP}

    def conditioner(self, name: str) -> Conditioner:
        return self[name]

    def _declared(self, backbone_node: Any) -> tuple[str, Mapping[str, InputSpec]]:
        name, _ = split_node(backbone_node, "backbone")
        return name, getattr(BACKBONES.get(name), "INPUTS", {})

    def bind(self, backbone_node: Any) -> dict[str, int]:
        """Check each binding against the backbone class's declared inputs; -> {optional input: width} to
        build the backbone with (its `input_dims` argument). Fails naming the condition and the inputs."""
        backbone, declared = self._declared(backbone_node)
        bound: dict[str, list[str]] = {}
        for spec in self.specs.values():
            for input_name in spec.inputs:
                if input_name not in declared:
                    raise ConditionConfigError(
                        f"condition '{spec.name}' binds to input '{input_name}', which backbone {backbone} does not "
                        f"have; its inputs: {describe_inputs(declared) or '(none declared)'}")
                bound.setdefault(input_name, []).append(spec.name)
        dims = {}
        for input_name, names in bound.items():
            target = declared[input_name]
            if len(names) > 1 and not target.multi:
                raise ConditionConfigError(f"conditions {names} all bind to input '{input_name}' of {backbone}, "
                                           "which takes one condition")
            for name in names:
                kind = self[name].output_kind
                if target.accepts and kind not in target.accepts:
                    raise ConditionConfigError(
                        f"condition '{name}' gives {kind} values (conditioner {type(self[name]).__name__}) but "
                        f"input '{input_name}' of {backbone} ({target.kind}) takes {', '.join(target.accepts)}")
            width = self._bound_width(input_name, target, names)
            if target.optional:
                dims[input_name] = width
            elif target.dim is not None and width is not None and width != target.dim:
                raise ConditionConfigError(f"input '{input_name}' of {backbone} takes width {target.dim}, but "
                                           f"{names} give {width}")
        object.__setattr__(self, "bound", bound)
        return dims

    def _bound_width(self, input_name: str, target: InputSpec, names: Sequence[str]) -> int | None:
        widths = []
        for name in names:
            conditioner = self[name]
            width = 1 if conditioner.output_kind == OUT_SCALAR else conditioner.output_dim
            if width is None:
                if target.optional:
                    raise ConditionConfigError(f"condition '{name}' does not say its width (output_dim), which "
                                               f"optional input '{input_name}' needs to be built")
                return None
            widths.append(int(width))
        if target.kind in (INPUT_CROSS_ATTN, INPUT_PREPEND):
            if len(set(widths)) > 1:
                raise ConditionConfigError(f"conditions {list(names)} bound to '{input_name}' give tokens of "
                                           f"widths {widths}; tokens are concatenated, so they must agree")
            return widths[0]
        return sum(widths)

    def bound_kinds(self) -> dict[str, tuple[str, ...]]:
        """{input: output kinds of the conditions bound to it}, after `bind`: a backbone whose input takes several
        kinds learns which one it gets (the recipe offers it as the build context `input_kinds`)."""
        return {name: tuple(self[c].output_kind for c in names) for name, names in self.bound.items()}

    def check_built(self, backbone: Backbone) -> None:
        """The built backbone has every bound input, and every input it requires is bound."""
        inputs = backbone.inputs()
        name = type(backbone).__name__
        for input_name, names in self.bound.items():
            if input_name not in inputs:
                raise ConditionConfigError(
                    f"condition(s) {names} bind to input '{input_name}', which this {name} does not have as "
                    f"configured; its inputs: {describe_inputs(inputs)}")
        for input_name, names in self.bound.items():  # widths the configuration fixed (e.g. SAO's cond dims)
            target = inputs[input_name]
            width = self._bound_width(input_name, target, names)
            if target.dim is not None and width is not None and width != target.dim and not target.optional:
                raise ConditionConfigError(f"input '{input_name}' of {name} is {target.dim} wide but {names} give "
                                           f"{width}: set the conditioners' output_dim or the backbone's width")
        missing = [n for n, s in inputs.items() if s.required and n not in self.bound]
        if missing:
            raise ConditionConfigError(f"{name} needs a condition bound to input(s) {missing}; add a `conditions:` "
                                       f"entry with `input: {missing[0]}`")
        object.__setattr__(self, "input_specs", dict(inputs))

    def check_groups(self, groups: Sequence[str], where: str) -> None:
        unknown = sorted(set(groups) - self.groups)
        if unknown:
            raise ConditionConfigError(f"{where} names drop group(s) {unknown}, which no condition has; the groups "
                                       f"are {sorted(self.groups)} (a condition's `drop:`, and audio)")

    # ---------------------------------------------------------------------------------------- values
    def forward(self, prepared: Mapping[str, Any], null: Sequence[str] = (), batch: int = 1,
                frames: int | None = None) -> dict[str, torch.Tensor]:
        """Batched prepared values by condition name -> conditioner outputs (token masks under name/mask);
        the conditions in `null` get their null value for `batch` items of `frames` frames instead."""
        out = {}
        for name, conditioner in self.items():
            if name in null:
                value = conditioner.null(batch, frames)
            elif name not in prepared:
                raise KeyError(f"no value for condition '{name}'")
            else:
                value = conditioner(prepared[name])
            if conditioner.output_kind == OUT_TOKENS:
                tokens, mask = value
                out[name], out[name + MASK_SUFFIX] = tokens, mask
            else:
                out[name] = value
        return out

    def outputs(self, prepared: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """Conditioner outputs of the (batched, prepared) values given, only those (token masks under name/mask)."""
        out = {}
        for name, value in prepared.items():
            result = self[name](value)
            if self[name].output_kind == OUT_TOKENS:
                out[name], out[name + MASK_SUFFIX] = result
            else:
                out[name] = result
        return out

    def collate(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Per condition, the conditioner's batch of the items' prepared values."""
        return {name: c.collate([item[name] for item in items]) for name, c in self.items()}

    def negatives(self, batch: int, frames: int) -> dict[str, torch.Tensor]:
        """What guidance's unconditional half sees for `uncond: dropped | negative` conditions."""
        out = {}
        for name, spec in self.specs.items():
            if spec.uncond == "keep":
                continue
            conditioner = self[name]
            negative = spec.uncond == "negative"
            value = conditioner.negative(batch, frames) if negative else conditioner.null(batch, frames)
            if conditioner.output_kind == OUT_TOKENS:
                out[name], out[name + MASK_SUFFIX] = value
            else:
                out[name] = value
        return out

    def routed(self, backbone: Backbone, force_drop: Sequence[str] = ()) -> RoutedBackbone:
        return RoutedBackbone(backbone, self, force_drop)


def _as_generic(value: torch.Tensor, kind: str, input_kind: str) -> torch.Tensor:
    """A conditioner output in the layout a generic input concatenates."""
    if input_kind == INPUT_GLOBAL:
        if kind == OUT_SCALAR:
            return value.reshape(-1, 1)
        return value.flatten(1)  # [B, D], or tokens [B, N, D] -> [B, N * D]
    if input_kind in (INPUT_CROSS_ATTN, INPUT_PREPEND):
        if kind == OUT_SCALAR:
            return value.reshape(-1, 1, 1)
        return value[:, None] if kind == OUT_VECTOR else value
    return value  # input_concat: frames [B, T, D]


def _zero_dropped(value: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None or not bool(mask.any()):
        return value
    mask = mask.to(value.device).reshape(-1, *([1] * (value.dim() - 1)))
    return value.masked_fill(mask, 0)


class RoutedBackbone:
    """Calls a backbone with values keyed by condition and drops keyed by group (what objectives and
    samplers speak), translated into its inputs. Not a module: it owns nothing."""

    def __init__(self, backbone: Backbone, conditions: ConditionSet, force_drop: Sequence[str] = ()):
        self.backbone, self.conditions = backbone, conditions
        self.force_drop = tuple(force_drop)  # groups dropped in every call (an unconditional model's)

    def parameters(self, recurse: bool = True):
        return self.backbone.parameters(recurse)

    def groups_of(self, values: Mapping[str, Any]) -> set[str]:
        """The drop groups of the conditions that have a value in `values` (what guidance and the noising
        objectives ask where an unrouted backbone answers with its input names)."""
        specs = self.conditions.specs
        return {specs[k].drop for k, v in values.items() if k in specs and specs[k].drop and v is not None}

    def __getattr__(self, name: str) -> Any:  # attributes the samplers read (latent_dim, ...)
        if name.startswith("__") or "backbone" not in self.__dict__:
            # copy and pickle probe dunders on an instance whose __init__ has not run: no recursion
            raise AttributeError(name)
        return getattr(self.backbone, name)

    def route(self, values: Mapping[str, torch.Tensor], drop: Mapping[str, Any] | None
              ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        drop = dict(drop or {})
        specs, inputs_spec = self.conditions.specs, self.conditions.input_specs
        batch = next((v.shape[0] for v in values.values() if torch.is_tensor(v) and v.dim() > 0), None)
        inputs: dict[str, torch.Tensor] = {}
        input_drop: dict[str, Any] = {}
        names = set(specs)
        for input_name, bound in self.conditions.bound.items():
            target = inputs_spec[input_name]
            missing = [n for n in bound if n not in values]
            if missing:
                raise KeyError(f"no value for condition(s) {missing} (bound to input '{input_name}')")
            if not target.generic:
                (name,) = bound
                inputs[input_name] = values[name]
                if name + MASK_SUFFIX in values and target.mask:
                    inputs[target.mask] = values[name + MASK_SUFFIX]
                group = specs[name].drop
                if specs[name].dropped_at(input_name) and drop.get(group) is not None:
                    input_drop[input_name] = drop[group]
                continue
            parts, masks = [], []
            for name in bound:
                conditioner = self.conditions[name]
                value = _as_generic(values[name], conditioner.output_kind, target.kind)
                group = specs[name].drop
                flags = drop.get(group) if specs[name].dropped_at(input_name) else None
                if flags is not None:
                    flags = torch.as_tensor(flags, dtype=torch.bool).expand(batch or value.shape[0])
                parts.append(_zero_dropped(value, flags))
                if target.kind in (INPUT_CROSS_ATTN, INPUT_PREPEND):
                    mask = values.get(name + MASK_SUFFIX)
                    if mask is None:
                        mask = torch.ones(value.shape[:2], dtype=torch.bool, device=value.device)
                    masks.append(mask.to(torch.bool))
            dim = 1 if target.kind in (INPUT_CROSS_ATTN, INPUT_PREPEND) else -1
            inputs[input_name] = torch.cat(parts, dim=dim) if len(parts) > 1 else parts[0]
            if masks and target.mask:
                inputs[target.mask] = torch.cat(masks, dim=1) if len(masks) > 1 else masks[0]
        for key, value in values.items():  # entries that are no condition (e.g. a frame mask) pass through
            if key not in names and not (key.endswith(MASK_SUFFIX) and key[:-len(MASK_SUFFIX)] in names):
                inputs[key] = value
        if drop.get(AUDIO_GROUP) is not None:
            input_drop[AUDIO_GROUP] = drop[AUDIO_GROUP]
        return inputs, input_drop

    def __call__(self, x: torch.Tensor, cond: torch.Tensor, conditions: Mapping[str, torch.Tensor],
                 time: torch.Tensor, drop: Mapping[str, Any] | None = None) -> torch.Tensor:
        if self.force_drop:
            drop = {**(drop or {}), **{g: True for g in self.force_drop}}
        inputs, input_drop = self.route(conditions, drop)
        return self.backbone(x, cond, inputs, time, input_drop or None)

