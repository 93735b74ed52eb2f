"""One DiT-sized linear layer in each number format a CPU could run it in: speed and error against fp32.

The released DiffRhythm DiT is matmul-bound (docs/performance.md), so what a format buys a song is roughly
what it buys this layer: [2048 frames, 2048] @ [2048, 8192] (an MLP projection at the released width),
random weights. Formats: fp32; bf16 (native only with AMX / AVX512-BF16, emulated and slow elsewhere); int8
with dynamic activation quantisation (torch.ao's quantize_dynamic on the x86 engine: weights int8 per tensor
or per output channel, activations int8 per tensor at run time), the low-precision path a CPU without native
bf16 still has. Error: max and mean relative difference of the output against fp32.

    python benchmarks/bench_linear_formats.py [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse

import torch
from bench_common import header, int8_dynamic, median_seconds, relative_errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=2048)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--hidden", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    header(f"; quantized engine {torch.backends.quantized.engine}")

    layer = torch.nn.Linear(args.dim, args.hidden, bias=False).eval()
    x = torch.randn(args.frames, args.dim)
    flops = 2 * args.frames * args.dim * args.hidden
    with torch.inference_mode():
        reference = layer(x)
    bf16 = torch.nn.Linear(args.dim, args.hidden, bias=False).eval()
    bf16.weight = torch.nn.Parameter(layer.weight.detach().to(torch.bfloat16), requires_grad=False)
    formats = {
        "fp32": (layer, x),
        "bf16": (bf16, x.to(torch.bfloat16)),
        "int8 dynamic, per-tensor weights": (int8_dynamic(torch.nn.Sequential(layer), per_channel=False), x),
        "int8 dynamic, per-channel weights": (int8_dynamic(torch.nn.Sequential(layer), per_channel=True), x),
    }
    print(f"[{args.frames}, {args.dim}] @ [{args.dim}, {args.hidden}], {flops / 1e9:.1f} GFLOP per call, "
          f"{args.threads} threads, median of {args.repeats}")
    print("| format | s | GFLOP/s (fp32-equivalent) | x fp32 | max rel. error | mean rel. error |")
    print("|---|---|---|---|---|---|")
    base = None
    for name, (module, inputs) in formats.items():
        s = median_seconds(module, inputs, repeats=args.repeats)
        base = base or s
        with torch.inference_mode():
            worst, mean = relative_errors(module(inputs).float(), reference)
        print(f"| {name} | {s:.3f} | {flops / s / 1e9:.1f} | {base / s:.2f} | {worst:.2e} | {mean:.2e} |")


if __name__ == "__main__":
    main()
