"""What the web app does, without the page: check a form's request, time plain lyrics, generate (in turn, with
progress and cancellation), all through toolkit.generation as `toolkit-generate` does.

Bad input is answered with the CLI's message (the same validators and error types); a bug is logged with its
traceback on the server and the page gets one line pointing there, never a stack trace.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..generation import runner
from ..generation.errors import user_errors
from ..generation.requests_io import Job, slug, with_seed
from ..models.requests import Checked, LineNote, RequestError, from_mapping, request_options
from .jobs import JobBoard, JobCancelled, job_folder
from .served import ServedModel, Settings
from .unfinished import JOB_FILE, Unfinished, discard, finished, keep_inputs, read_job, unfinished_jobs, write_job

log = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class Item:
    """One output of a job: the audio, its manifest and its spectrogram."""

    audio: Path
    manifest: Path
    picture: Path | None = None


@dataclass
class Outcome:
    ok: bool
    message: str
    warnings: list[str] = field(default_factory=list)
    notes: list[LineNote] = field(default_factory=list)
    checked: Checked | None = None
    items: list[Item] = field(default_factory=list)
    folder: Path | None = None
    seconds: float | None = None


class Service:
    """The served models, where outputs go, and the line jobs wait in."""

    def __init__(self, models: Sequence[ServedModel], out_root: str | Path, settings: Settings,
                 board: JobBoard | None = None, max_outputs: int = 8, pictures: bool = True, max_jobs: int = 8):
        if not models:
            raise RequestError("serve at least one model: --ckpt FILE or --pretrained DIR")
        self.models = {m.label: m for m in models}
        if len(self.models) != len(models):
            raise RequestError("the same model is given twice")
        self.out_root = Path(out_root)
        self.settings = settings
        self.board = board or JobBoard()
        self.max_outputs = max_outputs
        self.max_jobs = max_jobs  # jobs that may wait in line at once (more wait in Gradio's queue)
        self.pictures = pictures
        self._busy: set[Path] = set()  # the folders of the jobs running now
        self._lock = threading.Lock()

    def model(self, label: str | None) -> ServedModel:
        if label in self.models:
            return self.models[label]
        raise RequestError(f"no model {label!r} is served; pick one of: {', '.join(self.models)}")

    # ------------------------------------------------------------------------------------------ checking
    def request(self, model: ServedModel, data: Mapping[str, Any]) -> Any:
        request = from_mapping(model.request_type, dict(data))
        batch = getattr(request, "batch", 1)
        if isinstance(batch, int) and batch > self.max_outputs:
            raise RequestError(f"batch {batch}: the web app shows at most {self.max_outputs} outputs of a request; "
                               "use toolkit-generate --requests for more")
        return request

    def _checked(self, model: ServedModel, data: Mapping[str, Any], seeded: bool = False) -> tuple[Any, Checked, Any]:
        """(the request as given, what validation made of it, the model source); `seeded`: a request without a seed
        gets a fresh one first (the manifest records it)."""
        request = self.request(model, data)
        if seeded:
            request = with_seed(request, None)
        source = model.source_for(request, self.settings)
        return request, model.validator(source).check(request), source

    def check(self, label: str, data: Mapping[str, Any]) -> Outcome:
        """Validate without generating: the warnings and line notes, or the error (with its notes)."""
        try:
            _, checked, _ = self._checked(self.model(label), data)
        except user_errors() as err:
            return Outcome(False, str(err), notes=list(getattr(err, "notes", [])))
        except Exception as err:  # a bug: the page gets one line, the log the traceback
            log.exception("checking a request failed")
            return Outcome(False, f"internal error while checking ({type(err).__name__}: {err}); details are in "
                                  "the server's log")
        return Outcome(True, "ready", warnings=list(checked.warnings), notes=list(checked.notes), checked=checked)

    def fill(self, label: str, data: Mapping[str, Any], target: str) -> tuple[str | None, str]:
        """(the field `target` of the checked request, a message): e.g. plain lyrics timed into an LRC."""
        outcome = self.check(label, data)
        if not outcome.ok:
            return None, outcome.message
        value = getattr(outcome.checked.request, target, None)
        if not value:
            return None, f"validation gave no {target}"
        return str(value), "done"

    # ---------------------------------------------------------------------------------------- generating
    def generate(self, label: str, data: Mapping[str, Any], session: str, fmt: str = "wav",
                 progress: Progress | None = None) -> Outcome:
        """Check, wait for the turn, build the model if needed, generate and write; never raises for bad input."""
        return self._run(label, data, session, fmt, progress)

    def unfinished(self, recipe: str | None = None) -> list[Unfinished]:
        """Jobs a crash or a restart interrupted (not those running now), newest first; `recipe`: of that recipe
        (listed even when their model is not served now: resuming says how to serve it)."""
        with self._lock:
            busy = list(self._busy)
        return [j for j in unfinished_jobs(self.out_root, busy) if recipe is None or j.recipe == recipe]

    def resume(self, name: str, session: str, progress: Progress | None = None) -> Outcome:
        """Finish the unfinished job in folder `name` from its saved state: the same request, seed and format."""
        folder = self.out_root / Path(name).name
        with self._lock:  # claimed at once: a second click waits for nothing and says so
            if folder in self._busy:
                return Outcome(False, f"{name} is running now")
            self._busy.add(folder)
        try:
            job = read_job(folder)
            if job.model not in self.models:
                raise RequestError(f"{name} was made with {job.model}, which this server does not serve: start "
                                   "toolkit-app with that model (--ckpt FILE or --pretrained DIR) to resume it")
        except RequestError as err:
            with self._lock:
                self._busy.discard(folder)
            return Outcome(False, str(err))
        return self._run(job.model, job.request, session, job.fmt, progress, folder)

    def _run(self, label: str, data: Mapping[str, Any], session: str, fmt: str, progress: Progress | None,
             folder: Path | None = None) -> Outcome:
        """A job from `data` (a new folder) or the unfinished job of `folder`: its request and the copies of its
        files are kept in the folder until the outputs are written, the sampler's state every
        `settings.save_state_every` seconds."""
        report = progress or (lambda *_: None)
        ticket = self.board.enter(session)
        started = time.perf_counter()
        resuming = folder is not None
        try:
            model = self.model(label)
            if not resuming:
                # a folder of its own, with the files it reads copied in (uploads live where a restart may empty)
                folder = job_folder(self.out_root, ticket)
                with self._lock:
                    self._busy.add(folder)
                data = keep_inputs(folder, data, (o.field for o in request_options(model.request_type)
                                                  if o.kind == "path"))
            request, checked, source = self._checked(model, data, seeded=True)
            if not resuming:  # the request as it will run, its seed included
                seed = getattr(request, "seed", None)
                write_job(folder, label, model.recipe, {**data, **({"seed": seed} if seed is not None else {})}, fmt)
            self.board.wait_turn(ticket, lambda ahead: report("waiting", ahead, ahead + 1))

            def step(stage: str, done: int, total: int) -> None:
                ticket.check()
                report(stage, done, total)

            if not model.is_built(source):
                step("loading", 0, 1)
            recipe, record = model.built(source, self.settings)
            ticket.check()
            title = getattr(request, "title", None)
            job = Job(slug(title) if title else model.recipe_cls.output_name, request, "web app", checked=checked)
            dtype_name, _, dtype_reason = self.settings.dtype_for(source)
            run = runner.RunSettings(folder, fmt, False, self.settings.device, dtype_name, dtype_reason, quiet=True)
            paths = runner.run_job(job, recipe, run, record, _plain(source), progress=step,
                                   save_state_every=self.settings.save_state_every)
            finished(folder)
            items = self._items(paths, step)
        except JobCancelled:
            discard(folder)
            return Outcome(False, "cancelled: nothing was written")
        except user_errors() as err:  # a new job is refused whole; a saved one stays (e.g. its model is not served)
            if not resuming:
                discard(folder)
            return Outcome(False, str(err), notes=list(getattr(err, "notes", [])))
        except Exception as err:  # a bug: a started job stays unfinished, its state kept
            log.exception("a web app job failed")
            kept = folder is not None and (folder / JOB_FILE).is_file()
            if not kept:
                discard(folder)
            where = f"; the job is kept: resume {folder.name} under Unfinished jobs" if kept else ""
            return Outcome(False, f"internal error ({type(err).__name__}: {err}); details are in the server's log"
                                  + where, folder=folder if kept else None)
        finally:
            self.board.leave(ticket)
            with self._lock:
                self._busy.discard(folder)
        seconds = time.perf_counter() - started
        seed = getattr(request, "seed", None)
        message = (("resumed: " if resuming else "") + f"{len(items)} output(s) in {seconds:.1f} s"
                   + (f", seed {seed}" if seed is not None else ""))
        return Outcome(True, message, warnings=list(checked.warnings), notes=list(checked.notes), checked=checked,
                       items=items, folder=folder, seconds=seconds)

    def _items(self, paths: Sequence[Path], step: Progress) -> list[Item]:
        audio = [p for p in paths if p.suffix != ".json"]
        items = []
        for i, path in enumerate(audio):
            picture = None
            if self.pictures:
                step("drawing", i, len(audio))
                picture = self._picture(path)
            items.append(Item(path, path.with_suffix(".json"), picture))
        return items

    @staticmethod
    def _picture(path: Path) -> Path | None:
        from .pictures import spectrogram

        try:
            return spectrogram(path, path.with_suffix(".png"), title=path.name)
        except Exception:  # a missing picture must not lose the song
            log.exception("drawing the spectrogram of %s failed", path)
            return None

    def cancel(self, session: str) -> int:
        return self.board.cancel(session)


def _plain(source: Any) -> dict:
    from ..generation.sources import plain_config

    return plain_config(source)
