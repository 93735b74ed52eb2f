"""Run several recipes or config variants on one request set with one seed set; write one report.

  python -m toolkit.bin.compare --conf egs/compare/conf/default.yaml --exp egs/compare/exp/default
         [--stage 0] [--stop-stage 4] [--data SONGS_DIR] [key=value ...]

Stages: 0 data (corpus, manifests, the request set), 1 train (extract + train each model once),
2 generate (each variant), 3 evaluate (each variant, one evaluator for all), 4 report.
A step whose inputs have not changed since it last finished is skipped, so an interrupted or extended
run picks up where it stopped. `key=value` arguments whose first part names a section of the compare
config (requests.count=1, corpus.num_pieces=4, ...) change that config; any other (backbone.depth=2,
train.max_steps=20) is passed to every model and variant. See docs/compare.md.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.bin.common import UsageError, friendly_errors
from toolkit.eval.machine import load_average

PROG = "toolkit-compare"
STAGES = ("data", "train", "generate", "evaluate", "report")
STAMP = ".compare_stamp"  # not *.json: song folders hold X.json manifests
VARIANT_KEYS = {"name", "recipe", "conf", "overrides", "train", "model", "drop_conditions", "description"}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
EGS = Path(__file__).resolve().parents[2] / "egs"


# ------------------------------------------------------------------------------------------------ the plan

@dataclass
class Model:
    """A trained model: recipe config + overrides; several variants may generate from it."""

    name: str
    recipe: str
    conf: Path
    overrides: list[str]
    shared: bool  # a recipe's base model (train: false variants) rather than one variant's own


@dataclass
class Variant:
    name: str
    recipe: str
    model: str
    overrides: list[str]
    train: bool
    drop_conditions: bool = False
    description: str | None = None
    own: list[str] = field(default_factory=list)  # the variant's own overrides (without the common ones)


@dataclass
class Plan:
    cfg: Any
    conf_path: Path
    exp: Path
    recipes: dict[str, dict[str, Any]]
    models: dict[str, Model] = field(default_factory=dict)
    variants: list[Variant] = field(default_factory=list)
    forwarded: list[str] = field(default_factory=list)


def resolve_path(value: str, conf_dir: Path) -> Path:
    """A path from the compare config: absolute, else beside the config file, else under egs/."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    for base in (conf_dir, EGS):
        if (base / path).exists():
            return (base / path).resolve()
    return (conf_dir / path).resolve()


def split_overrides(cfg, overrides: list[str]) -> tuple[list[str], list[str]]:
    """(overrides of the compare config, overrides forwarded to every model and variant)."""
    from toolkit.config import parse_override

    own, forwarded = [], []
    for text in overrides:
        key, _ = parse_override(text)
        (own if key.split(".")[0] in cfg else forwarded).append(text)
    return own, forwarded


def _string_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{where}: give a list of key=value strings, e.g. [sampler.steps=8]")
    bad = [v for v in value if "=" not in v]
    if bad:
        raise UsageError(f"{where}: {bad[0]!r} is not a key=value override")
    return list(value)


def make_plan(conf: str | Path, exp: str | Path, overrides: list[str], data: str | None = None) -> Plan:
    """Read the compare config and decide which models to train and which variants use them."""
    from omegaconf import OmegaConf

    from toolkit.config import apply_overrides, load_config

    conf_path = Path(conf).resolve()
    cfg = load_config(conf_path)
    own, forwarded = split_overrides(cfg, overrides)
    cfg = apply_overrides(cfg, own)
    if data:
        cfg = apply_overrides(cfg, [f"corpus.dir={Path(data).resolve()}"])
    cfg = OmegaConf.to_container(cfg, resolve=True)
    conf_dir = conf_path.parent
    recipes = copy.deepcopy(cfg.get("recipes") or {})
    if not recipes:
        raise UsageError(f"{conf_path}: no recipes: section (how to run each recipe: its conf and generate CLI)")
    for name, node in recipes.items():
        if not isinstance(node, dict) or "conf" not in node:
            raise UsageError(f"{conf_path}: recipes.{name} needs a conf: (the recipe's config file)")
        node["conf"] = resolve_path(node["conf"], conf_dir)
        if not node["conf"].is_file():
            raise UsageError(f"recipes.{name}.conf: {node['conf']} does not exist")
        node.setdefault("generate", "toolkit.bin.generate")
        if node.get("requests"):
            node["requests"] = resolve_path(node["requests"], conf_dir)
    variants_cfg = cfg.get("variants") or []
    if not variants_cfg:
        raise UsageError(f"{conf_path}: no variants: to compare (a list of {{name, overrides, train}})")
    common = _string_list(cfg.get("common"), "common") + forwarded
    plan = Plan(cfg=cfg, conf_path=conf_path, exp=Path(exp).resolve(), recipes=recipes, forwarded=forwarded)
    seen: set[str] = set()
    wanted_models: list[tuple[str, str]] = []
    for index, node in enumerate(variants_cfg):
        where = f"variants[{index}]"
        if not isinstance(node, dict) or not node.get("name"):
            raise UsageError(f"{where}: each variant is a mapping with at least a name:")
        name = str(node["name"])
        unknown = set(node) - VARIANT_KEYS
        if unknown:
            raise UsageError(f"{where} ({name}): unknown key(s) {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(sorted(VARIANT_KEYS))}")
        if not NAME_RE.match(name):
            raise UsageError(f"{where}: name {name!r} must be letters, digits, '_', '-' or '.' (it names folders)")
        if name in seen:
            raise UsageError(f"{where}: two variants are named {name!r}")
        seen.add(name)
        recipe = node.get("recipe") or (next(iter(recipes)) if len(recipes) == 1 else None)
        if recipe not in recipes:
            raise UsageError(f"{where} ({name}): recipe {recipe!r} is not under recipes: "
                             f"({', '.join(recipes)})")
        conf_file = resolve_path(node["conf"], conf_dir) if node.get("conf") else recipes[recipe]["conf"]
        if not conf_file.is_file():
            raise UsageError(f"{where} ({name}): conf {conf_file} does not exist")
        own_overrides = _string_list(node.get("overrides"), f"{where} ({name}).overrides")
        train = bool(node.get("train", False))
        if train:
            if node.get("model"):
                raise UsageError(f"{where} ({name}): train: true trains the variant's own model; drop model:")
            model = name
            plan.models[model] = Model(model, recipe, conf_file, common + own_overrides, shared=False)
        elif node.get("model"):
            model = str(node["model"])
            wanted_models.append((name, model))
        else:
            model = f"base_{recipe}" if conf_file == recipes[recipe]["conf"] else f"base_{recipe}_{conf_file.stem}"
            plan.models.setdefault(model, Model(model, recipe, conf_file, list(common), shared=True))
        plan.variants.append(Variant(name, recipe, model, common + own_overrides, train,
                                     bool(node.get("drop_conditions", False)), node.get("description"),
                                     own_overrides))
    for name, model in wanted_models:
        if model not in plan.models:
            raise UsageError(f"variant {name}: model {model!r} is neither a train: true variant nor a base model "
                             f"({', '.join(plan.models)})")
    return plan


# ------------------------------------------------------------------------------------------------ steps

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
        stamp = folder / STAMP
        return hashlib.sha256(stamp.read_bytes()).hexdigest()[:16] if stamp.is_file() else None

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
    def data(self) -> None:
        corpus = self.plan.cfg.get("corpus") or {}
        py = sys.executable
        if corpus.get("dir"):
            songs = resolve_path(str(corpus["dir"]), self.plan.conf_path.parent)
            if not songs.is_dir():
                raise UsageError(f"corpus.dir: {songs} is not a folder of songs")
        else:
            songs = self.exp / "corpus"
            key = {"num_pieces": corpus.get("num_pieces", 8), "max_seconds": corpus.get("max_seconds")}
            if not self.done(songs, key):
                self.log(f"building the chorale set ({key['num_pieces']} pieces) in {songs}")
                cmd = [py, "-m", "toolkit.bin.make_chorales", "--out", str(songs), "--num-pieces",
                       str(key["num_pieces"])]
                if key["max_seconds"] is not None:
                    cmd += ["--max-seconds", str(key["max_seconds"])]
                self.run("data/corpus", cmd)
                self.mark(songs, key)
        manifests = self.exp / "data"
        key = {"songs": str(songs), "valid_fraction": corpus.get("valid_fraction", 0.1), "files": _listing(songs)}
        if not self.done(manifests, key):
            if manifests.exists():
                shutil.rmtree(manifests)
            self.run("data/prepare", [py, "-m", "toolkit.bin.prepare", "--data", str(songs), "--out", str(manifests),
                                      "--valid-fraction", str(key["valid_fraction"]), "--quiet"])
            self.mark(manifests, key)
        self.requests()

    def manifests(self) -> list[Path]:
        data = self.exp / "data"
        return [p for p in (data / "valid.jsonl", data / "train.jsonl") if p.is_file()]

    def requests(self) -> None:
        """The one request set: every variant generates these songs with these seeds."""
        req = self.plan.cfg.get("requests") or {}
        scripts = {str(r["requests"]) for r in self.plan.recipes.values() if r.get("requests")}
        if len(scripts) != 1:
            raise UsageError("exactly one request script is needed for the shared request set: give recipes.<name>."
                             f"requests (found {len(scripts)})")
        out = self.exp / "requests"
        key = {"script": scripts.pop(), "count": req.get("count", 2), "seconds": req.get("seconds", 5.0),
               "seed": req.get("seed", 0), "data": self.stamp_digest(self.exp / "data")}
        if self.done(out, key):
            return
        out.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, key["script"], "--out", str(out / "requests.jsonl"), "--seconds", str(key["seconds"]),
               "--limit", str(key["count"]), "--seed", str(key["seed"])]
        for manifest in self.manifests():
            cmd += ["--manifest", str(manifest)]
        self.run("data/requests", cmd)
        self.mark(out, key)

    # -- stage 1
    def features_key(self, model: Model) -> tuple[str, dict]:
        """Features depend on the codec, lyrics and style settings only: models that agree share them."""
        from toolkit.config import load_config, to_plain

        cfg = to_plain(load_config(model.conf, model.overrides))
        parts = {k: cfg.get(k) for k in ("recipe", "codec", "lyrics", "style", "max_frames", "extract")}
        digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]
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
               str(self.exp / "requests" / "requests.jsonl"), "--out", str(folder), "--quiet"]
        if variant.drop_conditions:
            cmd.append("--drop-conditions")
        cmd += variant.overrides
        key = {"cmd": cmd[1:], "model": self.stamp_digest(self.exp / "models" / variant.model),
               "requests": self.stamp_digest(self.exp / "requests")}
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
        key = {"songs": self.stamp_digest(songs), "embedding": ev.get("embedding", "features"),
               "tolerance": ev.get("tolerance", 0.5), "manifests": [str(p) for p in self.manifests()]}
        if self.done(out, key):
            self.log(f"  evaluate/{variant.name}: done before, skipped")
            return
        started, cpu, load = time.perf_counter(), time.process_time(), (load_average() or [None])[0]
        evaluate_songs(songs, self.manifests(), out, embedding=key["embedding"], tolerance=key["tolerance"],
                       embedder=embedder, log=lambda _msg: None)
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
        self._audio: dict[tuple[str, int], Any] = {}
        self._style: dict[str, Any] = {}

    def embed_audio(self, path):
        p = Path(path).resolve()
        key = (str(p), p.stat().st_mtime_ns)
        if key not in self._audio:
            self._audio[key] = self.inner.embed_audio(path)
        return self._audio[key]

    def embed_style(self, style):
        key = json.dumps(style, sort_keys=True, default=str)
        if key not in self._style:
            self._style[key] = self.inner.embed_style(style)
        return self._style[key]

    def __getattr__(self, name):
        return getattr(self.inner, name)


# ------------------------------------------------------------------------------------------------ the report

def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def song_manifests(folder: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        doc = _read_json(path)
        if isinstance(doc, dict) and "config" in doc:
            out.append(doc)
    return out


def pick_group(groups: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A variant's songs form one group (full, or dropped with drop_conditions); 'full' wins if several."""
    if not groups:
        return {}
    return groups.get("full") or next(iter(groups.values()))


def machine_record() -> dict[str, Any]:
    """CPU model, cores, threads, memory: what a reader needs to judge the RTF and memory columns."""
    from toolkit.eval.machine import machine_info

    return machine_info()


def versions_record() -> dict[str, Any]:
    from toolkit.eval.report import machine_summary

    summary = machine_summary()
    keep = {"toolkit": summary.get("toolkit"), "git_commit": summary.get("git_commit"),
            "python": summary.get("python")}
    keep.update({k[: -len("_version")]: v for k, v in summary.items() if k.endswith("_version")})
    return keep


def collect(plan: Plan, runner: Runner) -> dict[str, Any]:
    """The comparison document: one row per variant, the models, the context (machine, versions, configs)."""
    from toolkit.config import load_config, to_plain, to_yaml
    from toolkit.io import atomic_write_text

    exp = plan.exp
    common = list(plan.cfg.get("common") or []) + plan.forwarded
    configs_dir = exp / "report" / "configs"
    configs_dir.mkdir(parents=True, exist_ok=True)
    rows, configs, notes, busy = [], {}, [], []
    reference_count, embedding, seeds = None, None, None
    for v in plan.variants:
        row: dict[str, Any] = {"name": v.name, "recipe": v.recipe, "model": v.model,
                               "train": "own" if v.train else f"shared ({v.model})",
                               "overrides": " ".join(v.own) or "(none)", "description": v.description}
        manifests = song_manifests(exp / "songs" / v.name)
        if manifests:
            config = manifests[0]["config"]
            row["steps"] = manifests[0].get("steps")
            row["guidance"] = manifests[0].get("guidance")
        else:  # not generated (yet): record what it would run
            config = to_plain(load_config(plan.models[v.model].conf, v.overrides))
        sampler = config.get("sampler") if isinstance(config.get("sampler"), dict) else {}
        row["solver"] = sampler.get("method", "euler")
        if row.get("steps") is None:
            row["steps"] = sampler.get("steps")
        if isinstance(row.get("steps"), (int, float)):
            row["nfe"] = int(row["steps"]) * (2 if row["solver"] == "midpoint" else 1)
        # the curve of the steps plot: same model, solver and other inference settings
        other = [] if v.train else [o for o in v.own if o.split("=")[0] not in ("sampler.steps", "sampler.method")]
        row["series"] = " ".join([f"{row['solver']} / {v.model}"] + other)
        configs[v.name] = config
        path = atomic_write_text(configs_dir / f"{v.name}.yaml", to_yaml(config))
        row["config"] = f"configs/{path.name}"
        evaluation = _read_json(exp / "eval" / v.name / "evaluation.json")
        if evaluation:
            row.update({k: val for k, val in pick_group(evaluation.get("groups", {})).items()})
            reference_count = evaluation.get("reference_count")
            embedding = evaluation.get("embedding")
            notes += [f"{v.name}: {n}" for n in evaluation.get("notes", [])]
        row["train_seconds"] = runner.timing(f"train/{v.model}")
        row["generate_seconds"] = runner.timing(f"generate/{v.name}")
        row["generate_cpu_seconds"] = runner.timing(f"generate/{v.name}", "cpu")
        row["generate_load"] = runner.timing(f"generate/{v.name}", "load")
        # the 1-minute load average counts this run's own threads too: flag only clearly more than the cores
        cores = os.cpu_count() or 1
        if isinstance(row["generate_load"], (int, float)) and row["generate_load"] > cores + 1:
            busy.append(row["generate_load"])
        failure = runner.failed.get(v.name) or runner.failed.get(f"model:{v.model}")
        row["status"] = "failed" if failure else ("ok" if evaluation else "not evaluated")
        if failure:
            notes.append(f"{v.name} failed: {failure.splitlines()[0]}")
        rows.append(row)
    if busy:
        notes.append(f"{len(busy)} of {len(rows)} variants generated while the load average ({max(busy):.1f} at "
                     f"most) exceeded the {os.cpu_count()} cores + 1: their RTF and generate s include waiting for "
                     "other jobs; compare `generate CPU s` (CPU time of the generate process, start-up included) "
                     "or rerun stage 2 on a quiet machine")
    models = []
    for m in plan.models.values():
        used_by = [v.name for v in plan.variants if v.model == m.name]
        if not used_by:
            continue
        folder = exp / "models" / m.name
        summary = _read_json(folder / "train_summary.json") or {}
        ckpt = runner.checkpoint(m.name)
        own = m.overrides[len(common):] if m.overrides[:len(common)] == common else m.overrides
        models.append({"name": m.name, "recipe": m.recipe, "conf": str(m.conf),
                       "overrides": " ".join(["(common)"] + own) if common else " ".join(own),
                       "train_seconds": runner.timing(f"train/{m.name}"),
                       "train_cpu_seconds": runner.timing(f"train/{m.name}", "cpu"), "final_step": summary.get("final_step"),
                       "final_valid_loss": summary.get("final_valid_loss"),
                       "checkpoint_mb": round(ckpt.stat().st_size / 2 ** 20, 1) if ckpt.is_file() else None,
                       "used_by": ", ".join(used_by)})
    req = plan.cfg.get("requests") or {}
    requests_path = exp / "requests" / "requests.jsonl"
    if requests_path.is_file():
        lines = [json.loads(line) for line in requests_path.read_text(encoding="utf-8").splitlines() if line.strip()]
        seeds = [r.get("seed") for r in lines]
    runs_path = exp / "runs.jsonl"
    runs = ([json.loads(line) for line in runs_path.read_text(encoding="utf-8").splitlines() if line.strip()]
            if runs_path.is_file() else [])
    return {"kind": "compare", "title": str(exp), "written": time.strftime("%Y-%m-%d %H:%M:%S"),
            "conf": str(plan.conf_path), "exp": str(exp),
            "requests": {"path": str(exp / "requests" / "requests.jsonl"), "count": req.get("count"),
                         "seconds": req.get("seconds"), "seeds": seeds},
            "reference_count": reference_count, "embedding": embedding, "variants": rows, "models": models,
            "machine": machine_record(), "versions": versions_record(), "runs": runs,
            "timings": dict(sorted(runner.timings.items())), "configs": configs,
            "common_overrides": common, "compare_config": plan.cfg, "forwarded_overrides": plan.forwarded,
            "notes": notes}


# ------------------------------------------------------------------------------------------------ main

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--conf", default=str(EGS / "compare" / "conf" / "default.yaml"), help="the compare config (YAML)")
    p.add_argument("--exp", default=str(EGS / "compare" / "exp" / "default"), help="output folder")
    p.add_argument("--stage", type=int, default=0, help=f"first stage ({', '.join(f'{i} {s}' for i, s in enumerate(STAGES))})")
    p.add_argument("--stop-stage", type=int, default=len(STAGES) - 1, help="last stage")
    p.add_argument("--data", default=None, help="a folder of your songs (sets corpus.dir)")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="compare-config overrides (requests.count=1) or model/variant overrides (backbone.depth=2)")
    return p


def run(args: argparse.Namespace, log=print) -> int:
    from toolkit.config import save_config

    bad = [o for o in args.overrides if "=" not in o]
    if bad:
        raise UsageError(f"unexpected argument(s) {' '.join(bad)}: overrides look like key=value")
    plan = make_plan(args.conf, args.exp, args.overrides, args.data)
    plan.exp.mkdir(parents=True, exist_ok=True)
    save_config(plan.cfg, plan.exp / "compare_config.yaml")
    runner = Runner(plan, log=log)
    enabled = lambda i: args.stage <= i <= args.stop_stage  # noqa: E731
    started, load_before = time.time(), load_average()
    log(f"{len(plan.variants)} variants, {len(plan.models)} models to train; output in {plan.exp}")
    if enabled(0):
        log("stage 0: data and the request set")
        runner.data()
    if enabled(1):
        log("stage 1: extract and train")
        for model in plan.models.values():
            if not any(v.model == model.name for v in plan.variants):
                continue
            try:
                runner.train(model)
            except StepFailed as err:
                runner.failed[f"model:{model.name}"] = str(err)
                log(f"  {err}")
    if enabled(2):
        log("stage 2: generate")
        for variant in plan.variants:
            try:
                runner.generate(variant)
            except StepFailed as err:
                runner.failed[variant.name] = str(err)
                log(f"  {err}")
    if enabled(3):
        log("stage 3: evaluate")
        ev = plan.cfg.get("evaluation") or {}
        embedder = None
        if ev.get("embedding", "features") != "none":
            from toolkit.eval.embeddings import build_embedder

            embedder = CachedEmbedder(build_embedder(ev.get("embedding", "features")))
        for variant in plan.variants:
            if variant.name in runner.failed:
                continue
            try:
                runner.evaluate(variant, embedder)
            except StepFailed as err:
                runner.failed[variant.name] = str(err)
                log(f"  {err}")
    # One line per invocation (the report lists them all, so rewriting the report keeps the timed full run).
    children, me = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    run_info = {"started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
                "stages": ",".join(s for i, s in enumerate(STAGES) if enabled(i) and s != "report"),
                "wall_seconds": round(time.time() - started, 1),
                "cpu_seconds": round(children.ru_utime + children.ru_stime + me.ru_utime + me.ru_stime, 1),
                "load_before": load_before, "load_after": load_average(), "failed": sorted(runner.failed)}
    if run_info["stages"]:
        with open(plan.exp / "runs.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(run_info) + "\n")
    if enabled(4):
        log("stage 4: report")
        from toolkit.eval.compare import write_comparison

        doc = collect(plan, runner)
        report = plan.cfg.get("report") or {}
        paths = write_comparison(doc, plan.exp / "report", **({"plot_metrics": report["plot_metrics"]}
                                                              if report.get("plot_metrics") else {}))
        log("report: " + ", ".join(str(p) for p in paths))
    log(f"done in {time.time() - started:.0f} s")
    return 1 if runner.failed else 0


@friendly_errors(PROG)
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
