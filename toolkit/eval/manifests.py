"""Reading what the generation CLI and the data stage leave behind, tolerant of missing fields.

Generation manifest `X.json` beside each generated `X.wav` (fields read; every one is optional):

    request        the generation request (dict); its "id" / "name" / "utt" / "key" / "title" names
                   the reference item; its "lrc" and "style" (or "style_audio" / "style_text") are
                   fallbacks for the top-level ones
    seconds        seconds of audio generated (default: read from the wav header)
    wall_seconds   generation wall time in seconds (-> real-time factor = wall_seconds / seconds)
    peak_rss_mb    peak resident memory of the generation process, MiB
    lrc            the LRC text used (or a path to an .lrc file); null for none
    style          {"audio": path or null, "text": str or null}: the style prompt of the request,
                   recorded even when the condition dropped it (style adherence compares with it)
    condition      "full" or "dropped" (lyrics and style dropped): the group the song is reported in;
                   without it the song's sub-folder of --songs names the group, else "all"
    request.extra  {"group": NAME, "lrc_from": ID}: a control's group (e.g. "mismatched": another song's LRC,
                   from the item ID) wins over `condition`

Reference manifest (`--manifest VALID.jsonl`, one JSON object per line; fields read):

    id | name | utt | key       the item name (else the stem of its audio file)
    audio | path | wav | audio_path   the reference recording (relative paths: to the manifest's folder, then cwd)
    lrc | lrc_path              LRC text or a path to an .lrc file; else `lyrics` when it is an LRC
                                (`lyrics_kind` "lrc", as toolkit.bin.prepare writes, or timestamped text)
    style                       a style prompt (path, text or {"audio", "text"}), a fallback for style adherence
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg")
ID_KEYS = ("id", "name", "utt", "key")
AUDIO_KEYS = ("audio", "path", "wav", "audio_path")
LRC_KEYS = ("lrc", "lrc_path")
GROUP_SUFFIXES = ("_dropped", "-dropped", ".dropped", "_full", "-full", ".full", "_uncond", "_cond")


class ManifestError(ValueError):
    """A manifest that cannot be read."""


@dataclass
class ReferenceItem:
    key: str
    audio: Path | None = None
    lrc: str | None = None
    style: Any = None
    split: str | None = None  # "held-out" or "training" when the evaluation was told which pieces were held out


@dataclass
class GeneratedSong:
    path: Path
    group: str
    keys: list[str]
    manifest: dict = field(default_factory=dict)
    seconds: float | None = None
    wall_seconds: float | None = None
    peak_rss_mb: float | None = None
    lrc: str | None = None
    style: Any = None
    lrc_from: str | None = None  # the item whose LRC a mismatched-lyrics control was given

    @property
    def name(self) -> str:
        return self.path.stem


def _first(d: dict, keys: tuple[str, ...]) -> Any:
    for k in keys:
        if d.get(k) not in (None, ""):
            return d[k]
    return None


def _number(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out


def _resolve(path: Any, base: Path) -> Path | None:
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        return None
    p = Path(path)
    if p.is_absolute():
        return p
    return base / p if (base / p).exists() else p


def read_lrc(value: Any, base: Path) -> str | None:
    """LRC text, or the text of the .lrc file `value` names; None for none."""
    if not isinstance(value, str) or not value.strip():
        return None
    if "\n" not in value and "[" not in value[:1] and value.strip().lower().endswith(".lrc"):
        path = _resolve(value.strip(), base)
        if path is None or not path.is_file():
            raise ManifestError(f"LRC file not found: {value} (looked beside the manifest in {base} and in the "
                                "working directory)")
        return path.read_text(encoding="utf-8")
    return value


def _looks_like_lrc(text: str) -> bool:
    from ..lrc import looks_like_lrc

    return looks_like_lrc(text)


def _strip_group_suffix(stem: str) -> str:
    for suffix in GROUP_SUFFIXES:
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def _manifest_lines(path: str | os.PathLike):
    """(line number, entry, key, audio path) of each item of a reference manifest."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"reference manifest not found: {path}")
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as err:
            raise ManifestError(f"{path}:{number}: not a JSON object ({err.msg})") from err
        if not isinstance(entry, dict):
            raise ManifestError(f"{path}:{number}: expected a JSON object per line")
        audio = _resolve(_first(entry, AUDIO_KEYS), path.parent)
        key = _first(entry, ID_KEYS)
        key = str(key) if key is not None else (audio.stem if audio else f"line{number}")
        yield number, entry, key, audio


def raw_entries(paths) -> dict[str, tuple[dict, Path | None]]:
    """{key: (manifest line, audio path)} of several manifests (the first wins on a clash)."""
    out: dict[str, tuple[dict, Path | None]] = {}
    for path in paths:
        for _, entry, key, audio in _manifest_lines(path):
            out.setdefault(key, (entry, audio))
    return out


def read_reference_manifest(path: str | os.PathLike) -> dict[str, ReferenceItem]:
    """VALID.jsonl -> {key: ReferenceItem}; items are findable by id and by audio stem."""
    base = Path(path).parent
    index: dict[str, ReferenceItem] = {}
    for _, entry, key, audio in _manifest_lines(path):
        lrc = read_lrc(_first(entry, LRC_KEYS), base)
        lyrics = entry.get("lyrics")
        if lrc is None and isinstance(lyrics, str) and (entry.get("lyrics_kind") == "lrc" or _looks_like_lrc(lyrics)):
            lrc = lyrics
        item = ReferenceItem(key=key, audio=audio, lrc=lrc,
                             style=entry.get("style"))
        index.setdefault(key, item)
        if audio is not None:
            index.setdefault(audio.stem, item)
    return index


def find_songs(songs_dir: str | os.PathLike) -> list[Path]:
    songs_dir = Path(songs_dir)
    if not songs_dir.is_dir():
        raise ManifestError(f"songs folder not found: {songs_dir}")
    songs = sorted(p for p in songs_dir.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith("."))
    if not songs:
        raise ManifestError(f"no generated songs ({', '.join(AUDIO_SUFFIXES)}) under {songs_dir}; "
                            "run the generate stage first")
    return songs


def read_generated_song(path: Path, songs_dir: Path) -> GeneratedSong:
    """One generated song and whatever its `X.json` manifest holds."""
    manifest_path = path.with_suffix(".json")
    manifest: dict = {}
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ManifestError(f"{manifest_path}: not valid JSON ({err.msg})") from err
        if not isinstance(manifest, dict):
            raise ManifestError(f"{manifest_path}: expected a JSON object")
    request = manifest.get("request") if isinstance(manifest.get("request"), dict) else {}
    extra = request.get("extra") if isinstance(request.get("extra"), dict) else {}
    group = extra.get("group") or manifest.get("condition")
    if not group:
        rel = path.relative_to(songs_dir)
        group = rel.parts[0] if len(rel.parts) > 1 else "all"
    keys = [str(k) for k in (_first(request, ID_KEYS + ("title",)), _first(manifest, ID_KEYS)) if k is not None]
    request_audio = _first(request, AUDIO_KEYS)
    if isinstance(request_audio, str):
        keys.append(Path(request_audio).stem)
    keys += [path.stem, _strip_group_suffix(path.stem)]
    lrc_value = manifest["lrc"] if "lrc" in manifest else request.get("lrc")
    style = manifest.get("style") if manifest.get("style") is not None else request.get("style")
    if style is None and (request.get("style_audio") or request.get("style_text")):
        style = {"audio": request.get("style_audio"), "text": request.get("style_text")}
    if isinstance(style, dict):
        style = {k: (str(_resolve(v, manifest_path.parent)) if k == "audio" and v else v) for k, v in style.items()}
    return GeneratedSong(
        path=path, group=str(group), keys=list(dict.fromkeys(keys)), manifest=manifest,
        seconds=_number(manifest.get("seconds")), wall_seconds=_number(manifest.get("wall_seconds")),
        peak_rss_mb=_number(manifest.get("peak_rss_mb")), lrc=read_lrc(lrc_value, manifest_path.parent),
        style=style, lrc_from=str(extra["lrc_from"]) if extra.get("lrc_from") else None)


def match_reference(song: GeneratedSong, references: dict[str, ReferenceItem]) -> ReferenceItem | None:
    for key in song.keys:
        if key in references:
            return references[key]
    return None
