"""Forward time of a released-size DiT on the CPU (DiffRhythm's or F5-TTS's), fp32 and bf16, as a fraction of the
matmul rate.

Random weights (speed does not depend on values; every layer random so outputs are not zero), 2048
frames, batch 1 (and 2 = one batched guidance pass, with --batches 1 2). For each number format the
matmul rate in THAT format (2048x2048 @ 2048x8192) is measured right before and after every forward,
and the DiT's FLOP rate is reported as a fraction of it: median (min-max) over the timed forwards,
never the best. `auto` is resolved by toolkit.precision.choose_dtype (printed with its reason) and
always run. bf16 vs fp32 output error (same weights rounded to bf16, same inputs) is printed.

    .venv/bin/python benchmarks/bench_dit.py [--frames 2048] [--repeats 3] [--threads 2] [--dtypes fp32 bf16]
    .venv/bin/python benchmarks/bench_dit.py --backbone f5 --frames 1024     # F5TTS_v1_Base, ~11 s of speech

About 4 minutes on 2 idle threads of an AMX Xeon; ~7 GiB of RAM (fp32 weights, then bf16 ones).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from bench_common import (
    current_rss_gib,
    header,
    materialize_,
    peak_rss_gib,
    relative_errors,
    spread,
    timed_against_matmul,
)


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


def f5_forward_flops(model, batch: int, frames: int) -> float:
    """The same count for F5-TTS's DiT (AdaLN-zero blocks, GELU MLP, text ConvNeXt on text_dim)."""
    d, t = model.dim, frames
    block = model.transformer_blocks[0]
    inner, hidden = block.attn.to_q.out_features, block.ff.ff[0][0].out_features
    per_block = 2 * t * (4 * d * inner + 2 * d * hidden) + 2 * 2 * t * t * inner
    total = model.depth * per_block
    total += 2 * t * model.input_embed.proj.in_features * d
    conv = model.input_embed.conv_pos_embed.conv1d[0]
    total += 2 * 2 * t * d * (d // conv.groups) * conv.kernel_size[0]
    for text_block in getattr(model.text_embed, "text_blocks", []):
        total += 2 * t * 2 * text_block.pwconv1.in_features * text_block.pwconv1.out_features
    total += 2 * t * d * model.latent_dim
    return batch * total


def inputs(model, batch: int, frames: int, dtype: torch.dtype, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, frames, model.latent_dim, generator=gen).to(dtype)
    if "text" in model.inputs():  # F5-TTS: character ids (a third of the frames), the rest padding
        text = torch.randint(0, model.text_num_embeds, (batch, frames // 3), generator=gen)
        return x, torch.zeros_like(x), {"text": text}, torch.rand(batch, generator=gen)
    conditions = {
        "lyrics": torch.randint(0, 364, (batch, frames), generator=gen),
        "style": torch.nn.functional.normalize(torch.randn(batch, model.style_dim, generator=gen), dim=-1),
        "start_time": torch.zeros(batch),
    }
    if model.has_duration:
        conditions["duration"] = torch.ones(batch)
    return x, torch.zeros_like(x), conditions, torch.rand(batch, generator=gen)


def run_dtype(model, name: str, dtype: torch.dtype, batches: list[int], frames: int, repeats: int,
              forward_flops=dit_forward_flops) -> list[dict]:
    rows = []
    for batch in batches:
        x, cond, conditions, t = inputs(model, batch, frames, dtype)
        flops = forward_flops(model, batch, frames)
        times, rates, fractions, first = [], [], [], None
        with torch.inference_mode():
            for i in range(repeats + 1):
                box: dict = {}

                def forward(box=box, x=x, cond=cond, conditions=conditions, t=t):
                    box.update(out=model(x, cond, conditions, t))

                elapsed, mm = timed_against_matmul(forward, dtype)
                first = box["out"].float() if first is None else first
                rate = flops / elapsed / 1e9
                if i > 0:
                    times.append(elapsed)
                    rates.append(mm)
                    fractions.append(rate / mm)
                print(f"  {name} batch {batch} forward {i}{' (warm-up)' if i == 0 else ''}: {elapsed:.2f} s, "
                      f"{rate:.1f} GFLOP/s vs {name} matmul {mm:.1f} GFLOP/s beside it = {rate / mm:.2f}", flush=True)
        rows.append({"dtype": name, "batch": batch, "times": times, "mm": rates, "fractions": fractions,
                     "flops": flops, "rss": peak_rss_gib(), "out": first})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3, help="timed forwards per configuration (after a warm-up)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backbone", default="diffrhythm", choices=["diffrhythm", "f5"],
                        help="DiffRhythm's DiT (1.1 B) or F5TTS_v1_Base's (337 M)")
    parser.add_argument("--variant", default="base", choices=["base", "full"], help="DiffRhythm's base or full")
    parser.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], help="formats to run; auto's choice is added")
    parser.add_argument("--depth", type=int, default=None, help="fewer blocks than released (quick checks)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from toolkit.precision import DTYPES, choose_dtype

    header()
    if args.backbone == "f5":
        from toolkit.backbones.dit_f5 import F5DiT as DiT
        from toolkit.models.f5tts.checkpoints import released_config

        component, title, config = "dit_f5", "F5-TTS DiT (F5TTS_v1_Base)", released_config()
    else:
        from toolkit.backbones.dit_diffrhythm import DiffRhythmDiT as DiT
        from toolkit.models.diffrhythm.checkpoints import released_config

        component, title, config = "dit_diffrhythm", f"DiffRhythm DiT ({args.variant})", released_config(args.variant)
    auto = choose_dtype("auto", "cpu", component=component)
    print(f"--dtype auto -> {auto.name}: {auto.reason}")
    names = list(dict.fromkeys(["fp32", *args.dtypes, auto.name]))  # fp32 first: the error reference

    if args.depth:
        config["depth"] = args.depth
    start = time.perf_counter()
    with torch.device("meta"):
        model = DiT(**config)
    model = materialize_(model).eval()
    params = sum(p.numel() for p in model.parameters())
    print(f"released {title}{f' (depth {args.depth})' if args.depth else ''}: {params / 1e9:.3f} B "
          f"params, random weights in {time.perf_counter() - start:.1f} s, RSS {current_rss_gib():.2f} GiB", flush=True)
    forward_flops = f5_forward_flops if args.backbone == "f5" else dit_forward_flops

    rows = []
    for name in names:
        model.to_compute_dtype(DTYPES[name])
        rows += run_dtype(model, name, DTYPES[name], args.batches, args.frames, args.repeats, forward_flops)

    per_item = forward_flops(model, 1, args.frames) / 1e12
    print(f"\n{title}, {args.frames} frames, {per_item:.2f} TFLOP per item; "
          f"fraction = DiT FLOP rate / matmul rate of the same format measured beside each forward")
    print("| dtype | batch | forward s median (min-max) | matmul GFLOP/s beside (median) "
          "| fraction median (min-max) | peak RSS GiB |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dtype']} | {r['batch']} | {spread(r['times'])} | {statistics.median(r['mm']):.0f} "
              f"| {spread(r['fractions'])} | {r['rss']:.2f} |")
    reference = {r["batch"]: r["out"] for r in rows if r["dtype"] == "fp32"}
    for r in rows:
        if r["dtype"] != "fp32":
            worst, mean = relative_errors(r["out"], reference[r["batch"]])
            print(f"{r['dtype']} vs fp32 output (batch {r['batch']}): max relative {worst:.2e}, "
                  f"mean relative {mean:.2e} (max|d|/max|fp32|, mean|d|/mean|fp32|)")
    if any(r["dtype"] == "bf16" for r in rows):
        # A bf16 DiT embeds the fp32 flow time exactly (the error above is the network's own); this is what
        # rounding the time to bf16 would cost, the reason the sampler keeps fp32 times for bf16 models.
        model.float()
        x, cond, conditions, t = inputs(model, 1, args.frames, torch.float32)
        with torch.inference_mode():
            rounded = model(x, cond, conditions, t.bfloat16().float()).float()
        worst, mean = relative_errors(rounded, reference[1])
        print(f"fp32 DiT with only the time rounded to bf16 ({t.item():.6f} -> {t.bfloat16().item():.6f}) vs fp32: "
              f"max relative {worst:.2e}, mean relative {mean:.2e}")
    print(f"load average at the end {__import__('os').getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
