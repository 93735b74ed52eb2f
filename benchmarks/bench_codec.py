"""Speed and peak memory of the released-size Oobleck VAE: chunked decode (and encode), fp32 / bf16, fast / reference.

Released-size Oobleck (156 M parameters, random weights with non-trivial Snake parameters), chunks of
256 latent frames overlapping by 32 (the codec default) unless told otherwise. Every configuration
runs in its own process, so each peak RSS is that configuration's own. Reported per run:
  * seconds per audio second (decode; encode with --encode-seconds);
  * achieved GFLOP/s counting every convolution of every chunk (the overlap included: it is computed),
    and its fraction of the matmul rate IN THE SAME FORMAT (2048x2048 @ 2048x8192) measured in the
    same process right before and after the run (the larger of the two);
  * peak RSS; the ratio of the peaks of the longest and shortest decode (flat in length: < 1.3).
With --error-seconds, the fast fp32 decode is compared with the reference modules (fast=False) and the
bf16 decode with fp32 (max and mean relative error), on the same latents.

    .venv/bin/python benchmarks/bench_codec.py                       # fast fp32 decode of 30 s and 120 s
    .venv/bin/python benchmarks/bench_codec.py --seconds 10 --paths fast reference --dtypes fp32 bf16 \\
        --chunk-frames 128 256 --encode-seconds 10 --error-seconds 5
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import torch
from bench_common import header, load_now, matmul_gflops, peak_rss_gib, relative_errors


def build_codec(chunk: int, overlap: int, fast: bool, dtype: str):
    from toolkit.codecs.oobleck import OobleckCodec

    torch.manual_seed(0)
    codec = OobleckCodec(chunk_frames=chunk, overlap_frames=overlap, fast=fast, compute_dtype=dtype)
    with torch.no_grad():  # trained Snake parameters are not all zero
        for name, p in codec.named_parameters():
            if name.endswith(("alpha", "beta")):
                p.normal_(0, 0.3)
    return codec


def worker(op: str, seconds: float, threads: int, chunk: int, overlap: int, path: str, dtype: str) -> dict:
    from toolkit.codecs.chunking import chunk_plan
    from toolkit.codecs.oobleck_flops import conv_flops
    from toolkit.precision import DTYPES

    torch.set_num_threads(threads)
    codec = build_codec(chunk, overlap, path == "fast", dtype)
    frames = round(seconds * codec.sample_rate / codec.hop_length)
    gen = torch.Generator().manual_seed(1)
    if op == "decode":
        data = torch.randn(1, frames, codec.latent_dim, generator=gen)
        plan = chunk_plan(frames, chunk, overlap)
        flops = sum(conv_flops(codec.decoder, p.length)[0] for p in plan)
        run = codec.decode
    else:
        data = 0.1 * torch.randn(1, codec.channels, frames * codec.hop_length, generator=gen)
        plan = chunk_plan(frames * codec.hop_length, chunk * codec.hop_length, overlap * codec.hop_length)
        flops = sum(conv_flops(codec.encoder, p.length)[0] for p in plan)
        run = codec.encode
    mm_dtype = DTYPES[dtype]
    mm_before = matmul_gflops(mm_dtype)
    rss_before = peak_rss_gib()
    load_before = load_now()
    start = time.perf_counter()
    with torch.inference_mode():
        out = run(data)
    elapsed = time.perf_counter() - start
    mm = max(mm_before, matmul_gflops(mm_dtype))
    return {"op": op, "seconds": seconds, "frames": frames, "chunks": len(plan), "path": path, "dtype": dtype,
            "chunk": chunk, "overlap": overlap, "wall_s": elapsed, "gflops": flops / 1e9,
            "rate": flops / elapsed / 1e9, "mm": mm, "fraction": flops / elapsed / 1e9 / mm,
            "peak_rss_gib": peak_rss_gib(), "rss_before_gib": rss_before, "finite": bool(torch.isfinite(out).all()),
            "load": [load_before, load_now()]}


def error_worker(seconds: float, threads: int, chunk: int, overlap: int) -> dict:
    torch.set_num_threads(threads)
    codec = build_codec(chunk, overlap, True, "fp32")
    frames = round(seconds * codec.sample_rate / codec.hop_length)
    z = torch.randn(1, frames, codec.latent_dim, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        fast = codec.decode(z)
        codec.fast = False
        reference = codec.decode(z)
        codec.fast = True
        codec.set_compute_dtype("bf16")
        bf16 = codec.decode(z)
    result = {"seconds": seconds, "frames": frames}
    result["fast_vs_reference"] = relative_errors(fast, reference)
    result["bf16_vs_fp32"] = relative_errors(bf16, fast)
    return result


def spawn(args: argparse.Namespace, *extra: str) -> dict:
    cmd = [sys.executable, __file__, "--threads", str(args.threads), "--overlap-frames", str(args.overlap_frames),
           *extra]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    return json.loads(out)


def show(r: dict) -> None:
    per = r["wall_s"] / r["seconds"]
    print(f"  {r['op']:6s} {r['path']:9s} {r['dtype']} chunk {r['chunk']:4d}: {r['seconds']:6.1f} s audio "
          f"({r['frames']} frames, {r['chunks']} chunks, {r['gflops'] / 1e3:.2f} TFLOP): {r['wall_s']:7.1f} s = "
          f"{per:.2f} s per audio second, {r['rate']:.1f} GFLOP/s = {r['fraction']:.3f} of {r['dtype']} matmul "
          f"({r['mm']:.0f} GFLOP/s beside it); peak RSS {r['peak_rss_gib']:.2f} GiB; load "
          f"{r['load'][0]:.2f}->{r['load'][1]:.2f}; finite={r['finite']}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, nargs="+", default=[30.0, 120.0], help="decode lengths")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--chunk-frames", type=int, nargs="+", default=[256])
    parser.add_argument("--overlap-frames", type=int, default=32)
    parser.add_argument("--paths", nargs="+", default=["fast"], choices=["fast", "reference"])
    parser.add_argument("--dtypes", nargs="+", default=["fp32"], choices=["fp32", "bf16"])
    parser.add_argument("--encode-seconds", type=float, default=0.0, help="also time encoding this much audio")
    parser.add_argument("--error-seconds", type=float, default=0.0, help="measure fast/reference and bf16 errors")
    parser.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    parser.add_argument("--error-worker", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        op, seconds, chunk, path, dtype = args.worker[0], float(args.worker[1]), int(args.worker[2]), \
            args.worker[3], args.worker[4]
        print(json.dumps(worker(op, seconds, args.threads, chunk, args.overlap_frames, path, dtype)))
        return
    if args.error_worker is not None:
        print(json.dumps(error_worker(args.error_worker, args.threads, args.chunk_frames[0], args.overlap_frames)))
        return

    torch.set_num_threads(args.threads)
    header()
    print(f"released-size Oobleck, random weights; overlap {args.overlap_frames} frames; one process per run")
    decodes = []
    for chunk in args.chunk_frames:
        for path in args.paths:
            for dtype in args.dtypes:
                if path == "reference" and dtype != "fp32":
                    continue  # the reference modules run in the weights' format only
                for seconds in args.seconds:
                    r = spawn(args, "--worker", "decode", str(seconds), str(chunk), path, dtype, "-")
                    decodes.append(r)
                    show(r)
                if args.encode_seconds:
                    show(spawn(args, "--worker", "encode", str(args.encode_seconds), str(chunk), path, dtype, "-"))
    if len(args.seconds) > 1:
        for chunk in args.chunk_frames:
            group = [r for r in decodes if r["chunk"] == chunk and r["path"] == "fast" and r["dtype"] == "fp32"]
            if len(group) > 1:
                short = min(group, key=lambda r: r["seconds"])
                long = max(group, key=lambda r: r["seconds"])
                ratio = long["peak_rss_gib"] / short["peak_rss_gib"]
                print(f"peak RSS ratio {long['seconds']:g} s / {short['seconds']:g} s (fast fp32, chunk {chunk}) = "
                      f"{ratio:.3f} (target <= 1.3: {'OK' if ratio <= 1.3 else 'TOO HIGH'})")
    if args.error_seconds:
        e = spawn(args, "--chunk-frames", str(args.chunk_frames[0]), "--error-worker", str(args.error_seconds))
        print(f"errors on {e['seconds']:g} s ({e['frames']} frames), max relative / mean relative "
              f"(max|d|/max|ref|, mean|d|/mean|ref|):")
        print(f"  fast fp32 vs reference modules: {e['fast_vs_reference'][0]:.2e} / {e['fast_vs_reference'][1]:.2e}")
        print(f"  fast bf16 convs vs fast fp32:   {e['bf16_vs_fp32'][0]:.2e} / {e['bf16_vs_fp32'][1]:.2e}")


if __name__ == "__main__":
    main()
