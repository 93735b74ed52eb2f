"""The comparison harness's steps: data, extract + train per model, generate per variant, evaluate per variant.

Each step runs a toolkit CLI in its own process (logged to <exp>/logs) and is stamped when it finishes, so a
rerun skips steps whose inputs did not change.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..eval.embeddings import DEFAULT_EMBEDDING
from ..eval.machine import load_average
from .compare_plan import Model, Plan, PlanError, Variant, resolve_path

STAMP = ".compare_stamp"  # not *.json: song folders hold X.json manifests


class Runner:
    """Runs the steps of a plan; each step logs to <exp>/logs and is stamped when it finishes."""

    def __init__(self, plan: Plan, log=print):
        self.plan, self.exp, self.log = plan, plan.exp, log
        self.failed: dict[str, str] = {}
        self.timings_path = self.exp / "timings.json"
        self.timings: dict[str, float] = (json.loads(self.timings_path.read_text())
                                          if self.timings_path.is_file() else {})

    # -- bookkeeping
    @staticmethod
    def _key(obj: Any) -> Any:
        return json.loads(json.dumps(obj, sort_keys=True, default=str))

    def done(self, folder: Path, key: Any) -> bool:
        stamp = folder / STAMP
        try:
            return stamp.is_file() and json.loads(stamp.read_text()) == self._key(key)
        except json.JSONDecodeError:
            return False

    def mark(self, folder: Path, key: Any) -> None:
        from toolkit.io import atomic_write_text

        atomic_write_text(folder / STAMP, json.dumps(self._key(key), sort_keys=True, indent=1) + "\n")

    def stamp_digest(self, folder: Path) -> str | None:
        from toolkit.io import sha256_prefix

        stamp = folder / STAMP
        return sha256_prefix(stamp) if stamp.is_file() else None

    def time(self, what: str, seconds: float, cpu: float | None = None, load: float | None = None) -> None:
        """Record a step: wall seconds, CPU seconds of its process (steady under other users' load) and the
        1-minute load average when it started."""
        from toolkit.io import atomic_write_text

        self.timings[what] = {"wall": round(seconds, 2), "cpu": None if cpu is None else round(cpu, 2),
                              "load": load}
        atomic_write_text(self.timings_path, json.dumps(self.timings, indent=1, sort_keys=True) + "\n")

    def timing(self, what: str, kind: str = "wall") -> float | None:
        entry = self.timings.get(what)
        if isinstance(entry, (int, float)):  # written by an earlier version: wall seconds only
            return entry if kind == "wall" else None
        return entry.get(kind) if isinstance(entry, dict) else None

    def run(self, what: str, cmd: list[str]) -> None:
        """Run a CLI; its output goes to <exp>/logs/<what>.log; a failure raises with the log's tail."""
        logs = self.exp / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / (what.replace("/", "__") + ".log")
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
        load = (load_average() or [None])[0]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        with open(log_path, "w", encoding="utf-8") as fh:
            fh.write("$ " + " ".join(cmd) + "\n")
            fh.flush()
            code = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env).returncode
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        if code != 0:
            tail = "\n".join(log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-12:])
            raise StepFailed(f"{what} failed (exit {code}); see {log_path}:\n{tail}")
        self.time(what, seconds, cpu, load)
        self.log(f"  {what}: {seconds:.1f} s (CPU {cpu:.1f} s, load {load})")

    # -- stage 0
    def used_recipes(self) -> list[str]:
        """The recipes some variant names, in the order of `recipes:`."""
        used = {v.recipe for v in self.plan.variants}
        return [name for name in self.plan.recipes if name in used]

    def corpus(self) -> Path:
        """The songs: the user's folder, or the corpus the config builds (the chorale set by default)."""
        corpus = self.plan.cfg.get("corpus") or {}
        if corpus.get("dir"):
            songs = resolve_path(str(corpus["dir"]), self.plan.conf_path.parent)
            if not songs.is_dir():
                raise PlanError(f"corpus.dir: {songs} is not a folder of songs")
            return songs
        songs = self.exp / "corpus"
        build = corpus.get("build") or ["toolkit.bin.make_chorales", "--num-pieces", "{num_pieces}"]
        values = {"num_pieces": corpus.get("num_pieces", 8)}
        key = {"build": build, **values, "max_seconds": corpus.get("max_seconds")}
        if not self.done(songs, key):
            self.log(f"building the corpus ({' '.join(map(str, build))}) in {songs}")
            try:
                cmd = [sys.executable, "-m", *(str(a).format(**values) for a in build), "--out", str(songs)]
            except (KeyError, IndexError) as err:
                raise PlanError(f"corpus.build {build}: unknown placeholder {err}; known: {{num_pieces}}") from None
            if key["max_seconds"] is not None:
                cmd += ["--max-seconds", str(key["max_seconds"])]
            self.run("data/corpus", cmd)
            self.mark(songs, key)
        return songs

    def data(self) -> None:
        corpus = self.plan.cfg.get("corpus") or {}
        songs = self.corpus()
        manifests = self.exp / "data"
        scripts = {name: self.plan.recipes[name]["manifests"] for name in self.used_recipes()
                   if self.plan.recipes[name].get("manifests")}
        key = {"songs": str(songs), "valid_fraction": corpus.get("valid_fraction", 0.1), "files": _listing(songs),
               "manifest_scripts": {n: [str(s.path), s.args] for n, s in scripts.items()}}
        if not self.done(manifests, key):
            if manifests.exists():
                shutil.rmtree(manifests)
            self.run("data/prepare", [sys.executable, "-m", "toolkit.bin.prepare", "--data", str(songs), "--out",
                                      str(manifests), "--valid-fraction", str(key["valid_fraction"]), "--quiet"])
            for name, script in scripts.items():  # fields a recipe reads (Stable Audio's prompts), added in place
                self.run(f"data/manifests_{name}", script.command(sys.executable, self.values(songs=songs)))
            self.mark(manifests, key)
        self.requests(songs)

    def manifests(self) -> list[Path]:
        data = self.exp / "data"
        return [p for p in (data / "valid.jsonl", data / "train.jsonl") if p.is_file()]

    def values(self, **extra: Any) -> dict[str, Any]:
        """What a recipe script's argument template may name."""
        req = self.plan.cfg.get("requests") or {}
        data = self.exp / "data"
        return {"seconds": req.get("seconds", 5.0), "count": req.get("count", 2), "seed": req.get("seed", 0),
                "data": str(data), "valid": str(data / "valid.jsonl"), "train": str(data / "train.jsonl"), **extra}

    def requests_file(self, recipe: str) -> Path:
        return self.exp / "requests" / recipe / "requests.jsonl"

    def requests(self, songs: Path) -> None:
        """The request set: the same songs, seconds and seeds for every recipe, in each recipe's own format (its
        script turns the prepared manifests into its requests)."""
        missing = [name for name in self.used_recipes() if not self.plan.recipes[name].get("requests")]
        if missing:
            raise PlanError(f"recipes {missing} have no request script: give recipes.<name>.requests (it turns the "
                            "prepared manifests into that recipe's request set)")
        for name in self.used_recipes():
            script = self.plan.recipes[name]["requests"]
            out = self.requests_file(name)
            values = self.values(out=str(out), songs=str(songs))
            key = {"script": str(script.path), "args": script.args, "count": values["count"],
                   "seconds": values["seconds"], "seed": values["seed"], "data": self.stamp_digest(self.exp / "data")}
            if self.done(out.parent, key):
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            self.run(f"data/requests_{name}", script.command(sys.executable, values))
            self.mark(out.parent, key)

    # -- stage 1
    def features_key(self, model: Model) -> tuple[str, dict]:
        """Features depend on the codec and the conditions' settings only (the extract stage's stamps, so the
        cache and the features folder agree on what changed): models that agree share them."""
        from ..config import load_config
        from ..data.extract import feature_stamps, stamp

        cfg = load_config(model.conf, model.overrides)
        parts = {"stamps": feature_stamps(cfg.codec, cfg.conditions), "max_frames": cfg.get("max_frames")}
        digest = stamp(parts)[:12]
        return digest, parts

    def train(self, model: Model) -> None:
        py = sys.executable
        digest, parts = self.features_key(model)
        features = self.exp / "features" / digest
        fkey = {"conf": str(model.conf), "frontend": parts, "data": self.stamp_digest(self.exp / "data")}
        if not self.done(features, fkey):
            if features.exists():
                shutil.rmtree(features)
            self.run(f"extract/{digest}", [py, "-m", "toolkit.bin.extract", "--config", str(model.conf),
                                            "--manifest-dir", str(self.exp / "data"), "--out", str(features),
                                            *model.overrides])
            self.mark(features, fkey)
        folder = self.exp / "models" / model.name
        key = {"conf": str(model.conf), "overrides": model.overrides, "features": self.stamp_digest(features)}
        if self.done(folder, key):
            self.log(f"  train/{model.name}: done before, skipped")
            return
        if folder.exists():  # trained with other settings: the trainer would resume from it
            shutil.rmtree(folder)
        self.run(f"train/{model.name}", [py, "-m", "toolkit.bin.train", "--config", str(model.conf), "--exp",
                                         str(folder), "--features", str(features), *model.overrides])
        self.mark(folder, key)

    # -- stage 2
    def checkpoint(self, model: str) -> Path:
        return self.exp / "models" / model / "checkpoints" / "last.pt"

    def generate(self, variant: Variant) -> None:
        ckpt = self.checkpoint(variant.model)
        if not (self.exp / "models" / variant.model / STAMP).is_file() or not ckpt.is_file():
            raise StepFailed(f"model {variant.model} is not trained (run stage 1)")
        recipe = self.plan.recipes[variant.recipe]
        folder = self.exp / "songs" / variant.name
        cmd = [sys.executable, "-m", recipe["generate"], "--ckpt", str(ckpt), "--requests",
               str(self.requests_file(variant.recipe)), "--out", str(folder), "--quiet"]
        if variant.drop_conditions:
            cmd.append("--drop-conditions")
        cmd += variant.overrides
        key = {"cmd": cmd[1:], "model": self.stamp_digest(self.exp / "models" / variant.model),
               "requests": self.stamp_digest(self.requests_file(variant.recipe).parent)}
        if self.done(folder, key):
            self.log(f"  generate/{variant.name}: done before, skipped")
            return
        if folder.exists():
            shutil.rmtree(folder)
        self.run(f"generate/{variant.name}", cmd)
        self.mark(folder, key)

    # -- stage 3
    def evaluate(self, variant: Variant, embedder: Any) -> None:
        from toolkit.eval.songs import evaluate_songs

        songs = self.exp / "songs" / variant.name
        if not (songs / STAMP).is_file():
            raise StepFailed(f"no songs of {variant.name} (run stage 2)")
        ev = self.plan.cfg.get("evaluation") or {}
        out = self.exp / "eval" / variant.name
        manifests = self.manifests()
        held_out = [p for p in manifests if p.name == "valid.jsonl"]
        key = {"songs": self.stamp_digest(songs), "embedding": ev.get("embedding", DEFAULT_EMBEDDING),
               "tolerance": ev.get("tolerance", 0.5), "manifests": [str(p) for p in manifests],
               "held_out": [str(p) for p in held_out]}
        if self.done(out, key):
            self.log(f"  evaluate/{variant.name}: done before, skipped")
            return
        started, cpu, load = time.perf_counter(), time.process_time(), (load_average() or [None])[0]
        evaluate_songs(songs, manifests, out, embedding=key["embedding"], tolerance=key["tolerance"],
                       embedder=embedder, log=lambda _msg: None, held_out=held_out)
        self.time(f"evaluate/{variant.name}", time.perf_counter() - started, time.process_time() - cpu, load)
        self.log(f"  evaluate/{variant.name}: {time.perf_counter() - started:.1f} s")
        self.mark(out, key)


class StepFailed(RuntimeError):
    """A step of one model or variant failed; the others go on and the report names it."""


def _listing(folder: Path) -> list[tuple[str, int]]:
    return sorted((p.name, p.stat().st_size) for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


class CachedEmbedder:
    """Wraps an evaluation embedder so the reference songs are embedded once for all variants."""

    def __init__(self, inner: Any):
        self.inner, self.name = inner, inner.name
        self._audio: dict[tuple[str, int, float | None], Any] = {}
        self._style: dict[str, Any] = {}

    def embed_audio(self, path, seconds: float | None = None):
        # the window is part of the key: references are described on the songs' length, which varies by task
        p = Path(path).resolve()
        key = (str(p), p.stat().st_mtime_ns, None if seconds is None else float(seconds))
        if key not in self._audio:
            self._audio[key] = self.inner.embed_audio(path, seconds)
        return self._audio[key]

    def embed_style(self, style):
        key = json.dumps(style, sort_keys=True, default=str)
        if key not in self._style:
            self._style[key] = self.inner.embed_style(style)
        return self._style[key]

    def __getattr__(self, name):
        return getattr(self.inner, name)


