"""Give every song of prepared manifests a text prompt made from its tags (Stable Audio's `prompt` field).

    python local/make_prompts.py --data EXP/data [--songs SONGS_DIR]

The embedded chorales: "<genres>, <ensemble>, <tempo> BPM, <major|minor> key, <moods>", e.g. "chorale, baroque,
organ, 84 BPM, major key, solemn". The ensemble and tempo come from the chorale builder's record
(SONGS_DIR/manifest.jsonl and its .build/ records, found beside the audio when --songs is not given); the key
from its mood tag (the builder tags a piece "dark" when music21's key analysis finds minor, "bright" for major).
Other songs: their genres and moods (and `bpm`, `key` fields when a manifest has them). train.jsonl and
valid.jsonl are rewritten in place (atomically); a prompt already there is kept, so the step can be rerun.
"""

import argparse
import json
from pathlib import Path

from toolkit.io import atomic_write_text

SPLITS = ("train.jsonl", "valid.jsonl")
KEY_OF_MOOD = {"bright": "major key", "dark": "minor key"}  # the chorale builder's tagging of its key analysis


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def build_records(songs: Path | None, entries: list[dict]) -> dict[str, dict]:
    """The chorale builder's per-piece records (ensemble, bpm) by id, from the songs' manifest.jsonl."""
    folders = {songs} if songs else {Path(e["path"]).parent for e in entries if e.get("path")}
    records = {}
    for folder in folders:
        manifest = folder / "manifest.jsonl"
        if manifest.is_file():
            records.update({r["id"]: r for r in read(manifest) if "id" in r})
        for path in sorted((folder / ".build").glob("*.json")):  # per-piece records of every piece built there
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                continue
            if isinstance(record, dict) and "id" in record:
                records.setdefault(record["id"], record)
    return records


def prompt_of(entry: dict, record: dict | None) -> str:
    genres, moods = list(entry.get("genres") or []), list(entry.get("moods") or [])
    if not genres and not moods:
        genres = list(entry.get("tags") or [])
    ensemble = (record or {}).get("ensemble") or entry.get("ensemble")
    bpm = (record or {}).get("bpm") or entry.get("bpm")
    parts = [g for g in genres if g != ensemble]
    if ensemble:
        parts.append(str(ensemble))
    if bpm:
        parts.append(f"{float(bpm):g} BPM")
    if entry.get("key"):
        parts.append(str(entry["key"]))
    elif record is not None:  # a chorale: its mood tag says the key's mode
        parts += [KEY_OF_MOOD[m] for m in moods if m in KEY_OF_MOOD]
        moods = [m for m in moods if m not in KEY_OF_MOOD]
    parts += [m for m in moods if m not in parts]
    return ", ".join(dict.fromkeys(p for p in parts if p))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="folder of train.jsonl / valid.jsonl (toolkit.bin.prepare)")
    parser.add_argument("--songs", default=None, help="the songs folder (default: beside each song's audio)")
    args = parser.parse_args()
    data = Path(args.data)
    splits = [data / s for s in SPLITS if (data / s).is_file()]
    if not splits:
        raise SystemExit(f"{data} has no {' or '.join(SPLITS)}: run the data stage (toolkit.bin.prepare) first")
    entries = {path: read(path) for path in splits}
    records = build_records(Path(args.songs) if args.songs else None, [e for es in entries.values() for e in es])
    made = empty = 0
    for path, items in entries.items():
        for entry in items:
            if not entry.get("prompt"):
                entry["prompt"] = prompt_of(entry, records.get(str(entry.get("id"))))
                made += 1
            empty += not entry["prompt"]
        atomic_write_text(path, "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in items))
    if empty:
        raise SystemExit(f"{empty} song(s) have no tags to make a prompt of: give them genres / moods tags or a "
                         "`prompt` field in the manifest")
    example = next(iter(entries.values()))[0]["prompt"]
    print(f"prompts for {made} song(s) in {data} (e.g. {example!r})")


if __name__ == "__main__":
    main()
