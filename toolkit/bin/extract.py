"""Cache codec latents and every configured condition's values per song (resumable, shardable, stamped).

    python -m toolkit.bin.extract --config CONF --manifest-dir EXP/data --out EXP/features [--shard 0/2] [k=v ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from toolkit.bin.common import UsageError, friendly_errors
from toolkit.config import load_config
from toolkit.data.dataset import read_manifest
from toolkit.data.extract import Extractor, extract_all, shard_of, write_split_manifest


def parse_shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard must look like i/n (for example 0/4), got '{text}'") from None
    if not 0 <= index < count:
        raise UsageError(f"--shard {text}: i must be in 0..n-1")
    return index, count


@friendly_errors("toolkit-extract")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="toolkit-extract", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--manifest-dir", required=True, help="folder with train.jsonl / valid.jsonl from prepare")
    parser.add_argument("--out", required=True, help="features folder")
    parser.add_argument("--splits", default="train,valid")
    parser.add_argument("--shard", default="0/1", help="i/n: this process takes every n-th song from i")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    args = parser.parse_args(argv)
    shard, num_shards = parse_shard(args.shard)
    cfg = load_config(args.config, args.overrides)
    missing = [k for k in ("codec", "conditions", "max_frames") if k not in cfg]
    if missing:
        raise UsageError(f"{args.config} lacks {', '.join(missing)}: extraction needs the codec, the conditions and "
                         "the model's frame window")
    extractor = Extractor(cfg.codec, cfg.conditions, cfg.max_frames)
    splits = {}
    for split in args.splits.split(","):
        path = Path(args.manifest_dir) / f"{split}.jsonl"
        if path.is_file():
            splits[split] = read_manifest(path)
    entries = [e for split_entries in splits.values() for e in split_entries]
    if not entries:
        raise UsageError(f"no songs in {args.manifest_dir} ({args.splits}): run the data stage first")
    report = extract_all(shard_of(entries, shard, num_shards), args.out, extractor)
    for split, split_entries in splits.items():  # the songs of each split that have features
        write_split_manifest(args.out, split, split_entries)
    for part, count in report.remade.items():
        print(f"toolkit-extract: {part} made again for {count} song(s): its settings changed since extraction",
              file=sys.stderr)
    print(json.dumps(report.summary(), indent=1, ensure_ascii=False))
    return 1 if report.failed and not (report.done or report.skipped) else 0


if __name__ == "__main__":
    sys.exit(main())
