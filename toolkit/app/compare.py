"""Opening an `egs/compare` report folder for the page: the variants' table (as the report writes it) and, for
each request, the audio every variant generated for it (exp/songs/<variant>/<request>.<fmt> + its manifest)."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..models.requests import RequestError

REPORT_JSON = "report.json"


@dataclass
class Report:
    folder: Path                                   # the report folder (exp/report)
    doc: dict[str, Any]
    table: str                                     # markdown: one row per variant
    songs: dict[str, dict[str, Path]] = field(default_factory=dict)   # request -> variant -> audio

    @property
    def variants(self) -> list[str]:
        return [str(row.get("name")) for row in self.doc.get("variants", [])]

    @property
    def requests(self) -> list[str]:
        return sorted(self.songs)


def find_report(path: str | Path) -> Path:
    """The report folder from itself, its experiment folder or its report.json."""
    path = Path(str(path).strip()).expanduser()
    for candidate in (path, path / "report", path.parent if path.name == REPORT_JSON else None):
        if candidate is not None and (candidate / REPORT_JSON).is_file():
            return candidate
    raise RequestError(f"{path}: no comparison report here (expected {REPORT_JSON} in it or in its report/ folder); "
                       "egs/compare/run.sh writes it to <exp>/report/")


def open_report(path: str | Path) -> Report:
    from ..eval.compare import RESULT_COLUMNS, variant_table

    folder = find_report(path)
    try:
        doc = json.loads((folder / REPORT_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise RequestError(f"{folder / REPORT_JSON} cannot be read: {err}") from err
    if not isinstance(doc, dict) or not isinstance(doc.get("variants"), list):
        raise RequestError(f"{folder / REPORT_JSON} is not a comparison report (no variants)")
    report = Report(folder, doc, variant_table(doc["variants"], RESULT_COLUMNS))
    songs_root = folder.parent / "songs"
    for name in report.variants:
        for manifest in sorted((songs_root / name).glob("*.json")) if (songs_root / name).is_dir() else []:
            try:
                audio = json.loads(manifest.read_text(encoding="utf-8")).get("audio")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(audio, str) and (manifest.parent / audio).is_file():
                report.songs.setdefault(Path(audio).stem, {})[name] = manifest.parent / audio
    return report


def servable_copy(path: Path, cache: Path) -> Path:
    """A copy of a report's audio under the app's output folder (which the app may serve), keyed by its path."""
    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    target = cache / key / path.name
    if not target.is_file() or target.stat().st_mtime < path.stat().st_mtime:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return target
