"""Serving validated jobs with a built recipe: output names, progress, the manifest, reruns that keep what exists.

Every output `X.<fmt>` is written atomically with `X.json` beside it (the manifest: the request as given,
what validation warned about, the model files with hashes, the resolved config, seed, steps, guidance,
device, dtype, timings). `--skip-existing` keeps an output whose manifest records the same request, model
and config, so a rerun finishes only what is missing.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from ..models.requests import to_record
from .outputs import FORMATS, save_song
from .requests_io import Job

DROPPED_SUFFIX = "_dropped"


@dataclass
class RunSettings:
    out: Path
    fmt: str
    single_file: bool
    device: torch.device
    dtype_name: str
    dtype_reason: str = ""
    quiet: bool = False
    codec_dtype_name: str = "fp32"
    codec_dtype_reason: str = ""


def output_paths(job: Job, settings: RunSettings) -> list[Path]:
    batch = getattr(job.request, "batch", 1)
    stem = settings.out.stem if settings.single_file else job.name
    folder = settings.out.parent if settings.single_file else settings.out
    if getattr(job.request, "drop_conditions", False):
        stem += DROPPED_SUFFIX
    if batch == 1:
        return [folder / f"{stem}.{settings.fmt}"]
    return [folder / f"{stem}_{i}.{settings.fmt}" for i in range(batch)]


def request_record(job: Job) -> dict:
    """The request as the manifest records it (and `--skip-existing` compares it)."""
    return {"id": job.name, **to_record(job.request)}


def check_adapters(job: Job) -> None:
    """Read the job's adapter folders now (no model needed), so a missing or broken one is a job error."""
    from ..adapters import parse_spec, read_adapter

    specs = [parse_spec(s, job.base) for s in job.lora]
    job.adapters = [(spec, spec.adapter or read_adapter(spec.path)) for spec in specs]


def adapter_record(job: Job) -> list[dict]:
    """What identifies the job's adapters: name, content hash, scale (for --skip-existing and the tags)."""
    return [{"name": spec.path.name, "sha256": adapter.sha256, "scale": spec.scale} for spec, adapter in job.adapters]


def use_adapters(recipe: Any, job: Job, model: dict) -> list[dict]:
    """The job's adapters on the recipe (re-applied only when they change); -> their manifest records."""
    from ..adapters import applied_adapters, apply_adapters, describe

    wanted = [(spec.path.resolve(), spec.scale) for spec, _ in job.adapters]
    current = applied_adapters(recipe)
    if [(a.spec.path.resolve(), a.spec.scale) for a in current] != wanted:
        specs = [replace(spec, adapter=adapter) for spec, adapter in job.adapters]
        current = apply_adapters(recipe, specs, base_sha256=model["sha256"])
        for item in current:
            for warning in item.warnings:
                print(f"toolkit-generate: warning: {job.origin} ({job.name}): {warning}", file=sys.stderr)
    return describe(current)


def job_identity(job: Job, model: dict, config: dict, settings: RunSettings) -> dict:
    """What makes a job's outputs what they are: request, model, config, adapters and number formats (as JSON
    reads them back)."""
    return json.loads(json.dumps({"request": request_record(job), "checkpoint": model["sha256"],
                                  "config": config, "adapters": adapter_record(job),
                                  "dtype": settings.dtype_name, "codec_dtype": settings.codec_dtype_name}))


def already_generated(job: Job, paths: list[Path], model: dict, config: dict, settings: RunSettings) -> bool:
    """Every output of `job` exists beside a manifest that records this request, model, config and number
    formats (a song made in fp32 is remade when `auto` now picks bf16, and the other way round)."""
    wanted = job_identity(job, model, config, settings)
    for path in paths:
        manifest_path = path.with_suffix(".json")
        if not (path.is_file() and manifest_path.is_file()):
            return False
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except ValueError:
            return False
        found = {"request": manifest.get("request"), "checkpoint": (manifest.get("checkpoint") or {}).get("sha256"),
                 "config": manifest.get("config"), "dtype": manifest.get("dtype"),
                 "codec_dtype": manifest.get("codec_dtype"),
                 "adapters": [{k: a.get(k) for k in ("name", "sha256", "scale")} for a in manifest.get("adapters", [])]}
        if found != wanted:
            return False
    return True


class Progress:
    """One tqdm bar per request over the ODE updates (of every chunk), and the stages for a front end's own
    callback `extra(stage, done, total)`: "sampling" after each ODE update, "decoding" after the last update of a
    pass (the recipe decodes what it sampled next). The callback may raise to stop the job (a web app's cancel):
    the exception leaves `recipe.generate` between two ODE updates and nothing is written."""

    def __init__(self, name: str, quiet: bool, extra: Callable[[str, int, int], None] | None = None):
        self.name, self.quiet, self.extra = name, quiet, extra
        self.bar = None

    def step(self, i: int, n: int, *_: Any) -> None:
        if self.bar is None:  # a resumed job's first update is not the grid's first
            from tqdm import tqdm

            self.bar = tqdm(total=n, initial=i, desc=f"{self.name}: sampling", unit="step", disable=self.quiet,
                            file=sys.stderr, dynamic_ncols=True)
        self.bar.update(1)
        if self.extra is not None:
            self.extra("sampling", i + 1, n)
            if i + 1 == n:
                self.extra("decoding", 0, 1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_job(job: Job, recipe: Any, settings: RunSettings, model: dict, config: dict,
            progress: Callable[[str, int, int], None] | None = None, save_state_every: float | None = None
            ) -> list[Path]:
    """Generate one job and write its outputs; returns the paths written (audio and manifests). `progress(stage,
    done, total)` hears "sampling", "decoding" (see Progress) and "writing" before each output; if it raises, the
    job stops and no output of it stays. `save_state_every` (seconds; None = off): the sampler's state is kept
    in NAME.partial.pt that often (toolkit.generation.snapshots), an interrupted job resumes from it when run
    again with the same request, model and settings, and it is removed once the outputs are written."""
    from .. import __version__
    from ..eval.memory import peak_rss_mb

    request = job.checked.request
    adapters = use_adapters(recipe, job, model)
    paths = output_paths(job, settings)
    store = None if save_state_every is None else job_snapshots(job, paths, model, config, settings, save_state_every)
    bar = Progress(job.name, settings.quiet, progress)
    started = time.perf_counter()
    recipe.snapshots = store
    try:
        result = recipe.generate(request, progress=bar.step)
    except BaseException:
        say_where_the_state_is(job, store)
        raise
    finally:
        recipe.snapshots = None
        bar.close()
    wall = time.perf_counter() - started
    if len(result.audio) != len(paths):
        raise RuntimeError(f"the recipe returned {len(result.audio)} outputs for {len(paths)} expected")
    steps = getattr(request, "steps", None) or getattr(recipe.sampler, "steps", None)
    guidance = recipe.guidance(request) if hasattr(recipe, "guidance") else None
    seed = getattr(request, "seed", None)
    written: list[Path] = []
    for i, path in enumerate(paths):
        item_seed = None if seed is None else seed + i
        manifest = {
            "audio": path.name, "request": request_record(job), "warnings": list(job.checked.warnings),
            "checkpoint": model, "config": config, "recipe": config.get("recipe"), "seed": item_seed,
            "batch_index": i, "seconds": result.info.get("seconds"), "wall_seconds": wall / len(paths),
            "request_wall_seconds": wall, "peak_rss_mb": peak_rss_mb(), "lrc": job.checked.lrc,
            **job.checked.record,
            "condition": result.info.get("condition", "full"), "steps": steps, "guidance": guidance,
            "guidance_option": getattr(recipe, "guidance_option", None),
            "level": result.info.get("level"), "toolkit_version": __version__, "device": str(settings.device),
            "dtype": settings.dtype_name, "dtype_reason": settings.dtype_reason,
            "codec_dtype": settings.codec_dtype_name, "codec_dtype_reason": settings.codec_dtype_reason,
            "sample_rate": result.sample_rate,
            "frames": result.info.get("frames"), "weights": model.get("weights"), "adapters": adapters,
        }
        tags = {**job.checked.tags, "SEED": str(item_seed), "STEPS": str(steps),
                "GUIDANCE": "" if guidance is None else f"{guidance:g}", "CHECKPOINT_SHA256": model["sha256"],
                "CONDITION": manifest["condition"]}
        if adapters:  # names, content hashes and scales: never the folders they sit in
            tags["ADAPTERS"] = "; ".join(f"{a['name']} (sha256:{(a['sha256'] or '')[:12]}) x {a['scale']:g}"
                                         for a in adapters)
        title = getattr(request, "title", None) or job.name
        if len(paths) > 1:
            title = f"{title} ({i + 1}/{len(paths)})"
        try:
            if progress is not None:
                progress("writing", i, len(paths))
            written += save_song(path, result.audio[i].to(torch.float32), result.sample_rate, settings.fmt,
                                 title=title, lrc=job.checked.lrc, tag_fields=tags, manifest=manifest)
        except BaseException:  # nothing half-done stays: the batch's earlier files go too
            for done in written:
                done.unlink(missing_ok=True)
            say_where_the_state_is(job, store)
            raise
    if store is not None:
        store.discard()
    return written


def say_where_the_state_is(job: Job, store: Any) -> None:
    """After a failure: where the sampler's state was kept (what a rerun resumes from), if it was."""
    if store is not None and store.on_disk is not None:
        done, total = store.on_disk
        print(f"toolkit-generate: {job.name}: the state after update {done} of {total} is in {store.path}; "
              "run the same command again to resume from it", file=sys.stderr)


def job_snapshots(job: Job, paths: list[Path], model: dict, config: dict, settings: RunSettings,
                  every_s: float) -> Any:
    """The job's sampler-state file (FileSnapshots), tied to its identity."""
    from ..io import sha256_value
    from .snapshots import FileSnapshots, snapshot_path

    def log(message: str) -> None:
        print(f"toolkit-generate: {job.name}: {message}", file=sys.stderr)

    identity = sha256_value(job_identity(job, model, config, settings))
    return FileSnapshots(snapshot_path(paths[0]), identity, every_s, log)


def output_format(out: Path, fmt: str | None) -> tuple[str, bool]:
    """(format, whether --out names one file) from --out and --format."""
    suffix = out.suffix.lower().lstrip(".")
    single = suffix in FORMATS
    if single and fmt and fmt != suffix:
        raise ValueError(f"--out {out} and --format {fmt} disagree: name the file .{fmt}")
    return fmt or (suffix if single else "wav"), single
