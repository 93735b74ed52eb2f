"""Turn a prepared manifest (valid.jsonl) into generation requests: each song's lyrics and its own audio
as the style prompt, so the generated songs can be compared with the references they imitate.

    python local/make_requests.py --manifest EXP/data/valid.jsonl --out EXP/requests.jsonl --seconds 11 --limit 4

--mismatch writes the mismatched-lyrics control instead: the same songs (own audio as style prompt) with the
LRC of another song taken from the same manifest (held-out songs swap among themselves, training songs
among themselves), marked `extra: {group: mismatched, lrc_from: ID}` so the evaluation reports them as their
own group and scores them against the LRC they were given and against their own piece's.
"""

import argparse
import json
import sys
from pathlib import Path


def fit_lrc(lrc: str, seconds: float) -> str:
    """The LRC lines that start inside a `seconds`-long song, then an empty line just before its end.

    DiffRhythm's published base model reads the last LRC line of a song as the end-of-song marker and
    does not sing it; the empty marker keeps every lyric (our own models read it as a pause). Lines
    after the end would not be sung anyway; dropping them keeps the generator from warning about it.
    """
    from toolkit.data.tags import format_lrc_time
    from toolkit.lrc import LrcLine, parse_lrc

    inside = [line for line in parse_lrc(lrc).lines if line.time < seconds]
    end = round(seconds - 0.01, 2)
    if inside and inside[-1].text and end > inside[-1].time:
        inside.append(LrcLine(end, ""))
    return "".join(f"{format_lrc_time(line.time)}{line.text}\n" for line in inside)


def mismatched_sources(songs: list[dict], origin: list[int]) -> list[int | None]:
    """For each song, the index of the song whose lyrics it gets: the next song with lyrics from the same
    manifest (in turn, so every song's lyrics are used once), else from any manifest; never its own. None
    when no other song has lyrics (that song gets no control)."""
    def has_lyrics(i: int) -> bool:
        return bool((songs[i].get("lyrics") or "").strip())

    out: list[int | None] = []
    for i in range(len(songs)):
        same = [j for j in range(len(songs)) if origin[j] == origin[i] and j != i and has_lyrics(j)]
        pool = same or [j for j in range(len(songs)) if j != i and has_lyrics(j)]
        if pool and not same:
            print(f"note: {songs[i].get('id')} takes its mismatched LRC from another manifest", file=sys.stderr)
        later = [j for j in pool if j > i]
        out.append((later[0] if later else pool[0]) if pool else None)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", action="append", required=True, help="repeat to take songs from several")
    parser.add_argument("--out", required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--limit", type=int, default=0, help="at most this many requests (0 = all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mismatch", action="store_true",
                        help="the mismatched-lyrics control: each song gets another song's LRC")
    args = parser.parse_args()
    songs, origin = [], []
    for number, manifest in enumerate(args.manifest):
        for line in Path(manifest).read_text(encoding="utf-8").splitlines():
            if line.strip():
                songs.append(json.loads(line))
                origin.append(number)
    if args.limit:
        songs, origin = songs[: args.limit], origin[: args.limit]
    lyric_source = mismatched_sources(songs, origin) if args.mismatch else list(range(len(songs)))
    requests = []
    for i, song in enumerate(songs):
        if lyric_source[i] is None:
            print(f"note: no other song has lyrics, so {song.get('id')} gets no mismatched control", file=sys.stderr)
            continue
        source = songs[lyric_source[i]]
        lyrics = source.get("lyrics") or ""
        request = {"title": song.get("id"), "style_audio": song["path"], "length": args.seconds, "seed": args.seed + i}
        if args.mismatch:
            request["extra"] = {"group": "mismatched", "lrc_from": source.get("id")}
        if source.get("lyrics_kind") == "lrc":
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
