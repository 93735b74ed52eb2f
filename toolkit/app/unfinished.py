"""A web app job's folder while the job is unfinished, so that a song survives a crash or a server restart.

A song takes 20-40 minutes on a 2-core CPU. While it runs, its folder holds `job.json` (the served model's
label, the request with its seed, the audio format), copies of the files it reads (`inputs/`: uploads live in
a temporary folder that a restart may empty) and the sampler's state (`NAME.partial.pt`, written by the
runner). Once the outputs are written `job.json` goes; the copies stay, since the manifest names them. A
folder that still has `job.json` when no job runs in it is unfinished: the page lists it and resumes it from
the saved state with the same request, so the song is the one the first run would have made.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..generation.snapshots import SUFFIX, saved_progress
from ..io import atomic_write_text
from ..models.requests import RequestError

log = logging.getLogger(__name__)
JOB_FILE = "job.json"
INPUTS = "inputs"


@dataclass
class Unfinished:
    """A job folder left with its request: what the page lists and resumes."""

    folder: Path
    model: str
    recipe: str
    request: dict[str, Any]
    fmt: str
    done: int = 0     # ODE updates saved (of the furthest sampling pass), 0 = none saved yet
    total: int = 0

    @property
    def name(self) -> str:
        return self.folder.name

    def describe(self) -> str:
        title = self.request.get("title") or "untitled"
        saved = f"update {self.done} of {self.total} saved" if self.total else "no update saved yet"
        return f"{self.name}: {title} ({self.model}; {saved})"


def keep_inputs(folder: Path, data: Mapping[str, Any], path_fields: Iterable[str]) -> dict[str, Any]:
    """`data` with each file it names (the fields in `path_fields`) copied into `folder/inputs` and named there."""
    out = dict(data)
    for name in path_fields:
        value = out.get(name)
        if not value or not Path(value).is_file():
            continue  # a missing file is validation's to report
        target = folder / INPUTS / name / Path(value).name  # the file's own name: tags and manifests show it
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(value, target)
        out[name] = str(target)
    return out


def write_job(folder: Path, model: str, recipe: str, request: Mapping[str, Any], fmt: str) -> None:
    atomic_write_text(folder / JOB_FILE, json.dumps({"model": model, "recipe": recipe, "request": dict(request),
                                                     "format": fmt}, indent=1, ensure_ascii=False))


def finished(folder: Path) -> None:
    """The outputs are written: the folder is no longer unfinished."""
    (folder / JOB_FILE).unlink(missing_ok=True)


def discard(folder: Path | None) -> None:
    """A cancelled or refused job: its request, copies and saved state go, and the folder if nothing else is in it."""
    if folder is None or not folder.is_dir():
        return
    (folder / JOB_FILE).unlink(missing_ok=True)
    for state in folder.glob(f"*{SUFFIX}"):
        state.unlink()
    shutil.rmtree(folder / INPUTS, ignore_errors=True)
    if not any(folder.iterdir()):
        folder.rmdir()


def read_job(folder: Path) -> Unfinished:
    """The unfinished job in `folder`; RequestError if there is none or its job.json is unreadable."""
    path = folder / JOB_FILE
    if not path.is_file():
        raise RequestError(f"{folder.name} is not an unfinished job (no {JOB_FILE}): it was finished, cancelled or "
                           "never started; refresh the list")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        job = Unfinished(folder, str(data["model"]), str(data["recipe"]), dict(data["request"]),
                         str(data.get("format") or "wav"))
    except (ValueError, KeyError, TypeError) as err:
        raise RequestError(f"{path} is not a readable job record ({type(err).__name__}: {err}); remove the folder "
                           "or start the song again") from None
    progress = [p for p in map(saved_progress, sorted(folder.glob(f"*{SUFFIX}"))) if p is not None]
    if progress:
        job.done, job.total = max(progress)
    return job


def unfinished_jobs(root: Path, busy: Iterable[Path] = ()) -> list[Unfinished]:
    """The unfinished jobs under `root`, newest first, leaving out the folders of jobs running now (`busy`)."""
    busy = {Path(b).resolve() for b in busy}
    jobs = []
    if not root.is_dir():
        return jobs
    for folder in sorted((p for p in root.iterdir() if (p / JOB_FILE).is_file()), reverse=True):
        if folder.resolve() in busy:
            continue
        try:
            jobs.append(read_job(folder))
        except RequestError as err:  # one broken record must not hide the others
            log.warning("%s", err)
    return jobs
