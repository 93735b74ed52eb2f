"""Turn a prepared manifest (valid.jsonl) into generation requests: each song's lyrics and its own audio
as the style prompt, so the generated songs can be compared with the references they imitate.

    python local/make_requests.py --manifest EXP/data/valid.jsonl --out EXP/requests.jsonl --seconds 11 --limit 4
"""

import argparse
import json
from pathlib import Path


def fit_lrc(lrc: str, seconds: float) -> str:
    """The LRC lines that start inside a `seconds`-long song, then an empty line just before its end.

    DiffRhythm's published base model reads the last LRC line of a song as the end-of-song marker and
    does not sing it; the empty marker keeps every lyric (our own models read it as a pause). Lines
    after the end would not be sung anyway; dropping them keeps the generator from warning about it.
    """
    from toolkit.lrc import LrcLine, parse_lrc
    from toolkit.data.tags import format_lrc_time

    inside = [line for line in parse_lrc(lrc).lines if line.time < seconds]
    end = round(seconds - 0.01, 2)
    if inside and inside[-1].text and end > inside[-1].time:
        inside.append(LrcLine(end, ""))
    return "".join(f"{format_lrc_time(line.time)}{line.text}\n" for line in inside)


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
    requests = []
    for i, song in enumerate(songs):
        lyrics = song.get("lyrics") or ""
        request = {"title": song.get("id"), "style_audio": song["path"], "length": args.seconds, "seed": args.seed + i}
        if song.get("lyrics_kind") == "lrc":
            request["lrc"] = fit_lrc(lyrics, args.seconds)
        elif lyrics.strip():
            request["lyrics"] = lyrics
        else:
            request["instrumental"] = True
        requests.append(request)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in requests), encoding="utf-8")
    print(f"{len(requests)} requests -> {args.out}")


if __name__ == "__main__":
    main()
