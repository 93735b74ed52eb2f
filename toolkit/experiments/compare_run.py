"""Running a comparison: the stages in order, one line per invocation in runs.jsonl, the report at the end."""

from __future__ import annotations

import json
import resource
import time
from collections.abc import Callable, Sequence

from ..eval.embeddings import DEFAULT_EMBEDDING
from ..eval.machine import load_average
from .compare_plan import make_plan
from .compare_report import collect
from .compare_runner import CachedEmbedder, Runner, StepFailed

STAGES = ("data", "train", "generate", "evaluate", "report")


def run_comparison(conf: str, exp: str, overrides: Sequence[str], data: str | None = None, stage: int = 0,
                   stop_stage: int = len(STAGES) - 1, log: Callable[[str], None] = print) -> int:
    from ..config import save_config

    plan = make_plan(conf, exp, list(overrides), data)
    plan.exp.mkdir(parents=True, exist_ok=True)
    save_config(plan.cfg, plan.exp / "compare_config.yaml")
    runner = Runner(plan, log=log)
    def enabled(i: int) -> bool:
        return stage <= i <= stop_stage

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
        embedder, space = None, ev.get("embedding", DEFAULT_EMBEDDING)
        if space != "none":
            from ..eval.embeddings import build_embedder

            embedder = CachedEmbedder(build_embedder(space))
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
        from ..eval.compare import write_comparison

        doc = collect(plan, runner)
        report = plan.cfg.get("report") or {}
        paths = write_comparison(doc, plan.exp / "report", **({"plot_metrics": report["plot_metrics"]}
                                                              if report.get("plot_metrics") else {}))
        log("report: " + ", ".join(str(p) for p in paths))
    log(f"done in {time.time() - started:.0f} s")
    return 1 if runner.failed else 0


