"""Training steps per second of a recipe config on the CPU, at several torch thread counts.

One optimiser step = forward, backward, gradient clipping and AdamW on one collated batch of the
config's real dataset (the features of a run's extract stage), the same work the trainer does per
step without its logging, validation and checkpoints. Each thread count runs in its own process.

    .venv/bin/python benchmarks/bench_train_step.py --features egs/diffrhythm/exp/default/features
    .venv/bin/python benchmarks/bench_train_step.py --config egs/f5tts/conf/default.yaml \\
        --features egs/f5tts/exp/default/features --threads 1 2

Run the recipe's stages 0-1 first (`bash egs/diffrhythm/run.sh --stop_stage 1`) to have features.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker(config: str, features: str, threads: int, steps: int, warmup: int, overrides: list[str]) -> dict:
    import torch

    from toolkit.bin.train import build_dataset
    from toolkit.config import load_config
    from toolkit.eval.memory import peak_rss_mb
    from toolkit.models.factory import build_recipe
    from toolkit.training.config import TrainConfig

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = load_config(config, overrides)
    train = TrainConfig.from_config(cfg.get("train"))
    recipe = build_recipe(cfg)
    dataset = build_dataset(cfg.data, features, train.seed)
    items = [dataset[(i % len(dataset), 0, i)] for i in range(train.batch_size)]
    batch = dataset.collate(items)
    params = [p for p in recipe.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=train.lr, weight_decay=train.weight_decay)
    times = []
    for step in range(warmup + steps):
        start = time.perf_counter()
        loss = recipe.training_step(batch, step=step, seed=train.seed)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, train.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step >= warmup:
            times.append(time.perf_counter() - start)
    return {"threads": threads, "batch": train.batch_size, "frames": int(batch["lens"].max()),
            "params": sum(p.numel() for p in params), "median_s": statistics.median(times), "min_s": min(times),
            "peak_rss_mib": peak_rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(ROOT / "egs/diffrhythm/conf/default.yaml"))
    parser.add_argument("--features", required=True, help="a features folder written by the extract stage")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per thread count")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("overrides", nargs="*", help="config overrides (key=value)")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(worker(args.config, args.features, args.worker, args.steps, args.warmup, args.overrides)))
        return
    if not (Path(args.features) / "train.jsonl").is_file():
        sys.exit(f"no features in {args.features}: run the recipe's stages 0-1 first "
                 "(e.g. bash egs/diffrhythm/run.sh --stop_stage 1)")

    from toolkit.eval.machine import machine_line

    print(machine_line())
    print(f"config {args.config} {' '.join(args.overrides)}; features {args.features}; "
          f"{args.warmup} warm-up + {args.steps} timed steps per thread count, one process each")
    rows = []
    for threads in args.threads:
        cmd = [sys.executable, __file__, "--worker", str(threads), "--config", args.config, "--features",
               args.features, "--steps", str(args.steps), "--warmup", str(args.warmup), *args.overrides]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        rows.append(json.loads(out))
        print(f"  {threads} thread(s): {1 / rows[-1]['median_s']:.2f} steps/s", flush=True)
    first = rows[0]
    print(f"\n{first['params']:,} trainable parameters, batch {first['batch']} x up to {first['frames']} frames\n")
    print("| threads | steps/s (median) | s per step (median, min) | peak RSS MiB |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['threads']} | {1 / r['median_s']:.2f} | {r['median_s']:.3f}, {r['min_s']:.3f} | "
              f"{r['peak_rss_mib']:.0f} |")


if __name__ == "__main__":
    main()
