"""Scan a folder of songs into train/valid jsonl manifests (+ report.json listing skipped files).

  python -m toolkit.bin.prepare --data DIR --out MANIFEST_DIR [--valid-fraction 0.1] [--seed 0] [--min-seconds 1]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from toolkit.bin.common import UsageError, friendly_errors


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="prepare", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="folder of songs (wav, flac, mp3, ogg, m4a; searched recursively)")
    p.add_argument("--out", required=True, help="folder for train.jsonl, valid.jsonl and report.json")
    p.add_argument("--valid-fraction", type=float, default=0.1,
                   help="share of songs held out for validation (at least one when there are two songs)")
    p.add_argument("--seed", type=int, default=0, help="seed of the deterministic split")
    p.add_argument("--min-seconds", type=float, default=1.0, help="skip songs shorter than this")
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    return p


@friendly_errors("prepare")
def main(argv: list[str] | None = None) -> int:
    from toolkit.data.prepare import prepare, summary

    args = build_parser().parse_args(argv)
    if not 0.0 <= args.valid_fraction < 1.0:
        raise UsageError("--valid-fraction must be in [0, 1)")
    if args.min_seconds < 0:
        raise UsageError("--min-seconds must be >= 0")
    data, out = Path(args.data), Path(args.out)
    if not data.is_dir():
        raise UsageError(f"--data {data}: no such folder")
    result = prepare(data, out, valid_fraction=args.valid_fraction, seed=args.seed, min_seconds=args.min_seconds)
    print(summary(result, data.resolve(), out.resolve()))
    if not (result.train or result.valid):
        print(f"prepare: error: no usable songs in {data} (see {out / 'report.json'})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
