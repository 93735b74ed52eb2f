"""Turn prepared manifests (with prompts, local/make_prompts.py) into Stable Audio requests: each song's prompt
and timing, named after the song so the evaluation compares the output with the reference it describes.

    python local/make_requests.py --manifest EXP/data/valid.jsonl --manifest EXP/data/train.jsonl \
        --out EXP/requests.jsonl --seconds 11 --limit 8 [--seed 0]

Request i: prompt of song i, seconds_start 0, seconds_total --seconds (the output is the piece's first
--seconds), seed --seed + i: the same songs and seeds as the DiffRhythm script over the same manifests.
"""

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", action="append", required=True, help="repeat to take songs from several")
    parser.add_argument("--out", required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--limit", type=int, default=0, help="at most this many requests (0 = all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    lines = [line for m in args.manifest for line in Path(m).read_text(encoding="utf-8").splitlines()]
    songs = [json.loads(line) for line in lines if line.strip()]
    if args.limit:
        songs = songs[: args.limit]
    missing = [s.get("id") for s in songs if not s.get("prompt")]
    if missing:
        raise SystemExit(f"songs {missing[:3]} have no prompt: run local/make_prompts.py on the manifests first")
    requests = [{"title": song.get("id"), "prompt": song["prompt"], "seconds_start": 0.0,
                 "seconds_total": args.seconds, "seed": args.seed + i} for i, song in enumerate(songs)]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in requests), encoding="utf-8")
    print(f"{len(requests)} requests -> {args.out}")


if __name__ == "__main__":
    main()
