"""The codec evaluation table of docs/codecs.md: every registered codec over the embedded chorales.

Each codec runs in its own process (`python -m toolkit.bin.evaluate codec ...`), so its peak-RSS column is
its own and not a leftover of the codec before it; the rows are merged into one codec_evaluation.json / .md.
Codecs without local weights (encodec, dac, oobleck) are built at their released sizes with random weights:
speed and memory do not depend on the values, quality does, so their quality columns stay blank.

    .venv/bin/python benchmarks/bench_codec_eval.py                          # 3 chorales, first 10 s each
    .venv/bin/python benchmarks/bench_codec_eval.py --max-files 12 --max-seconds 30 --out /tmp/codec_eval
    .venv/bin/python benchmarks/bench_codec_eval.py --codec '{type: dac, weights: pretrained/dac_44khz.pth}'

Without egs/diffrhythm/data/chorales, build a few first:
    .venv/bin/python -m toolkit.bin.make_chorales --out /tmp/chorales --num-pieces 3   (then --audio-dir /tmp/chorales)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# (codec node, has random weights) — released-size configurations
DEFAULT_CODECS = [
    ("{type: mel, sample_rate: 44100, channels: 2, n_fft: 2048, hop_length: 1024, n_mels: 80, "
     "latent_mean: 1.0, latent_std: 1.9}", False),                     # the embedded demo's codec
    ("mel", False),                                                    # F5-TTS's 24 kHz mono setting
    ("{type: encodec, model: 24khz, random_weights: true}", True),
    ("{type: encodec, model: 48khz, random_weights: true}", True),
    ("{type: dac, model: 44khz, random_weights: true}", True),
    ("oobleck", True),                                                 # no weights = random (156 M parameters)
]


def load() -> str:
    from toolkit.eval.machine import load_average

    return " ".join(map(str, load_average() or ["n/a"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--audio-dir", default=str(ROOT / "egs/diffrhythm/data/chorales"))
    parser.add_argument("--out", default="/tmp/codec_eval")
    parser.add_argument("--max-files", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--codec", action="append", default=None,
                        help="a codec node (repeatable); default: every registered codec at its released size")
    parser.add_argument("--random-weights", action="append", default=[], metavar="NAME",
                        help="mark a --codec as random-weight (name or label): timed only")
    args = parser.parse_args()
    if not Path(args.audio_dir).is_dir():
        sys.exit(f"{args.audio_dir} not found: build chorales with `python -m toolkit.bin.make_chorales --out "
                 f"/tmp/chorales --num-pieces 3` and pass --audio-dir /tmp/chorales")
    codecs = [(c, False) for c in args.codec] if args.codec else DEFAULT_CODECS
    out = Path(args.out)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    rows, docs, loads = [], [], [load()]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for i, (node, random) in enumerate(codecs):
        sub = out / f"{i:02d}"
        cmd = [sys.executable, "-m", "toolkit.bin.evaluate", "codec", "--codec", node, "--audio-dir", args.audio_dir,
               "--out", str(sub), f"max_files={args.max_files}", f"max_seconds={args.max_seconds}",
               "save_audio=false"]
        for name in args.random_weights + (["oobleck"] if random and node == "oobleck" else []):
            cmd += ["--random-weights", name]
        print(f"[{time.strftime('%H:%M:%S')}] {node} (load {load()})", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        doc = json.loads((sub / "codec_evaluation.json").read_text())
        for row in doc["codecs"]:
            row["wall_seconds"] = time.perf_counter() - t0
        rows += doc["codecs"]
        docs.append(doc)
        loads.append(load())
    from toolkit.eval.codec_eval import JSON_NAME, MARKDOWN_NAME, codec_markdown
    from toolkit.io import atomic_write_text

    merged = {**docs[0], "codecs": rows, "decoded_audio": None}
    merged["machine"] = {**merged["machine"], "load_average_1_5_15": loads,
                         "started": started}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / JSON_NAME, json.dumps(merged, indent=2))
    text = codec_markdown(merged)
    atomic_write_text(out / MARKDOWN_NAME, text)
    m = merged["machine"]
    print(f"machine: {m['cpu']}, {m['cpu_count']} logical CPUs, torch {m['torch']}, "
          f"{m['torch_threads']} torch threads; started {started}; load average (1/5/15 min) before and after each "
          f"codec: {' | '.join(loads)}")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
