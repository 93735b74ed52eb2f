"""The one trainer every recipe uses (accelerate: DDP over processes and machines, gloo on CPU).

A step is one optimizer update over the GLOBAL batch of `train.batch_size` items chosen by the batch
plan (toolkit.training.batching); `grad_accum` micro-batches and the processes each compute a slice of it.
The trainer all-reduces the number of valid frames of the whole step and hands it to
`recipe.training_step(batch, StepContext(num_valid_global=, world_size=, ...))`, so the summed, DDP-averaged
gradient is the
gradient of the mean loss over every valid frame of the step: the result does not depend on how the
batch was split (up to float summation order).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import __version__
from ..checkpoints import FORMAT_VERSION, load_checkpoint
from ..config import to_plain
from ..io import atomic_write_text
from ..protocols import StepContext
from .batching import BatchPlan, PlanBatchSampler, check_divisible, make_loader
from .checkpoint import CheckpointManager
from .config import TrainConfig
from .lora import ADAPTER_DIR, apply_lora, ema_copy, frozen_parameter_names, write_checkpoint_adapter
from .rng import capture_rng_state, keyed_generator, restore_rng_state
from .weights import init_from, strict_load

METRICS = "metrics.jsonl"
SUMMARY = "train_summary.json"


class _TrainingStep(nn.Module):
    """Routes `training_step` through `forward`, so DDP's gradient hooks see the call."""

    def __init__(self, recipe: nn.Module):
        super().__init__()
        self.recipe = recipe

    def forward(self, batch, ctx: StepContext):
        return self.recipe.training_step(batch, ctx)


def warmup_then_linear_decay(warmup_steps: int, max_steps: int, floor: float = 1e-8):
    """Upstream's SequentialLR(LinearLR(1e-8 -> 1, warmup), LinearLR(1 -> 1e-8, rest)) as one lambda."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return floor + (1 - floor) * step / warmup_steps
        decay = max(1, max_steps - warmup_steps)
        return max(floor, 1 - (1 - floor) * (step - warmup_steps) / decay)

    return factor


def make_accelerator(train: TrainConfig):
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    cpu = train.device == "cpu" or (train.device == "auto" and not torch.cuda.is_available())
    mixed = train.mixed_precision if (not cpu or train.cpu_mixed_precision) else "no"
    return Accelerator(cpu=cpu, mixed_precision=mixed, kwargs_handlers=[
        DistributedDataParallelKwargs(find_unused_parameters=train.find_unused_parameters)])


def _to_device(batch: Mapping[str, Any], device) -> dict[str, Any]:
    """Tensors of a batch (and of its nested mappings, e.g. the conditions) on `device`."""
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor)
            else _to_device(v, device) if isinstance(v, Mapping) else v for k, v in batch.items()}


class Trainer:
    """Trains `recipe` on `dataset` into `exp_dir`; `config` is the fully resolved config (train: section).

    recipe: toolkit.protocols.Recipe with training_step(batch, StepContext); its state_dict() is what is
      trained and saved.
    dataset / valid_dataset: toolkit.protocols.Dataset taking (index, step, position) keys, with `lengths`
      and `collate`. Without valid_dataset, `train.valid_size` items are held out of `dataset`.
    """

    def __init__(self, recipe: nn.Module, dataset, exp_dir: str | Path, config: Any, *, valid_dataset=None,
                 accelerator=None):
        self.config = to_plain(config)
        self.train = TrainConfig.from_config(self.config.get("train", {}))
        self.recipe = recipe
        self.dataset = dataset
        self.valid_dataset = valid_dataset
        self.exp_dir = Path(exp_dir)
        self.accelerator = accelerator or make_accelerator(self.train)
        self.world_size = self.accelerator.num_processes
        self.rank = self.accelerator.process_index
        self.is_main = self.accelerator.is_main_process
        self.checkpoints = CheckpointManager(self.exp_dir / "checkpoints", self.train.keep_last)
        self.tb = None
        check_divisible(self.train.batch_size, self.train.grad_accum, self.world_size)

    # ----------------------------------------------------------------- printing and metrics
    def log(self, message: str) -> None:
        if self.is_main:
            from tqdm import tqdm

            tqdm.write(message)

    def _write_metrics(self, record: dict) -> None:
        if not self.is_main:
            return
        with open(self.exp_dir / METRICS, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for key, value in record.items():
                if key != "step":
                    tag = f"valid/{key}" if key.startswith("valid") else f"train/{key}"
                    self.tb.add_scalar(tag, value, record["step"])

    def _read_metrics(self, upto: int) -> list[dict]:
        """Records of steps <= upto (a killed run may have logged steps after its last checkpoint)."""
        path = self.exp_dir / METRICS
        if not path.is_file():
            return []
        records = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill
            if record.get("step", math.inf) <= upto:
                records.append(record)
        return records

    # ----------------------------------------------------------------- data
    def _split_items(self) -> tuple[list[int], list[tuple[Any, int]]]:
        """(training indices, validation (dataset, index) pairs)."""
        n = len(self.dataset)
        if self.valid_dataset is not None:
            return list(range(n)), [(self.valid_dataset, i) for i in range(len(self.valid_dataset))]
        k = min(self.train.valid_size, n)
        chosen = torch.randperm(n, generator=keyed_generator(self.train.seed, "valid")).tolist()[:k]
        if k and n - k >= k:
            held = set(chosen)
            return [i for i in range(n) if i not in held], [(self.dataset, i) for i in sorted(chosen)]
        if k:
            self.log(f"note: only {n} items; validating on {k} training items (set data.valid for a held-out set)")
        return list(range(n)), [(self.dataset, i) for i in sorted(chosen)]

    def _valid_batches(self, items: list[tuple[Any, int]]) -> tuple[list[dict], int]:
        """This process's fixed validation batches (keys (index, -1, position)) and the global frame count."""
        items = [item for item in items for _ in range(max(1, self.train.valid_windows))]
        mine = [(ds, idx, pos) for pos, (ds, idx) in enumerate(items) if pos % self.world_size == self.rank]
        bs = max(1, self.train.valid_batch_size)
        batches = []
        for start in range(0, len(mine), bs):
            chunk = mine[start:start + bs]
            ds = chunk[0][0]
            batches.append(ds.collate([ds[(idx, -1, pos)] for _, idx, pos in chunk]))
        local = sum(int(b["lens"].sum()) for b in batches)
        total = int(self._reduce(torch.tensor(float(local)), "sum").item())
        return batches, total

    def _reduce(self, tensor: torch.Tensor, op: str) -> torch.Tensor:
        if self.world_size == 1:
            return tensor
        return self.accelerator.reduce(tensor.to(self.accelerator.device), op).cpu()

    # ----------------------------------------------------------------- validation
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        if not self.valid_batches:
            return {}
        # The EMA weights are what generation loads, so they are the ones validated when the trainer keeps them.
        recipe = self.ema.ema_model if self.ema is not None else self.recipe
        self.valid_weights = "ema" if self.ema is not None else "online"
        # modes of both, restored after: the EMA copy may share modules with the online model (a LoRA run's
        # frozen base), and switching one to eval would switch the other's shared modules too
        modes = [(m, m.training) for m in {id(recipe): recipe, id(self.recipe): self.recipe}.values()]
        recipe.eval()
        groups = list(self.train.valid_drop)
        always = {g: True for g in self.train.valid_drop_always}
        times = [float(t) for t in self.train.valid_times] or [None]
        out = {}
        try:
            for name, drop in (("valid_loss", False), ("valid_loss_dropped", True)):
                if drop and not groups:
                    continue
                total = torch.zeros((), dtype=torch.float64)
                for batch in self.valid_batches:
                    batch = _to_device(batch, self.accelerator.device)
                    for time in times:
                        # a fixed time is only passed when set, so recipes without time_override still validate
                        ctx = StepContext(step=-1, seed=self.train.seed, num_valid_global=self.valid_frames,
                                          drop_override={**{g: drop for g in groups}, **always}, time_override=time)
                        with self.accelerator.autocast():
                            result = recipe.training_step(batch, ctx)
                        total += result["loss"].detach().double().cpu()
                out[name] = float(self._reduce(total, "sum")) / len(times)
        finally:
            for module, training in modes:
                module.train(training)
        return out

    # ----------------------------------------------------------------- checkpoints
    def _rng_states(self) -> list[dict]:
        state = capture_rng_state()
        if self.world_size == 1:
            return [state]
        gathered: list = [None] * self.world_size
        torch.distributed.all_gather_object(gathered, state)
        return gathered

    def save(self, step: int) -> None:
        rng = self._rng_states()  # collective: every process takes part
        if self.is_main:
            payload = {
                "format_version": FORMAT_VERSION,
                "model_state_dict": self.recipe.state_dict(),
                "optimizer_state_dict": self.optimizer.state_dict(),
                "scheduler_state_dict": self.scheduler.state_dict(),
                "step": int(step),
                "config": self.config,
                "rng_state": rng,
                "data_state": self.plan.state(step),
                "toolkit_version": __version__,
            }
            if self.ema is not None:
                payload["ema_model_state_dict"] = self.ema.state_dict()
            scaler = getattr(self.accelerator, "scaler", None)
            if scaler is not None:
                payload["scaler_state_dict"] = scaler.state_dict()
            path = self.checkpoints.save(payload)
            self.log(f"step {step}: saved {path}")
            if self.train.lora.rank > 0:  # the adapter as a peft folder, to share or apply with --lora
                write_checkpoint_adapter(payload, self.exp_dir / ADAPTER_DIR)
        self.accelerator.wait_for_everyone()

    def _resume(self, ckpt: dict) -> int:
        step = int(ckpt["step"])
        self.optimizer.load_state_dict(ckpt["optimizer_state_dict"])
        self.scheduler.load_state_dict(ckpt["scheduler_state_dict"])
        if self.ema is not None:
            if "ema_model_state_dict" not in ckpt:
                raise ValueError("the checkpoint has no EMA weights but train.ema.enabled is true")
            self.ema.load_state_dict(ckpt["ema_model_state_dict"])
        scaler = getattr(self.accelerator, "scaler", None)
        if scaler is not None and "scaler_state_dict" in ckpt:
            scaler.load_state_dict(ckpt["scaler_state_dict"])
        changed = self.plan.mismatch(ckpt.get("data_state", {}))
        if changed:
            self.log("warning: the batch plan differs from the checkpoint's, so batches after the resume "
                     "differ from an uninterrupted run: " + "; ".join(changed))
        self._rng_to_restore = None
        states = ckpt.get("rng_state") or []
        if len(states) == self.world_size:
            self._rng_to_restore = states[self.rank]
        else:
            self.log(f"warning: the checkpoint holds RNG states of {len(states)} processes, this run has "
                     f"{self.world_size}; global RNG streams restart")
        return step

    # ----------------------------------------------------------------- setup
    def _setup(self) -> int:
        t = self.train
        resume = None
        if self.is_main:
            self.checkpoints.remove_stale_temporaries()
        found = self.checkpoints.last.is_file()
        seen = int(self._reduce(torch.tensor(float(found)), "sum").item())
        if 0 < seen < self.world_size:
            raise FileNotFoundError(
                f"{self.checkpoints.last} is visible to {seen} of {self.world_size} processes: the experiment folder "
                f"must be on a file system every machine shares (or copied to each) before resuming")
        if found:
            resume = load_checkpoint(self.checkpoints.last)
            self.log(f"resuming from {self.checkpoints.last} (step {resume['step']})")
        elif t.init_from:
            init_from(self.recipe, t.init_from, use_ema=t.init_use_ema)
            self.log(f"initialised weights from {t.init_from}")
        if t.lora.rank > 0:
            names = apply_lora(self.recipe, t.lora.rank, t.lora.alpha, t.lora.targets, t.lora.dropout)
            self.log(f"LoRA rank {t.lora.rank} on {len(names)} linear layers")
        if resume is not None:
            strict_load(self.recipe, resume["model_state_dict"], source=str(self.checkpoints.last))
        params = [p for p in self.recipe.parameters() if p.requires_grad]
        if not params:
            raise ValueError("the recipe has no trainable parameters")
        n_train = sum(p.numel() for p in params)
        n_all = sum(p.numel() for p in self.recipe.parameters())
        self.log(f"trainable parameters: {n_train:,} of {n_all:,}")
        optimizer = torch.optim.AdamW(params, lr=t.lr, betas=tuple(t.betas), weight_decay=t.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, warmup_then_linear_decay(t.warmup_steps, t.max_steps))
        self.model, self.optimizer = self.accelerator.prepare(_TrainingStep(self.recipe), optimizer)
        self.ema = None
        if t.ema.enabled:  # on every process (identical there): each validates its share on the EMA weights
            from ema_pytorch import EMA

            # the EMA copy shares what does not train (a LoRA run's base model, the codec) and skips it
            self.ema = EMA(self.recipe, ema_model=ema_copy(self.recipe),
                           ignore_names=frozen_parameter_names(self.recipe), beta=t.ema.beta,
                           update_after_step=t.ema.update_after_step, update_every=t.ema.update_every,
                           power=t.ema.power, inv_gamma=t.ema.inv_gamma, include_online_model=False)
        train_idx, valid_items = self._split_items()
        self.plan = BatchPlan(self.dataset.lengths, t.batch_size, t.seed, indices=train_idx,
                              bucket_batches=t.bucket_batches)
        self.valid_batches, self.valid_frames = self._valid_batches(valid_items)
        self._rng_to_restore = None
        return self._resume(resume) if resume is not None else 0

    # ----------------------------------------------------------------- the loop
    def fit(self) -> dict[str, float]:
        t, acc = self.train, self.accelerator
        self.exp_dir.mkdir(parents=True, exist_ok=True)
        start = self._setup()
        self.tb = None
        history = self._read_metrics(upto=start) if start > 0 else []
        if self.is_main:
            atomic_write_text(self.exp_dir / METRICS, "".join(json.dumps(r) + "\n" for r in history))
            if t.tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(self.exp_dir / "tensorboard"), purge_step=start if start else None)
        valid_done = {r["step"]: r for r in history if "valid_loss" in r}

        def maybe_validate(step: int, force: bool = False) -> None:
            if step in valid_done or not (force or step % t.valid_every == 0):
                return
            figures = self.validate()
            if figures:
                record = {"step": step, **figures}
                valid_done[step] = record
                self._write_metrics(record)
                self.log(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in figures.items()))

        maybe_validate(0, force=start == 0)
        sampler = PlanBatchSampler(self.plan, start_step=start, max_steps=t.max_steps, grad_accum=t.grad_accum,
                                   rank=self.rank, world_size=self.world_size)
        loader = iter(make_loader(self.dataset, sampler, t.num_workers, seed=t.seed))
        if self._rng_to_restore is not None:
            restore_rng_state(self._rng_to_restore)

        from tqdm import tqdm

        bar = tqdm(total=t.max_steps, initial=start, disable=not (self.is_main and t.progress),
                   desc="train", dynamic_ncols=True)
        window_loss, window_steps, window_start = 0.0, 0, time.perf_counter()
        self.model.train()
        step = start
        while step < t.max_steps:
            micro = [next(loader) for _ in range(t.grad_accum)]
            local = torch.tensor(float(sum(int(b["lens"].sum()) for b in micro)))
            num_valid = int(self._reduce(local, "sum").item())
            step_loss = 0.0
            for m, batch in enumerate(micro):
                sync = m == t.grad_accum - 1
                ctx = contextlib.nullcontext() if sync else acc.no_sync(self.model)
                with ctx:
                    with acc.autocast():
                        out = self.model(_to_device(batch, acc.device), StepContext(
                            step=step, seed=t.seed, num_valid_global=num_valid, world_size=self.world_size))
                    acc.backward(out["loss"])
                step_loss += float(out["loss"].detach())
            params = [p for p in self.recipe.parameters() if p.requires_grad]
            if t.max_grad_norm > 0:
                grad_norm = acc.clip_grad_norm_(params, t.max_grad_norm)
            else:
                grad_norm = torch.linalg.vector_norm(
                    torch.stack([p.grad.detach().norm() for p in params if p.grad is not None]))
            lr = self.scheduler.get_last_lr()[0]
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            if self.ema is not None:
                self.ema.update()
            step += 1
            # the loss of a process is sum_local / frames_global * world_size: the mean over processes is the step's
            window_loss += step_loss / self.world_size
            window_steps += 1
            bar.update(1)
            if step % t.log_every == 0 or step == t.max_steps:
                loss = float(self._reduce(torch.tensor(window_loss / window_steps), "sum"))
                elapsed = time.perf_counter() - window_start
                record = {"step": step, "loss": loss, "lr": lr, "grad_norm": float(grad_norm),
                          "steps_per_sec": window_steps / max(elapsed, 1e-9)}
                self._write_metrics(record)
                bar.set_postfix(loss=f"{loss:.4f}", steps_per_s=f"{record['steps_per_sec']:.2f}")
                window_loss, window_steps, window_start = 0.0, 0, time.perf_counter()
            maybe_validate(step, force=step == t.max_steps)
            if step % t.save_every == 0 or step == t.max_steps:
                self.save(step)
        bar.close()
        if start >= t.max_steps:
            maybe_validate(t.max_steps, force=True)
        return self._summary(valid_done)

    def _summary(self, valid_done: dict[int, dict]) -> dict[str, Any]:
        if not valid_done:
            return {}
        first, last = valid_done[min(valid_done)], valid_done[max(valid_done)]
        summary = {"initial_step": min(valid_done), "initial_valid_loss": first["valid_loss"],
                   "final_step": max(valid_done), "final_valid_loss": last["valid_loss"],
                   "valid_times": [float(t) for t in self.train.valid_times],
                   "valid_weights": getattr(self, "valid_weights", "online")}
        if "valid_loss_dropped" in last:
            summary["final_valid_loss_dropped"] = last["valid_loss_dropped"]
            summary["valid_drop"] = list(self.train.valid_drop)
        if self.is_main:
            atomic_write_text(self.exp_dir / SUMMARY, json.dumps(summary, indent=2) + "\n")
            dropped = summary.get("final_valid_loss_dropped")
            lines = [f"initial valid loss (step {summary['initial_step']}): {summary['initial_valid_loss']:.6f}",
                     f"final valid loss (step {summary['final_step']}): {summary['final_valid_loss']:.6f}"]
            if dropped is not None:
                lines.append(f"final valid loss with {' and '.join(self.train.valid_drop)} dropped: {dropped:.6f}")
            print("\n".join(lines), flush=True)
            if self.tb is not None:
                self.tb.close()
        return summary
