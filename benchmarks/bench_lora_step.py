"""Peak RSS and time of one LoRA training step of the released-size DiffRhythm DiT on the CPU (random weights).

A step is what the trainer does per optimiser update for one micro-batch of one item: the config's CFM loss on a
window of `--frames` latent frames with every condition given, backward, gradient clipping, AdamW on the adapters
and the EMA update (EMA copy sharing the frozen base, as the trainer builds it). `fp32` runs it as is; `bf16` under
torch.autocast(bfloat16), which is what `train.mixed_precision: bf16` does (with `cpu_mixed_precision` on a CPU):
the weights stay fp32 in both. The codec and the style model are not built (training reads cached latents and
style embeddings), so their memory is not counted. Each (dtype, implementation) runs in its own process and
reports its peak RSS (VmHWM) over the steps, and the RSS after building the model.

`--impl plain` swaps peft's LoRA layer for a minimal hand-written one (y = W x + b + s B (A x)) to compare speed and
memory; `--exact` compares the two implementations' loss and adapter gradients on the same weights and inputs;
`--micro N` times one adapted layer, the two alternating (the measurements behind training through peft,
docs/training.md).

    .venv/bin/python benchmarks/bench_lora_step.py --frames 2048 --dtypes fp32 bf16
    .venv/bin/python benchmarks/bench_lora_step.py backbone.depth=4 --frames 512 --impl peft plain
    .venv/bin/python benchmarks/bench_lora_step.py backbone.depth=2 --exact --frames 256
    .venv/bin/python benchmarks/bench_lora_step.py --micro 40 --frames 1024

The machine is usually shared: times are upper bounds; the machine line says what else was running.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "egs/diffrhythm/conf/finetune_lora_released.yaml"


class PlainLoRALinear(nn.Module):
    """The reference: a frozen nn.Linear plus s * B (A x), nothing else."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        self.base = base
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_A, a=5 ** 0.5)
        self.scaling = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + nn.functional.linear(nn.functional.linear(x, self.lora_A), self.lora_B) * self.scaling


def plain_lora(model: nn.Module, rank: int, alpha: float, targets) -> list[str]:
    from toolkit.training.lora import resolve_targets

    names = resolve_targets(model, targets)
    for p in model.parameters():
        p.requires_grad_(False)
    for name in names:
        parent, _, child = name.rpartition(".")
        holder = model.get_submodule(parent)
        setattr(holder, child, PlainLoRALinear(getattr(holder, child), rank, alpha))
    return names


def randomize(model: nn.Module) -> None:
    """Random weights everywhere (the DiT's output projection starts at zero, which would zero the gradients)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(0, 1.0 / max(p.shape[-1], 1) ** 0.5)
            if name.endswith("norm.weight"):
                p.add_(1.0)


def build(config: str, overrides: list[str], impl: str):
    """(model holding the DiT at `transformer`, objective, LoRA settings) from the config."""
    from toolkit.config import load_config, to_plain
    from toolkit.registry import BACKBONES, OBJECTIVES
    from toolkit.training.config import TrainConfig
    from toolkit.training.lora import apply_lora

    cfg = load_config(config, overrides)
    plain = to_plain(cfg)
    lora = TrainConfig.from_config(plain["train"]).lora
    alpha = float(lora.alpha if lora.alpha is not None else lora.rank)
    model = nn.Module()
    model.transformer = BACKBONES.build(plain["backbone"], latent_dim=int(plain["codec"]["latent_dim"]),
                                        max_frames=int(plain["max_frames"]))
    randomize(model)
    if impl == "peft":
        apply_lora(model, lora.rank, alpha, lora.targets, lora.dropout)
    else:
        plain_lora(model, lora.rank, alpha, lora.targets)
    return model, OBJECTIVES.build(plain.get("objective", "cfm")), lora, plain


def inputs(model: nn.Module, frames: int, seed: int = 0):
    dit = model.transformer
    g = torch.Generator().manual_seed(seed)
    x1 = torch.randn(1, frames, dit.latent_dim, generator=g)
    conditions = {"lyrics": torch.randint(1, 363, (1, frames), generator=g),
                  "style": nn.functional.normalize(torch.randn(1, dit.style_dim, generator=g), dim=-1),
                  "start_time": torch.zeros(1)}
    return x1, conditions, torch.tensor([frames])


class SavedBytes:
    """Bytes autograd keeps for the backward pass, counted once per storage, parameters excluded: the step's
    activation memory, exact and linear in the frames (unlike peak RSS, which the allocator blurs)."""

    def __init__(self, model: nn.Module):
        self.params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self.seen: set[int] = set()
        self.total = 0

    def pack(self, tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in self.params and ptr not in self.seen:
            self.seen.add(ptr)
            self.total += storage.nbytes()
        return tensor

    def counting(self, enabled: bool):
        import contextlib

        if not enabled:
            return contextlib.nullcontext()
        return torch.autograd.graph.saved_tensors_hooks(self.pack, lambda tensor: tensor)


def worker(config: str, overrides: list[str], impl: str, dtype: str, frames: int, steps: int) -> dict:
    from ema_pytorch import EMA

    from toolkit.eval.memory import peak_rss_mb, reset_peak
    from toolkit.training.lora import ema_copy, frozen_parameter_names

    torch.manual_seed(0)
    start = time.perf_counter()
    model, objective, lora, plain = build(config, overrides, impl)
    model.train()
    train = plain["train"]
    ema_cfg = train.get("ema", {})
    ema = EMA(model, ema_model=ema_copy(model), ignore_names=frozen_parameter_names(model),
              beta=ema_cfg.get("beta", 0.999), update_after_step=0, update_every=1, include_online_model=False)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=float(train.get("lr", 1e-4)), weight_decay=0.01)
    built_s = time.perf_counter() - start
    built_rss = peak_rss_mb()
    x1, conditions, lens = inputs(model, frames)
    times, losses = [], []
    saved = SavedBytes(model)
    reset_peak()
    for step in range(steps):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"), saved.counting(step == 0):
            loss = objective(model.transformer, x1, conditions, lens, step=step)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        ema.update()
        times.append(time.perf_counter() - start)
        losses.append(float(loss))
    return {"impl": impl, "dtype": dtype, "frames": frames, "rank": lora.rank,
            "trainable": sum(p.numel() for p in params), "total": sum(p.numel() for p in model.parameters()),
            "built_s": built_s, "built_rss_mib": built_rss, "step_s": times, "loss": losses,
            "peak_rss_mib": peak_rss_mb(), "saved_mib": saved.total / 2**20}


def exact(config: str, overrides: list[str], frames: int) -> dict:
    """peft vs the plain layer on the same weights and inputs: loss and adapter-gradient differences."""
    results = {}
    for impl in ("peft", "plain"):
        torch.manual_seed(0)
        model, objective, lora, _ = build(config, overrides, impl)
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():  # the same non-zero adapters in both, in module order
            for _, p in sorted(model.named_parameters()):
                if p.requires_grad:
                    p.copy_(torch.randn(p.shape, generator=g) * 0.02)
        x1, conditions, lens = inputs(model, frames)
        loss = objective(model.transformer, x1, conditions, lens, step=0)["loss"]
        loss.backward()
        grads = [p.grad.double() for _, p in sorted(model.named_parameters()) if p.requires_grad]
        results[impl] = (float(loss.detach()), grads)
    (lp, gp), (lq, gq) = results["peft"], results["plain"]
    scale = max(float(g.abs().max()) for g in gq)
    diff = max(float((a - b).abs().max()) for a, b in zip(gp, gq, strict=True))
    return {"frames": frames, "loss_peft": lp, "loss_plain": lq, "loss_abs_diff": abs(lp - lq),
            "grad_max_abs_diff": diff, "grad_max_abs": scale, "adapted_layers": len(gp) // 2}


def micro(frames: int, repeats: int, rank: int = 16) -> dict:
    """Forward + backward of one adapted 2048 -> 8192 layer (gate_proj's shape), peft's and the plain layer
    alternating, so both see the same machine load; the minimum over the repeats is the robust figure."""
    import statistics

    from toolkit.adapters import inject

    torch.manual_seed(0)
    base = nn.Linear(2048, 8192, bias=False)
    holders = {}
    for impl in ("peft", "plain"):
        holder = nn.Module()
        holder.layer = nn.Linear(2048, 8192, bias=False)
        holder.layer.load_state_dict(base.state_dict())
        if impl == "peft":
            inject(holder, ["layer"], rank, float(rank), "default")
        else:
            plain_lora(holder, rank, float(rank), ["layer"])
        holders[impl] = holder
    x = torch.randn(1, frames, 2048, requires_grad=True)  # inputs carry grads: earlier layers are adapted too
    times: dict[str, list[float]] = {"peft": [], "plain": []}
    for i in range(repeats + 1):
        for impl in ("peft", "plain") if i % 2 else ("plain", "peft"):
            start = time.perf_counter()
            holders[impl].layer(x).square().mean().backward()
            if i:
                times[impl].append(time.perf_counter() - start)
    return {impl: {"min_ms": 1000 * min(t), "median_ms": 1000 * statistics.median(t)} for impl, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(CONFIG))
    parser.add_argument("--frames", type=int, default=2048)
    parser.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--impl", nargs="+", default=["peft"], choices=["peft", "plain"])
    parser.add_argument("--steps", type=int, default=2, help="training steps per process (the first warms up)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--exact", action="store_true", help="compare peft's and the plain layer's loss and grads")
    parser.add_argument("--micro", type=int, default=0, metavar="N",
                        help="time N alternating forward+backward passes of one adapted layer, peft vs plain")
    parser.add_argument("overrides", nargs="*", help="config overrides (key=value), e.g. backbone.depth=2; put them "
                        "before --dtypes / --impl, whose lists would take them")
    parser.add_argument("--worker", nargs=2, metavar=("IMPL", "DTYPE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(worker(args.config, args.overrides, *args.worker, args.frames, args.steps)))
        return

    from toolkit.eval.machine import load_average, machine_line

    print(machine_line())
    print(f"config {args.config} {' '.join(args.overrides)}; {args.frames} frames, batch 1, "
          f"{torch.get_num_threads()} threads")
    if args.exact:
        print(json.dumps(exact(args.config, args.overrides, args.frames), indent=2))
        return
    if args.micro:
        print(json.dumps(micro(args.frames, args.micro), indent=2))
        return
    rows = []
    for impl in args.impl:
        for dtype in args.dtypes:
            threads = ["--threads", str(args.threads)] if args.threads else []
            cmd = [sys.executable, __file__, "--config", args.config, "--frames", str(args.frames), "--steps",
                   str(args.steps), "--worker", impl, dtype, *threads, *args.overrides]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"{impl} {dtype}: failed\n{done.stderr[-3000:]}", flush=True)
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{impl} {dtype}: steps {', '.join(f'{s:.1f}' for s in row['step_s'])} s, peak RSS "
                  f"{row['peak_rss_mib'] / 1024:.2f} GiB (after build {row['built_rss_mib'] / 1024:.2f} GiB), "
                  f"saved for backward {row['saved_mib'] / 1024:.2f} GiB, "
                  f"load average now {' '.join(map(str, load_average() or []))}", flush=True)
    if rows:
        print(f"\n{rows[0]['trainable']:,} adapter parameters of {rows[0]['total']:,} (rank {rows[0]['rank']})")
        print("| impl | dtype | frames | step s (each) | RSS after build GiB | peak RSS GiB | saved for backward GiB |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['impl']} | {r['dtype']} | {r['frames']} | {', '.join(f'{s:.1f}' for s in r['step_s'])} | "
                  f"{r['built_rss_mib'] / 1024:.2f} | {r['peak_rss_mib'] / 1024:.2f} | {r['saved_mib'] / 1024:.2f} |")


if __name__ == "__main__":
    main()
