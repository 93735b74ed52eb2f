"""The `train:` section of a config: every key, its default and what it means (see docs/training.md)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..config import ConfigError, to_plain
from .lora import DEFAULT_TARGETS


@dataclass
class EMAConfig:
    enabled: bool = True
    beta: float = 0.9999            # ema-pytorch defaults = upstream DiffRhythm
    update_after_step: int = 100
    update_every: int = 10
    power: float = 2 / 3
    inv_gamma: float = 1.0


@dataclass
class LoRAConfig:
    rank: int = 0                   # 0 = no LoRA (full fine-tuning)
    alpha: float | None = None      # None -> rank (scale alpha / rank = 1)
    targets: list = field(default_factory=lambda: list(DEFAULT_TARGETS))
    dropout: float = 0.0            # peft's lora_dropout on the adapters' input (training only)


@dataclass
class TrainConfig:
    batch_size: int = 8             # GLOBAL items per optimizer step (all processes, all accumulation steps)
    max_steps: int = 1000           # optimizer updates
    lr: float = 7.5e-5
    weight_decay: float = 0.01
    betas: list = field(default_factory=lambda: [0.9, 0.999])
    warmup_steps: int = 20          # linear warm-up from ~0, then linear decay to ~0 at max_steps
    grad_accum: int = 1             # micro-batches per optimizer step
    max_grad_norm: float = 1.0      # <= 0: no clipping (the norm is still logged)
    ema: EMAConfig = field(default_factory=EMAConfig)
    save_every: int = 1000
    keep_last: int = 3
    valid_every: int = 500
    valid_size: int = 8             # items held out of the training set when the config has no data.valid
    valid_batch_size: int = 8       # per process
    valid_windows: int = 1          # fixed windows (each with its own noise and times) per validation item
    valid_drop: list = field(default_factory=lambda: ["lyrics", "style"])
    valid_drop_always: list = field(default_factory=list)  # groups off in both validation losses
    valid_times: list = field(default_factory=list)  # fixed flow times, each window at each; [] = the objective's draws
    log_every: int = 10
    num_workers: int = 0
    seed: int = 0
    mixed_precision: str = "no"     # "no" | "fp16" | "bf16"; applied on GPU only unless cpu_mixed_precision
    cpu_mixed_precision: bool = False
    device: str = "auto"            # "auto" | "cpu" | "cuda"
    init_from: str | None = None    # published cfm_model.pt, .safetensors, or a trainer checkpoint
    init_use_ema: bool = True       # from a trainer checkpoint: start from its EMA weights
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    bucket_batches: int = 16        # batches pooled per length-sorting bucket
    find_unused_parameters: bool = False
    tensorboard: bool = True
    progress: bool = True

    @classmethod
    def from_config(cls, node: Any) -> TrainConfig:
        return _build(cls, to_plain(node) or {}, "train")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _build(cls, values: Mapping, where: str):
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where} must be a mapping, not {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(f'{where}.{k}' for k in unknown)}; "
                          f"known: {', '.join(sorted(fields))}")
    kwargs = {}
    for name, value in values.items():
        sub = {"ema": EMAConfig, "lora": LoRAConfig}.get(name) if cls is TrainConfig else None
        kwargs[name] = _build(sub, value, f"{where}.{name}") if sub else value
    cfg = cls(**kwargs)
    if cls is TrainConfig:
        cfg.validate()
    return cfg


def _validate(cfg: TrainConfig) -> None:
    for name in ("batch_size", "max_steps", "grad_accum", "save_every", "valid_every", "log_every"):
        if int(getattr(cfg, name)) < 1:
            raise ConfigError(f"train.{name} must be at least 1, got {getattr(cfg, name)}")
    if cfg.mixed_precision not in ("no", "fp16", "bf16"):
        raise ConfigError(f"train.mixed_precision must be no, fp16 or bf16, not {cfg.mixed_precision!r}")
    if cfg.device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"train.device must be auto, cpu or cuda, not {cfg.device!r}")
    bad_times = [t for t in cfg.valid_times if not (isinstance(t, (int, float)) and 0.0 <= t < 1.0)]
    if bad_times:
        raise ConfigError(f"train.valid_times must be flow times in [0, 1), got {bad_times}")
    if cfg.valid_windows < 1:
        raise ConfigError(f"train.valid_windows must be at least 1, got {cfg.valid_windows}")
    overlap = sorted(set(cfg.valid_drop) & set(cfg.valid_drop_always))
    if overlap:
        raise ConfigError(f"{overlap} cannot be in both train.valid_drop (compared) and train.valid_drop_always "
                          "(dropped in both losses)")
    if cfg.lora.rank < 0 or not 0.0 <= cfg.lora.dropout < 1.0:
        raise ConfigError(f"train.lora needs rank >= 0 (0 = no LoRA) and 0 <= dropout < 1, got rank {cfg.lora.rank}, "
                          f"dropout {cfg.lora.dropout}")
    if cfg.lora.alpha is not None and cfg.lora.alpha <= 0:
        raise ConfigError(f"train.lora.alpha must be positive (or null for alpha = rank), got {cfg.lora.alpha}")
    if cfg.batch_size % cfg.grad_accum:
        raise ConfigError(f"train.batch_size ({cfg.batch_size}) must be divisible by train.grad_accum "
                          f"({cfg.grad_accum})")


TrainConfig.validate = _validate
