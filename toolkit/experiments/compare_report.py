"""The comparison document: one row per variant, the models, and the context (machine, versions, configs)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from .compare_plan import Plan
from .compare_runner import Runner


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
    common = list(plan.cfg.get("common") or [])
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
        backbone = config.get("backbone")
        row["backbone"] = backbone.get("type") if isinstance(backbone, dict) else backbone
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
        own = list(m.own) + [o for o in plan.forwarded if o not in m.own]
        models.append({"name": m.name, "recipe": m.recipe, "conf": str(m.conf),
                       "overrides": " ".join(["(common)"] + own) if common else " ".join(own),
                       "train_seconds": runner.timing(f"train/{m.name}"),
                       "train_cpu_seconds": runner.timing(f"train/{m.name}", "cpu"),
                       "final_step": summary.get("final_step"),
                       "final_valid_loss": summary.get("final_valid_loss"),
                       "checkpoint_mb": round(ckpt.stat().st_size / 2 ** 20, 1) if ckpt.is_file() else None,
                       "used_by": ", ".join(used_by)})
    req = plan.cfg.get("requests") or {}
    by_recipe = {}
    for recipe in runner.used_recipes():
        path = runner.requests_file(recipe)
        if path.is_file():
            lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            by_recipe[recipe] = {"path": str(path), "seeds": [r.get("seed") for r in lines],
                                 "names": [r.get("id") or r.get("title") for r in lines]}
            seeds = by_recipe[recipe]["seeds"] if seeds is None else seeds
    if len({json.dumps([r["seeds"], r["names"]]) for r in by_recipe.values()}) > 1:
        notes.append("the recipes' request scripts gave different songs or seeds: "
                     + "; ".join(f"{k}: {v['names']} seeds {v['seeds']}" for k, v in by_recipe.items()))
    notes += [str(n) for n in (plan.cfg.get("report") or {}).get("notes") or []]
    runs_path = exp / "runs.jsonl"
    runs = ([json.loads(line) for line in runs_path.read_text(encoding="utf-8").splitlines() if line.strip()]
            if runs_path.is_file() else [])
    return {"kind": "compare", "title": str(exp), "written": time.strftime("%Y-%m-%d %H:%M:%S"),
            "conf": str(plan.conf_path), "exp": str(exp),
            "requests": {"path": str(exp / "requests"), "count": req.get("count"), "seconds": req.get("seconds"),
                         "seeds": seeds, "by_recipe": by_recipe},
            "reference_count": reference_count, "embedding": embedding, "variants": rows, "models": models,
            "machine": machine_record(), "versions": versions_record(), "runs": runs,
            "timings": dict(sorted(runner.timings.items())), "configs": configs,
            "common_overrides": common, "compare_config": plan.cfg, "forwarded_overrides": plan.forwarded,
            "notes": notes}


