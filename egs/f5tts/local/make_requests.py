"""Turn prepared manifests into F5-TTS requests: each held-out utterance's transcript, spoken in the voice of
another utterance of the same speaker (its audio and transcript as the prompt), named after the held-out
utterance so the evaluation compares the generated speech with its reference recording.

    python local/make_requests.py --targets EXP/data/valid.jsonl --prompts EXP/data/train.jsonl \
        --out EXP/requests.jsonl --limit 4
"""

import argparse
import json
from pathlib import Path


def speaker(entry: dict) -> str:
    """The speech set names utterances <voice>_<index>: the speaker is the part before the index."""
    return str(entry.get("id", "")).rsplit("_", 1)[0]


def read(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", action="append", required=True, help="manifest(s) whose transcripts are spoken")
    parser.add_argument("--prompts", required=True, help="manifest of utterances used as voice prompts")
    parser.add_argument("--out", required=True)
    parser.add_argument("--limit", type=int, default=0, help="at most this many requests (0 = all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    targets = [e for m in args.targets for e in read(m) if (e.get("lyrics") or "").strip()]
    prompts = [e for e in read(args.prompts) if (e.get("lyrics") or "").strip()]
    if not prompts:
        raise SystemExit(f"{args.prompts} has no utterance with a transcript to use as a prompt")
    if args.limit:
        targets = targets[: args.limit]
    requests = []
    for i, target in enumerate(targets):
        same = [p for p in prompts if speaker(p) == speaker(target) and p.get("id") != target.get("id")]
        prompt = (same or [p for p in prompts if p.get("id") != target.get("id")] or prompts)[0]
        requests.append({"id": target.get("id"), "text": target["lyrics"].strip(), "ref_audio": prompt["path"],
                         "ref_text": prompt["lyrics"].strip(), "seed": args.seed + i})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in requests), encoding="utf-8")
    print(f"{len(requests)} requests -> {args.out}")


if __name__ == "__main__":
    main()
