"""LoRA adapters in peft's on-disk format: read and check a folder, apply several to a model unmerged, remove, merge.

An adapter is a folder, as peft's `save_pretrained` writes it and `PeftModel.from_pretrained` reads it:
  adapter_config.json        a peft LoraConfig (r, lora_alpha, target_modules, use_rslora, rank/alpha patterns)
  adapter_model.safetensors  `base_model.model.<module>.lora_A.weight` [r, in] and `...lora_B.weight` [out, r] for each
                             adapted nn.Linear, module names as in the recipe (the DiT at `transformer.*`, the names
                             of the published checkpoints). Adapters the toolkit writes carry in the safetensors header
                             a `toolkit` entry (JSON) saying which model they were made for.

Several adapters compose without merging. An adapted layer computes

    y = W x + b + sum_i scale_i * s_i * B_i (A_i x),    s_i = alpha_i / r_i  (alpha_i / sqrt(r_i) with use_rslora)

where scale_i is the user's factor (`DIR:SCALE`, default 1; negative subtracts an adapter). Applying goes through
peft's LoRA layers (one peft adapter per folder, all active), so a folder behaves here as it does under peft;
`merge_into_state` computes the same sum into plain weights (in float64).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .io import atomic_write, atomic_write_text, sha256_files

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
README_FILE = "README.md"
KEY_PREFIX = "base_model.model."  # peft's prefix of every tensor key in the file
METADATA_KEY = "toolkit"
_TENSOR_KEY = re.compile(r"^base_model\.model\.(.+)\.lora_([AB])\.weight$")
_PLAIN_INITS = (True, False, "gaussian")  # initialisations that leave the base weights alone
# adapter_config.json options that make an adapter more than W + s B A on nn.Linear layers: refused
_UNSUPPORTED = ("use_dora", "lora_bias", "modules_to_save", "layer_replication", "target_parameters",
                "trainable_token_indices", "alora_invocation_tokens", "use_qalora", "use_bdlora", "arrow_config",
                "kasa_config", "velora_config", "monteclora_config", "fan_in_fan_out")


class AdapterError(ValueError):
    """An adapter spec, folder or file that cannot be used; the message says what is wrong and how to fix it."""


class AdapterMismatchError(AdapterError):
    """An adapter made for another model: the message names every key that does not fit."""

    def __init__(self, message: str, problems: list[str]):
        super().__init__(message)
        self.problems = problems


# ------------------------------------------------------------------------------------------------ specs

@dataclass(frozen=True)
class AdapterSpec:
    """An adapter folder and the factor its contribution is multiplied by.

    `adapter`, when given, is used instead of reading `path` (an adapter already in memory, e.g. the one of a
    LoRA run's checkpoint: toolkit.training.lora.checkpoint_adapter); `path` then names where it came from.
    """

    path: Path
    scale: float = 1.0
    adapter: Adapter | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.path}:{self.scale:g}"


def _scale(value: Any, spec: str) -> float:
    if isinstance(value, bool):
        raise AdapterError(f"bad scale {value!r} in adapter {spec}: give a number, e.g. 0.8")
    try:
        scale = float(value)
    except (TypeError, ValueError):
        raise AdapterError(f"bad scale {value!r} in adapter {spec}: write DIR:SCALE with a number, e.g. DIR:0.8 "
                           "(or a folder that exists, if its name holds a colon)") from None
    if not math.isfinite(scale):
        raise AdapterError(f"bad scale {value!r} in adapter {spec}: the scale must be a finite number")
    return scale


def _resolve(path: str | Path, base: Path | None) -> Path:
    path = Path(path).expanduser()
    return path if base is None or path.is_absolute() else Path(base) / path


def parse_spec(value: str | Mapping | AdapterSpec, base: str | Path | None = None) -> AdapterSpec:
    """`DIR[:SCALE]` (the command line) or `{"path": DIR, "scale": S}` (request files) -> AdapterSpec.

    A relative DIR is taken relative to `base` (a request file's folder). The folder itself is checked by
    `read_adapter`; a text whose whole is an existing folder is a path even if it holds a colon.
    """
    if isinstance(value, AdapterSpec):
        return value
    base = None if base is None else Path(base)
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {"path", "scale"})
        if unknown or not value.get("path"):
            raise AdapterError(f"an adapter entry is {{\"path\": DIR, \"scale\": S}} (scale optional), "
                               f"got {dict(value)}")
        return AdapterSpec(_resolve(str(value["path"]), base), _scale(value.get("scale", 1.0), str(value["path"])))
    if not isinstance(value, str):
        raise AdapterError(f"an adapter is given as DIR[:SCALE] or {{\"path\": DIR, \"scale\": S}}, "
                           f"not a {type(value).__name__}")
    text = value.strip()
    if not text:
        raise AdapterError("empty adapter spec: give DIR or DIR:SCALE (a folder holding adapter_config.json and "
                           "adapter_model.safetensors)")
    head, sep, tail = text.rpartition(":")
    if not sep or _resolve(text, base).is_dir():
        return AdapterSpec(_resolve(text, base), 1.0)
    if not head:
        raise AdapterError(f"adapter spec {text!r} has a scale but no folder: write DIR:SCALE")
    return AdapterSpec(_resolve(head, base), _scale(tail, text))


# ------------------------------------------------------------------------------------------------ the folder

@dataclass
class Adapter:
    """A LoRA adapter in memory: its peft config, its weights per module, and what it was made for."""

    config: dict[str, Any]
    weights: dict[str, tuple[torch.Tensor, torch.Tensor]]  # module name -> (A [r, in], B [out, r])
    made_for: dict[str, Any] = field(default_factory=dict)  # the `toolkit` metadata ({} for foreign adapters)
    path: Path | None = None
    sha256: str | None = None  # of adapter_config.json followed by adapter_model.safetensors

    @property
    def modules(self) -> list[str]:
        return sorted(self.weights)

    @property
    def name(self) -> str:
        return self.path.name if self.path is not None else "(in memory)"

    def rank(self, module: str) -> int:
        return int(self.weights[module][0].shape[0])

    def scaling(self, module: str) -> float:
        """s = alpha / r of one module (alpha / sqrt(r) with use_rslora), peft's alpha_pattern honoured."""
        alpha = float(_pattern_value(self.config.get("alpha_pattern") or {}, module, self.config.get("lora_alpha", 8)))
        rank = self.rank(module)
        return alpha / math.sqrt(rank) if self.config.get("use_rslora") else alpha / rank


def _pattern_value(patterns: Mapping[str, Any], module: str, default: Any) -> Any:
    """peft's rank/alpha_pattern rule: the first key that matches the end of the module name (as a regex)."""
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


def read_adapter(path: str | Path) -> Adapter:
    """Read and check an adapter folder (no model needed); AdapterError names what is wrong."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.exists():
        hint = ""
        if not path.is_absolute() and len(path.parts) == 2:  # looks like a Hub id: nothing downloads at run time
            hint = (f"; if {path} is a Hugging Face repository, download it first: "
                    f"huggingface-cli download {path} --local-dir DIR, then give DIR")
        raise AdapterError(f"adapter folder {path} does not exist{hint}")
    if not path.is_dir():
        raise AdapterError(f"{path} is a file; an adapter is a folder holding {CONFIG_FILE} and {WEIGHTS_FILE} (a LoRA "
                           "run writes one to EXP/adapter; `toolkit-train export-adapter` makes one from a checkpoint)")
    missing = [name for name in (CONFIG_FILE, WEIGHTS_FILE) if not (path / name).is_file()]
    if missing:
        hint = ""
        if (path / "adapter_model.bin").is_file():
            hint = " (it has peft's older adapter_model.bin: save it again with peft, safe_serialization=True)"
        raise AdapterError(f"adapter folder {path} lacks {' and '.join(missing)}{hint}; an adapter folder holds "
                           f"{CONFIG_FILE} and {WEIGHTS_FILE}, as peft's save_pretrained writes them")
    try:
        config = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise AdapterError(f"cannot read {path / CONFIG_FILE}: {err}") from err
    if not isinstance(config, dict):
        raise AdapterError(f"{path / CONFIG_FILE} holds a {type(config).__name__}, not a peft config object")
    check_config(config, str(path / CONFIG_FILE))
    try:
        with safe_open(str(path / WEIGHTS_FILE), "pt", device="cpu") as fh:
            metadata = fh.metadata() or {}
            tensors = {key: fh.get_tensor(key) for key in fh.keys()}
    except (OSError, SafetensorError) as err:
        raise AdapterError(f"cannot read {path / WEIGHTS_FILE}: {err}") from err
    made_for: dict[str, Any] = {}
    if METADATA_KEY in metadata:
        try:
            made_for = json.loads(metadata[METADATA_KEY])
        except ValueError:
            made_for = {}
    weights = weights_from_tensors(tensors, str(path / WEIGHTS_FILE))
    return Adapter(config=config, weights=weights, made_for=made_for, path=path,
                   sha256=sha256_files([path / CONFIG_FILE, path / WEIGHTS_FILE]))


def check_config(config: Mapping[str, Any], source: str) -> None:
    """Refuse what is not a plain LoRA on linear layers (DoRA, trained biases, extra full modules, ...)."""
    if str(config.get("peft_type", "LORA")).upper() != "LORA":
        raise AdapterError(f"{source} is a {config.get('peft_type')} adapter; only LoRA adapters are supported")
    used = [key for key in _UNSUPPORTED if config.get(key)]
    if config.get("bias", "none") != "none":
        used.append(f"bias={config['bias']}")
    if used:
        raise AdapterError(f"{source} uses {', '.join(used)}: only plain LoRA adapters (W + s B A on linear layers) "
                           "can be applied; merge such an adapter with peft instead")
    if config.get("init_lora_weights", True) not in _PLAIN_INITS:
        raise AdapterError(f"{source} was initialised with init_lora_weights={config['init_lora_weights']!r}, which "
                           "changes the base weights: convert it to a plain LoRA with peft first "
                           "(save_pretrained(..., path_initial_model_for_weight_conversion=...))")
    for key in ("r", "lora_alpha"):
        value = config.get(key, 8)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise AdapterError(f"{source}: {key} must be a positive number, got {value!r}")


def weights_from_tensors(tensors: Mapping[str, torch.Tensor], source: str
                         ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """peft's file keys -> {module: (A, B)}, with every key and shape checked."""
    parts: dict[str, dict[str, torch.Tensor]] = {}
    foreign = []
    for key, value in tensors.items():
        match = _TENSOR_KEY.match(key)
        if match is None:
            foreign.append(key)
            continue
        parts.setdefault(match.group(1), {})[match.group(2)] = value
    if foreign:
        raise AdapterError(f"{source} holds keys that are not LoRA weights of linear layers "
                           f"(base_model.model.<module>.lora_A|lora_B.weight): {', '.join(sorted(foreign)[:10])}")
    if not parts:
        raise AdapterError(f"{source} holds no LoRA weights")
    weights = {}
    for module, ab in sorted(parts.items()):
        if set(ab) != {"A", "B"}:
            lacking = "lora_B" if "A" in ab else "lora_A"
            raise AdapterError(f"{source}: module {module} has no {lacking}.weight")
        a, b = ab["A"], ab["B"]
        if a.dim() != 2 or b.dim() != 2 or a.shape[0] != b.shape[1]:
            raise AdapterError(f"{source}: module {module} has lora_A {tuple(a.shape)} and lora_B {tuple(b.shape)}; "
                               "expected [r, in] and [out, r]")
        weights[module] = (a, b)
    return weights


def new_config(rank: int, alpha: float, modules: Sequence[str], dropout: float = 0.0) -> dict[str, Any]:
    """adapter_config.json of a plain LoRA on `modules`, as peft writes it (every LoraConfig field)."""
    from .optional import require

    peft = require("peft", "train", "LoRA adapters")
    config = peft.LoraConfig(r=int(rank), lora_alpha=alpha, lora_dropout=float(dropout),
                             target_modules=sorted(modules), bias="none", inference_mode=True).to_dict()
    return json.loads(json.dumps({k: sorted(v) if isinstance(v, set) else v for k, v in config.items()}))


def write_adapter(adapter: Adapter, directory: str | Path) -> Path:
    """Write `adapter` as a peft folder; each file is replaced atomically (weights first, then config)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    tensors = {}
    for module, (a, b) in sorted(adapter.weights.items()):
        tensors[f"{KEY_PREFIX}{module}.lora_A.weight"] = a.detach().to("cpu").clone()
        tensors[f"{KEY_PREFIX}{module}.lora_B.weight"] = b.detach().to("cpu").clone()
    metadata = {"format": "pt", METADATA_KEY: json.dumps(adapter.made_for, sort_keys=True)}
    atomic_write(directory / WEIGHTS_FILE, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    atomic_write_text(directory / CONFIG_FILE, json.dumps(adapter.config, indent=2, sort_keys=True) + "\n")
    atomic_write_text(directory / README_FILE, _model_card(adapter))
    return directory


def _model_card(adapter: Adapter) -> str:
    made = adapter.made_for
    base = made.get("base_weights") or {}
    lines = ["---", "library_name: peft", "tags:", "- lora", f"- {made.get('recipe', 'toolkit')}", "---", "",
             f"# LoRA adapter for {describe_model(made) or 'a toolkit recipe'}", "",
             f"Rank {adapter.config.get('r')}, alpha {adapter.config.get('lora_alpha')}, "
             f"{len(adapter.weights)} linear layers; made with toolkit {made.get('toolkit_version', '?')}"
             + (f" at step {made['step']} ({made.get('weights')} weights)" if made.get("step") is not None else "")
             + ".", ""]
    if base:
        lines += [f"Base weights: `{base.get('file')}` (sha256 {base.get('sha256') or 'unknown'}).", ""]
    lines += ["Apply it unmerged on top of the base model: `toolkit-generate --ckpt BASE --lora THIS_FOLDER[:SCALE]`, "
              "or in Python `toolkit.adapters.apply_adapters(recipe, [\"THIS_FOLDER:0.8\"])`; peft users: "
              "`peft.PeftModel.from_pretrained(recipe, THIS_FOLDER)`.", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ checks

def describe_model(config: Mapping[str, Any] | None) -> str:
    """'recipe diffrhythm, backbone dit_diffrhythm (dim 2048, depth 16, ...)' from a config or adapter metadata."""
    if not config:
        return ""
    parts = []
    if config.get("recipe"):
        parts.append(f"recipe {config['recipe']}")
    node = config.get("backbone")
    if isinstance(node, str):
        parts.append(f"backbone {node}")
    elif isinstance(node, Mapping):
        sizes = ", ".join(f"{k} {v}" for k, v in sorted(_scalars(node).items()))
        parts.append(f"backbone {node.get('type', '?')}" + (f" ({sizes})" if sizes else ""))
    return ", ".join(parts)


def _scalars(node: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in node.items() if k != "type" and isinstance(v, (int, float)) and not isinstance(v, bool)}


def backbone_differences(made_for: Mapping[str, Any], config: Mapping[str, Any] | None) -> list[str]:
    """'dim: 32 vs 48' for each number set in both backbone nodes (adapter vs model) that differs."""
    mine, theirs = made_for.get("backbone"), (config or {}).get("backbone")
    if not (isinstance(mine, Mapping) and isinstance(theirs, Mapping)):
        return []
    a, b = _scalars(mine), _scalars(theirs)
    return [f"{k}: {a[k]} vs {b[k]}" for k in sorted(set(a) & set(b)) if a[k] != b[k]]


def _node_type(node: Any) -> str | None:
    return node if isinstance(node, str) else node.get("type") if isinstance(node, Mapping) else None


def check_made_for(adapter: Adapter, config: Mapping[str, Any] | None) -> list[str]:
    """Mismatches between the model an adapter records it was made for and a model config (recipe, backbone type)."""
    made = adapter.made_for
    if not made or not config:
        return []
    problems = []
    if made.get("recipe") and config.get("recipe") and made["recipe"] != config["recipe"]:
        problems.append(f"recipe: adapter {made['recipe']}, model {config['recipe']}")
    mine, theirs = _node_type(made.get("backbone")), _node_type(config.get("backbone"))
    if mine and theirs and mine != theirs:
        problems.append(f"backbone: adapter {mine}, model {theirs}")
    return problems


def _listing(title: str, items: list[str], limit: int = 20) -> str:
    shown = "".join(f"\n    {item}" for item in items[:limit])
    more = f"\n    ... and {len(items) - limit} more" if len(items) > limit else ""
    return f"  {title} ({len(items)}):{shown}{more}"


def adapter_mismatch(model: nn.Module, adapter: Adapter) -> list[str]:
    """Every adapter key that does not fit `model` (module absent, not linear, or of another size); [] if it fits."""
    modules = dict(model.named_modules())
    absent, wrong = [], []
    for name, (a, b) in sorted(adapter.weights.items()):
        key_a, key_b = f"{KEY_PREFIX}{name}.lora_A.weight", f"{KEY_PREFIX}{name}.lora_B.weight"
        layer = modules.get(name)
        if layer is not None and hasattr(layer, "get_base_layer"):
            layer = layer.get_base_layer()  # an adapter applied earlier: check against the layer it wraps
        if layer is None:
            absent.append(key_a)
        elif not isinstance(layer, nn.Linear):
            wrong.append(f"{key_a}: the model's {name} is a {type(layer).__name__}, not a Linear layer")
        else:
            if a.shape[1] != layer.in_features:
                wrong.append(f"{key_a}: {tuple(a.shape)} vs the layer's {layer.in_features} inputs")
            if b.shape[0] != layer.out_features:
                wrong.append(f"{key_b}: {tuple(b.shape)} vs the layer's {layer.out_features} outputs")
    problems = []
    if absent:
        problems.append(_listing("keys of modules the model lacks", absent))
        hint = _prefix_hint(modules, [n for n in adapter.weights if n not in modules])
        if hint:
            problems.append(f"  hint: {hint}")
    if wrong:
        problems.append(_listing("keys whose shapes do not fit (adapter vs model)", wrong))
    return problems


def _prefix_hint(modules: Mapping[str, nn.Module], absent: list[str]) -> str:
    roots = {name.split(".")[0] for name in modules if name}
    for root in sorted(roots):
        if all(f"{root}.{name}" in modules for name in absent):
            return (f"every absent module exists under `{root}.`: the adapter was made on the bare `{root}` module; "
                    "adapters here name modules from the recipe (rename the keys to base_model.model."
                    f"{root}.<module>...)")
    return ""


# ------------------------------------------------------------------------------------------------ applying

@dataclass
class AppliedAdapter:
    """One adapter applied to a model: peft's adapter name for it, the spec, the adapter, and warnings."""

    name: str
    spec: AdapterSpec
    adapter: Adapter
    warnings: list[str] = field(default_factory=list)


_APPLIED_ATTR = "_toolkit_adapters"


def _lora_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [(name, m) for name, m in model.named_modules() if isinstance(m, BaseTunerLayer)]


def inject(model: nn.Module, modules: Sequence[str], rank: int, alpha: float, name: str, *, dropout: float = 0.0,
           config: Mapping[str, Any] | None = None) -> list[str]:
    """Wrap the named nn.Linear layers of `model` in peft LoRA layers holding adapter `name` (in place).

    `config` (an adapter_config.json) supplies use_rslora and rank/alpha patterns. peft freezes every
    non-adapter parameter it sees and leaves the new adapter trainable.
    """
    from .optional import require

    peft = require("peft", "train", "LoRA adapters")
    extra = {k: config[k] for k in ("use_rslora", "rank_pattern", "alpha_pattern") if config and config.get(k)}
    lora_config = peft.LoraConfig(r=int(rank), lora_alpha=alpha, lora_dropout=float(dropout),
                                  target_modules=list(modules), bias="none", **extra)
    peft.inject_adapter_in_model(lora_config, model, adapter_name=name)
    if hasattr(model, "peft_config"):
        del model.peft_config  # peft's bookkeeping for PeftModel; the layers carry everything needed
    return list(modules)


def apply_adapters(model: nn.Module, specs: Iterable[str | Mapping | AdapterSpec], *,
                   base: str | Path | None = None, base_sha256: str | None = None) -> list[AppliedAdapter]:
    """Apply LoRA adapters to `model` (a built recipe, base weights loaded) without merging them.

    specs: `DIR[:SCALE]` strings, {"path", "scale"} mappings or AdapterSpec; relative paths against `base`.
    Adapters applied by an earlier call are replaced, so the model then carries exactly these (an empty list
    removes them all). Every adapter is read and checked before the model is touched: one made for another
    model raises AdapterMismatchError naming the keys that do not fit, and the model stays as it was.
    The composition rule is in the module docstring. `base_sha256` (the base checkpoint's; a prefix is
    enough) is compared with the one the adapter records; a difference is only a warning
    (AppliedAdapter.warnings), since fp16 and fp32 copies of the same weights differ in bytes.
    Parameters keep their requires_grad; the adapters are frozen and follow `.to()`.
    """
    parsed = [parse_spec(s, base) for s in specs]
    seen: dict[Path, AdapterSpec] = {}
    for spec in parsed:
        key = spec.path.resolve()
        if key in seen:
            raise AdapterError(f"adapter {spec.path} is given twice ({seen[key]} and {spec}): give it once, with the "
                               "sum of the scales")
        seen[key] = spec
    if not parsed:  # nothing to apply: no need to import peft
        remove_adapters(model)
        return []
    adapters = [spec.adapter or read_adapter(spec.path) for spec in parsed]
    if _lora_layers(model) and not applied_adapters(model):
        raise AdapterError("the model already holds LoRA layers (a LoRA training run's?): apply adapters to the plain "
                           "base model, or export the run's adapter with `toolkit-train export-adapter`")
    config = getattr(model, "config", None)
    config = config if isinstance(config, Mapping) else None
    errors = []
    for spec, adapter in zip(parsed, adapters, strict=True):
        made_for = check_made_for(adapter, config)
        problems = [_listing("made for another model", made_for)] if made_for else []
        problems += adapter_mismatch(model, adapter)
        if problems and backbone_differences(adapter.made_for, config):
            problems.append(_listing("backbone settings that differ (adapter vs model)",
                                     backbone_differences(adapter.made_for, config)))
        if problems:
            made, this = describe_model(adapter.made_for), describe_model(config)
            header = f"adapter {spec.path} does not fit this model"
            if made or this:
                header += f" (made for: {made or 'unknown'}; this model: {this or 'unknown'})"
            errors.append(header + ":\n" + "\n".join(problems))
    if errors:
        raise AdapterMismatchError("\n".join(errors), errors)

    remove_adapters(model)
    grad = {p: p.requires_grad for p in model.parameters()}
    applied = []
    try:
        for i, (spec, adapter) in enumerate(zip(parsed, adapters, strict=True)):
            name = f"adapter{i}"
            inject(model, adapter.modules, int(adapter.config.get("r", 8)), adapter.config.get("lora_alpha", 8),
                   name, config=adapter.config)
            _load_weights(model, adapter, name)
            applied.append(AppliedAdapter(name, spec, adapter, _base_warnings(adapter, base_sha256)))
        _activate(model, applied)
    except BaseException:
        _unwrap(model)
        raise
    finally:
        for p, flag in grad.items():
            p.requires_grad_(flag)
    object.__setattr__(model, _APPLIED_ATTR, applied)
    return applied


def _load_weights(model: nn.Module, adapter: Adapter, name: str) -> None:
    for module, (a, b) in adapter.weights.items():
        layer = model.get_submodule(module)
        for part, value in (("lora_A", a), ("lora_B", b)):
            target = getattr(layer, part)[name].weight
            if tuple(target.shape) != tuple(value.shape):
                raise AdapterError(f"{adapter.path or 'adapter'}: {module}.{part} is {tuple(value.shape)} in the file "
                                   f"but its config makes it {tuple(target.shape)} (r / rank_pattern disagree with "
                                   "the weights)")
            with torch.no_grad():
                target.copy_(value)


def _activate(model: nn.Module, applied: list[AppliedAdapter]) -> None:
    """All adapters active at once, frozen, each with its user scale; new layers in the model's train/eval mode."""
    names = [a.name for a in applied]
    for _, layer in _lora_layers(model):
        layer.set_adapter([n for n in names if n in layer.lora_A], inference_mode=True)
        for item in applied:
            layer.set_scale(item.name, item.spec.scale)
        layer.train(model.training)


def _base_warnings(adapter: Adapter, base_sha256: str | None) -> list[str]:
    recorded = (adapter.made_for.get("base_weights") or {}).get("sha256")
    if not (recorded and base_sha256):
        return []
    n = min(len(recorded), len(base_sha256))
    if recorded[:n] == base_sha256[:n]:
        return []
    file = (adapter.made_for.get("base_weights") or {}).get("file", "?")
    return [f"adapter {adapter.name} was trained on {file} (sha256 {recorded[:16]}), not on these base weights "
            f"(sha256 {base_sha256[:16]}): it fits their shapes, but may not suit their values"]


def _unwrap(model: nn.Module) -> int:
    """Replace every peft LoRA layer by the layer it wraps (its weights untouched)."""
    layers = _lora_layers(model)
    for name, layer in layers:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, layer.get_base_layer())
    return len(layers)


def remove_adapters(model: nn.Module) -> int:
    """Take off the adapters `apply_adapters` put on `model`; returns how many there were."""
    applied = getattr(model, _APPLIED_ATTR, None)
    if not applied:
        return 0
    _unwrap(model)
    object.__setattr__(model, _APPLIED_ATTR, [])
    return len(applied)


def applied_adapters(model: nn.Module) -> list[AppliedAdapter]:
    return list(getattr(model, _APPLIED_ATTR, None) or [])


def describe(applied: Iterable[AppliedAdapter]) -> list[dict[str, Any]]:
    """JSON records of applied adapters, for a generation manifest."""
    records = []
    for item in applied:
        adapter = item.adapter
        ranks = sorted({adapter.rank(m) for m in adapter.weights})
        made = adapter.made_for
        records.append({
            "path": str(item.spec.path.resolve()),
            "name": item.spec.path.name,
            "scale": item.spec.scale,
            "sha256": adapter.sha256,
            "rank": ranks[0] if len(ranks) == 1 else ranks,
            "alpha": adapter.config.get("lora_alpha"),
            "use_rslora": bool(adapter.config.get("use_rslora")),
            "modules": len(adapter.weights),
            "made_for": {k: made[k] for k in ("recipe", "backbone", "base_weights", "step", "weights") if k in made},
        })
    return records


# ------------------------------------------------------------------------------------------------ merging

def merge_into_state(state: Mapping[str, torch.Tensor], adapters: Sequence[tuple[Adapter, float]]
                     ) -> dict[str, torch.Tensor]:
    """Plain weights with adapters merged: W + sum_i scale_i * s_i * B_i A_i, summed in float64, stored in W's dtype.

    `state` is a model's state dict (`<module>.weight` keys); the result loads strictly into the plain model.
    """
    out = dict(state)
    deltas: dict[str, torch.Tensor] = {}
    for adapter, scale in adapters:
        absent = []
        for module, (a, b) in adapter.weights.items():
            key = f"{module}.weight"
            if key not in out:
                absent.append(key)
                continue
            if tuple(out[key].shape) != (b.shape[0], a.shape[1]):
                raise AdapterMismatchError(f"adapter {adapter.name}: {module} is {b.shape[0]}x{a.shape[1]} but "
                                           f"{key} is {tuple(out[key].shape)}", [key])
            delta = (b.double() @ a.double()) * (float(scale) * adapter.scaling(module))
            deltas[key] = deltas[key] + delta if key in deltas else delta
        if absent:
            raise AdapterMismatchError(f"adapter {adapter.name} adapts weights the state dict lacks: "
                                       f"{', '.join(sorted(absent)[:10])}", absent)
    for key, delta in deltas.items():
        out[key] = (out[key].double() + delta).to(out[key].dtype)
    return out

