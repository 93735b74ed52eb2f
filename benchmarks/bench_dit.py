"""Forward time and peak memory of the released-size DiffRhythm DiT on the CPU.

Random weights (speed does not depend on values), fp32, 2048 frames, batch 1 and 2 (batch 2 = one
batched classifier-free-guidance pass). Beside it, fp32 matmul throughput is measured in the same run,
and the DiT's achieved FLOP rate is reported as a fraction of it (matmul is re-measured right before
and after every forward, so a machine shared with other work slows both alike).

    .venv/bin/python benchmarks/bench_dit.py [--frames 2048] [--repeats 3] [--threads N] [--variant base]

Takes a few minutes on 2 threads. Peak memory is the process's peak RSS (weights included), read after
each configuration; batch 1 runs first, so the batch-2 figure is the larger of the two.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


def current_rss_gib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**30


def matmul_gflops(m: int = 2048, k: int = 2048, n: int = 8192, repeats: int = 5) -> float:
    a, b = torch.randn(m, k), torch.randn(k, n)
    torch.mm(a, b)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    return 2 * m * k * n / min(times) / 1e9


def dit_forward_flops(model, batch: int, frames: int) -> float:
    """Multiply-adds x2 of every matmul / convolution in one forward (elementwise ops ignored)."""
    d, t = model.dim, frames
    hidden = model.transformer_blocks[0].mlp.gate_proj.out_features
    per_block = 2 * t * (4 * d * d + 3 * d * hidden) + 2 * 2 * t * t * d  # projections + QK^T and AV
    total = model.depth * per_block
    total += 2 * t * model.input_embed.proj.in_features * d  # input projection
    conv = model.input_embed.conv_pos_embed.conv1d[0]
    total += 2 * 2 * t * d * (d // conv.groups) * conv.kernel_size[0]  # two grouped position convs
    total += len(model.text_fusion_linears) * 2 * t * model.text_dim * d
    for block in getattr(model.text_embed, "text_blocks", []):
        total += 2 * t * 2 * block.pwconv1.in_features * block.pwconv1.out_features
    total += 2 * t * d * model.latent_dim
    return batch * total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3, help="timed forwards per batch size (after a warm-up)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--variant", default="base", choices=["base", "full"])
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from toolkit.eval.machine import machine_line
    from toolkit.models.diffrhythm.checkpoints import build_released_backbone

    print(machine_line())
    gflops_mm = matmul_gflops()
    print(f"fp32 matmul 2048x2048 @ 2048x8192: {gflops_mm:.1f} GFLOP/s (best of 5)")

    torch.manual_seed(0)
    start = time.perf_counter()
    model = build_released_backbone(args.variant).eval()
    params = sum(p.numel() for p in model.parameters())
    print(f"released {args.variant} DiT: {params / 1e9:.3f} B params, built in {time.perf_counter() - start:.1f} s, "
          f"RSS {current_rss_gib():.2f} GiB")

    rows = []
    for batch in args.batches:
        x = torch.randn(batch, args.frames, model.latent_dim)
        conditions = {
            "lyrics": torch.randint(0, 364, (batch, args.frames)),
            "style": torch.nn.functional.normalize(torch.randn(batch, model.style_dim), dim=-1),
            "start_time": torch.zeros(batch),
        }
        if model.has_duration:
            conditions["duration"] = torch.ones(batch)
        t = torch.rand(batch)
        times, fractions = [], []
        flops = dit_forward_flops(model, batch, args.frames)
        with torch.inference_mode():
            for i in range(args.repeats + 1):
                # matmul throughput right beside each forward, so a busy machine slows both alike
                mm = matmul_gflops(repeats=3)
                start = time.perf_counter()
                model(x, torch.zeros_like(x), conditions, t)
                elapsed = time.perf_counter() - start
                mm = max(mm, matmul_gflops(repeats=3))
                if i > 0:
                    times.append(elapsed)
                    fractions.append(flops / elapsed / 1e9 / mm)
                print(f"  batch {batch} forward {i}{' (warm-up)' if i == 0 else ''}: {elapsed:.2f} s, "
                      f"{flops / elapsed / 1e9:.1f} GFLOP/s vs matmul {mm:.1f} GFLOP/s beside it", flush=True)
        best = min(times)
        rows.append((batch, statistics.median(times), best, flops / best / 1e9, max(fractions), peak_rss_gib()))

    print(f"\nDiffRhythm DiT ({args.variant}, {args.frames} frames, fp32), "
          f"{dit_forward_flops(model, 1, args.frames) / 1e12:.2f} TFLOP per item")
    print(f"fp32 matmul at start: {gflops_mm:.1f} GFLOP/s")
    print("| batch | median s | min s | GFLOP/s (at min) | fraction of matmul (best, measured beside) | peak RSS GiB |")
    print("|---|---|---|---|---|---|")
    for batch, med, best, rate, frac, rss in rows:
        print(f"| {batch} | {med:.2f} | {best:.2f} | {rate:.1f} | {frac:.2f} | {rss:.2f} |")


if __name__ == "__main__":
    main()
