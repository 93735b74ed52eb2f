"""Scan a folder of songs into train/valid jsonl manifests, skipping (and reporting) unusable files.

Per song: duration, sample rate and channels from the header (soundfile, else mutagen; nothing is
decoded for them); lyrics from a sidecar `<stem>.lrc` or `<stem>.txt`, else from the tags (ID3
SYLT/USLT, Vorbis LYRICS, MP4 ©lyr); title, genres and moods from the tags. Each file is then
decoded in a few short excerpts (EXCERPTS windows of EXCERPT_SECONDS, spread from start to end,
the last one ending at the end of the file) which catches silent and truncated files without
decoding whole songs. The split is deterministic: songs are ordered by a hash of (seed, id) and
the first round(valid_fraction * n) go to valid (at least one when there are two songs or more),
so it does not depend on the file system's listing order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..io import atomic_write_text
from .tags import TagError, lyrics_kind, read_tags

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".m4a")
SIDECAR_SUFFIXES = (".lrc", ".txt")
IGNORED_SUFFIXES = (".lrc", ".txt", ".json", ".jsonl")  # sidecars and manifests: not reported
EXCERPTS = 4
EXCERPT_SECONDS = 2.0
SILENCE_DB = -60.0


@dataclass
class Skipped:
    path: str
    reason: str  # unsupported | unreadable | truncated | empty | too_short | silent
    detail: str = ""


@dataclass
class PrepareResult:
    train: list[dict] = field(default_factory=list)
    valid: list[dict] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    scanned: int = 0

    def report(self, data: Path, out: Path | None = None) -> dict:
        counts: dict[str, int] = {}
        for s in self.skipped:
            counts[s.reason] = counts.get(s.reason, 0) + 1
        songs = self.train + self.valid
        return {
            "data": str(data), "out": str(out) if out else None, "scanned": self.scanned,
            "kept": len(songs), "train": len(self.train), "valid": len(self.valid),
            "hours": round(sum(s["duration"] for s in songs) / 3600, 4),
            "with_lyrics": {k: sum(s["lyrics_kind"] == k for s in songs) for k in ("lrc", "plain", "none")},
            "skipped_counts": counts,
            "skipped": [vars(s) for s in self.skipped],
            "silence_check": f"{EXCERPTS} excerpts of {EXCERPT_SECONDS:g} s per file, silent below "
                             f"{SILENCE_DB:g} dBFS RMS",
        }


class _Skip(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def probe(path: Path) -> tuple[float, int, int]:
    """(duration s, sample rate, channels) from the header, without decoding."""
    import mutagen
    import soundfile as sf

    try:
        info = sf.info(str(path))
        if info.frames > 0 and info.samplerate > 0:
            return info.frames / info.samplerate, int(info.samplerate), int(info.channels)
    except Exception:
        pass
    try:
        meta = mutagen.File(str(path))
    except Exception as err:
        raise _Skip("unreadable", f"not a readable audio file ({type(err).__name__}: {err})") from err
    info = getattr(meta, "info", None)
    if info is None or not getattr(info, "sample_rate", 0):
        raise _Skip("unreadable", "not a readable audio file (unknown format or corrupt header)")
    return float(getattr(info, "length", 0.0) or 0.0), int(info.sample_rate), int(getattr(info, "channels", 0) or 0)


def check_excerpts(path: Path, duration: float) -> None:
    """Decode EXCERPTS short windows; raise _Skip if they fail, come back short, or are all silent."""
    from ..audio import AudioError, is_silent, load_audio

    span = min(EXCERPT_SECONDS, duration)
    count = 1 if duration <= EXCERPT_SECONDS else EXCERPTS
    starts = [(duration - span) * i / max(count - 1, 1) for i in range(count)]
    silent = True
    for start in starts:
        try:
            wav, sr = load_audio(path, offset=start, duration=span)
        except AudioError as err:
            raise _Skip("truncated", f"decoding failed at {start:.1f} s of {duration:.1f} s: {err}") from err
        got = wav.shape[-1] / sr
        if got < 0.5 * span:
            raise _Skip("truncated", f"only {got:.2f} s decodable at {start:.1f} s (the header says {duration:.1f} s)")
        silent = silent and is_silent(wav, SILENCE_DB)
    if silent:
        raise _Skip("silent", f"every excerpt is below {SILENCE_DB:g} dBFS")


def read_lyrics(path: Path, tags) -> tuple[str | None, str]:
    """(text, source): a sidecar .lrc, then .txt, then the tags."""
    for suffix in SIDECAR_SUFFIXES:
        for side in (path.with_suffix(suffix), path.with_suffix(suffix.upper())):
            if side.is_file():
                text = side.read_text(encoding="utf-8-sig", errors="replace").strip()
                if text:
                    return text, f"sidecar{suffix}"
    if tags is not None and tags.lyrics and tags.lyrics.strip():
        return tags.lyrics.strip(), "tags"
    return None, "none"


def describe_song(path: Path, root: Path, min_seconds: float) -> dict:
    """The manifest entry of one audio file; raises _Skip for an unusable file."""
    if path.stat().st_size == 0:
        raise _Skip("empty", "0 bytes")
    duration, sr, channels = probe(path)
    if duration <= 0:
        raise _Skip("empty", "no audio frames")
    if duration < min_seconds:
        raise _Skip("too_short", f"{duration:.2f} s < --min-seconds {min_seconds:g}")
    check_excerpts(path, duration)
    try:
        tags = read_tags(path)
    except TagError:
        tags = None
    lyrics, source = read_lyrics(path, tags)
    genres, moods = (tags.genres, tags.moods) if tags else ([], [])
    return {
        "id": path.relative_to(root).with_suffix("").as_posix(),
        "path": str(path.resolve()),
        "duration": round(duration, 4), "sample_rate": sr, "channels": channels,
        "title": (tags.title if tags and tags.title else path.stem),
        "artist": tags.artist if tags else None,
        "lyrics": lyrics, "lyrics_kind": lyrics_kind(lyrics), "lyrics_source": source,
        "tags": list(dict.fromkeys([*genres, *moods])), "genres": genres, "moods": moods,
    }


def _split_key(seed: int, song_id: str) -> str:
    return hashlib.sha1(f"{seed}:{song_id}".encode()).hexdigest()


def split(songs: list[dict], valid_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Deterministic train/valid split (independent of input order); both sorted by id."""
    if not 0.0 <= valid_fraction < 1.0:
        raise ValueError("valid_fraction must be in [0, 1)")
    ranked = sorted(songs, key=lambda s: _split_key(seed, s["id"]))
    n_valid = round(valid_fraction * len(ranked))
    if valid_fraction > 0 and len(ranked) >= 2:
        n_valid = max(1, n_valid)
    n_valid = min(n_valid, len(ranked) - 1) if ranked else 0
    by_id = lambda s: s["id"]  # noqa: E731
    return sorted(ranked[n_valid:], key=by_id), sorted(ranked[:n_valid], key=by_id)


def scan(data: str | Path, min_seconds: float = 1.0, exclude: Path | None = None,
         progress: Callable[[int, Path], None] | None = None) -> tuple[list[dict], list[Skipped], int]:
    """Every audio file under `data` (hidden files and `exclude` skipped) -> (entries, skipped, scanned)."""
    root = Path(data).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"--data {data}: no such folder")
    exclude = exclude.resolve() if exclude else None
    songs, skipped, scanned, seen = [], [], 0, set()
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        if exclude and (path == exclude or exclude in path.parents):
            continue
        suffix = path.suffix.lower()
        if suffix in IGNORED_SUFFIXES:
            continue
        scanned += 1
        if progress:
            progress(scanned, path)
        if suffix not in AUDIO_SUFFIXES:
            skipped.append(Skipped(str(rel), "unsupported", f"'{suffix or path.name}' is not one of "
                                                           f"{', '.join(AUDIO_SUFFIXES)}"))
            continue
        try:
            entry = describe_song(path, root, min_seconds)
        except _Skip as skip:
            skipped.append(Skipped(str(rel), skip.reason, skip.detail))
            continue
        except Exception as err:  # never crash on one bad file; keep the reason
            skipped.append(Skipped(str(rel), "unreadable", f"{type(err).__name__}: {err}"))
            continue
        if entry["id"] in seen:  # song.mp3 next to song.wav
            entry["id"] = rel.as_posix()
        seen.add(entry["id"])
        songs.append(entry)
    return songs, skipped, scanned


def prepare(data: str | Path, out: str | Path, valid_fraction: float = 0.1, seed: int = 0,
            min_seconds: float = 1.0) -> PrepareResult:
    """Scan `data`, write out/train.jsonl, out/valid.jsonl and out/report.json (atomically)."""
    out = Path(out)
    songs, skipped, scanned = scan(data, min_seconds=min_seconds, exclude=out)
    train, valid = split(songs, valid_fraction, seed)
    result = PrepareResult(train=train, valid=valid, skipped=skipped, scanned=scanned)
    for name, items in (("train", train), ("valid", valid)):
        atomic_write_text(out / f"{name}.jsonl", "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in items))
    report = result.report(Path(data).resolve(), out.resolve())
    report.update(valid_fraction=valid_fraction, seed=seed, min_seconds=min_seconds)
    atomic_write_text(out / "report.json", json.dumps(report, ensure_ascii=False, indent=1) + "\n")
    return result


def summary(result: PrepareResult, data: Path, out: Path) -> str:
    rep = result.report(data, out)
    lines = [f"scanned {rep['scanned']} files in {data}: kept {rep['kept']} songs ({rep['hours'] * 60:.1f} min) "
             f"-> {rep['train']} train, {rep['valid']} valid in {out}",
             "lyrics: " + ", ".join(f"{v} {k}" for k, v in rep["with_lyrics"].items())]
    if result.skipped:
        lines.append(f"skipped {len(result.skipped)}: "
                     + ", ".join(f"{v} {k}" for k, v in sorted(rep["skipped_counts"].items())))
        lines += [f"  {s.path}: {s.reason} ({s.detail})" for s in result.skipped[:20]]
        if len(result.skipped) > 20:
            lines.append(f"  ... and {len(result.skipped) - 20} more in {out / 'report.json'}")
    return "\n".join(lines)
