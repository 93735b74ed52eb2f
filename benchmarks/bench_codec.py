"""Peak memory (RSS) of chunked Oobleck decoding at two song lengths, each in its own process.

Released-size Oobleck (156 M parameters, random weights: speed and memory do not depend on values),
chunks of 128 latent frames overlapping by 32 (DiffRhythm's scheme). The figure that matters is the
ratio of the peaks: chunked decoding should keep memory flat in the song length (ratio < 1.3).

    .venv/bin/python benchmarks/bench_codec.py                 # 30 s and 120 s
    .venv/bin/python benchmarks/bench_codec.py --seconds 10 40 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def worker(seconds: float, threads: int, chunk: int, overlap: int) -> dict:
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from toolkit.codecs.oobleck import OobleckCodec

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    codec = OobleckCodec(chunk_frames=chunk, overlap_frames=overlap)
    frames = int(seconds * codec.sample_rate / codec.hop_length)
    z = torch.randn(1, frames, codec.latent_dim)
    after_build = peak_rss_mib()
    start = time.perf_counter()
    with torch.inference_mode():
        wav = codec.decode(z)
    elapsed = time.perf_counter() - start
    return {"seconds": seconds, "frames": frames, "samples": wav.shape[-1], "peak_rss_mib": peak_rss_mib(),
            "rss_after_build_mib": after_build, "decode_s": elapsed, "threads": torch.get_num_threads(),
            "torch": torch.__version__, "finite": bool(torch.isfinite(wav).all())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, nargs="+", default=[30.0, 120.0])
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--chunk-frames", type=int, default=128)
    parser.add_argument("--overlap-frames", type=int, default=32)
    parser.add_argument("--worker", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(worker(args.worker, args.threads, args.chunk_frames, args.overlap_frames)))
        return

    import torch

    from toolkit.eval.machine import machine_line

    print(machine_line())
    print(f"torch {torch.__version__}, threads {args.threads}, chunk {args.chunk_frames} frames, "
          f"overlap {args.overlap_frames}; released-size Oobleck, random weights, float32, one process per length")
    results = []
    for seconds in args.seconds:
        cmd = [sys.executable, __file__, "--worker", str(seconds), "--threads", str(args.threads),
               "--chunk-frames", str(args.chunk_frames), "--overlap-frames", str(args.overlap_frames)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        r = json.loads(out)
        results.append(r)
        print(f"  {r['seconds']:6.1f} s audio = {r['frames']:5d} frames: peak RSS {r['peak_rss_mib']:7.0f} MiB "
              f"(after building the model {r['rss_after_build_mib']:6.0f} MiB), decode {r['decode_s']:7.1f} s "
              f"({r['decode_s'] / r['seconds']:.2f} s per audio second), finite={r['finite']}")
    ratio = results[-1]["peak_rss_mib"] / results[0]["peak_rss_mib"]
    verdict = "OK" if ratio < 1.3 else "TOO HIGH"
    print(f"peak RSS ratio {results[-1]['seconds']:g} s / {results[0]['seconds']:g} s = {ratio:.3f} "
          f"(target < 1.3: {verdict})")


if __name__ == "__main__":
    main()
