"""The comparison harness end to end on a tiny configuration (a synthetic 4-song corpus, a 1-layer DiT trained
for 3 steps, one 1.5 s song per variant), plus its table/plot helpers and its config errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from toolkit.bin import compare as compare_cli
from toolkit.eval.compare import best_variants, metric_vs_x_png, variant_table
from toolkit.experiments.compare_plan import make_plan

pytestmark = [pytest.mark.e2e]  # runs the harness stages in subprocesses

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "egs" / "diffrhythm"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

TINY_COMMON = [
    "codec.sample_rate=16000", "codec.n_fft=512", "codec.hop_length=256", "codec.n_mels=32",
    "codec.griffin_lim_iters=2", "max_frames=128", "backbone.dim=32", "backbone.depth=1", "backbone.num_heads=2",
    "train.batch_size=2", "train.max_steps=3", "train.warmup_steps=1", "train.save_every=3", "train.valid_every=3",
    "train.keep_last=1", "train.ema.update_after_step=1", "train.progress=false", "train.tensorboard=false",
]
VARIANTS = [
    {"name": "euler_2", "overrides": ["sampler.steps=2", "sampler.method=euler"]},
    {"name": "midpoint_2", "overrides": ["sampler.steps=2", "sampler.method=midpoint"]},
    {"name": "mel24_2", "train": True, "overrides": ["sampler.steps=2", "codec.n_mels=24"]},
]


def write_corpus(folder: Path, n: int = 4, seconds: float = 3.0, sr: int = 16000) -> None:
    import soundfile as sf

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    for i in range(n):
        f0 = 196.0 * 2 ** (i / 12)
        tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in (1, 2, 3)) * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t))
        wav = 0.2 * tone + 0.01 * rng.standard_normal(t.size)
        sf.write(folder / f"song{i}.wav", np.stack([wav, wav[::-1]], 1).astype(np.float32), sr)
        (folder / f"song{i}.lrc").write_text("[00:00.00]Halleluja singet\n[00:01.20]Gott dem Herrn\n",
                                             encoding="utf-8")


def write_conf(path: Path, corpus: Path, variants=VARIANTS) -> Path:
    conf = {
        "recipes": {"diffrhythm": {"conf": str(RECIPE / "conf" / "default.yaml"), "generate": "toolkit.bin.generate",
                                   "requests": str(RECIPE / "local" / "make_requests.py")}},
        "corpus": {"dir": str(corpus), "valid_fraction": 0.25},
        "requests": {"count": 1, "seconds": 1.5, "seed": 7},
        "common": TINY_COMMON,
        "evaluation": {"embedding": "descriptors", "tolerance": 0.5},
        "report": {"plot_metrics": ["frechet", "style_adherence", "rtf"]},
        "variants": variants,
    }
    path.write_text(yaml.safe_dump(conf, sort_keys=False), encoding="utf-8")
    return path


def run_compare(conf: Path, exp: Path, *extra: str) -> subprocess.CompletedProcess:
    """egs/compare/run.sh, as a user runs it (it calls python -m toolkit.bin.compare)."""
    return subprocess.run(["bash", str(ROOT / "egs" / "compare" / "run.sh"), "--conf", str(conf), "--exp", str(exp),
                           *extra], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    write_corpus(root / "songs")
    conf = write_conf(root / "compare.yaml", root / "songs")
    exp = root / "exp"
    result = run_compare(conf, exp)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return root, conf, exp, result


def _png_ok(path: Path) -> None:
    from PIL import Image

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        image.load()
        assert image.format == "PNG" and image.size[0] > 100 and image.size[1] > 100


def test_report_has_a_row_per_variant_and_valid_plots(compared):
    _, _, exp, _ = compared
    report = exp / "report"
    markdown = (report / "report.md").read_text(encoding="utf-8")
    results = markdown.split("## Results")[1].split("##")[0]
    for v in VARIANTS:
        assert f"| {v['name']} |" in results, f"no results row for {v['name']}"
    rows = [line for line in results.splitlines() if line.startswith("| ") and not line.startswith("| variant")]
    assert len(rows) == len(VARIANTS)
    for name in ("metric_vs_steps.png", "metric_vs_rtf.png"):
        _png_ok(report / name)
        assert f"]({name})" in markdown


def test_report_json_records_figures_machine_versions_and_configs(compared):
    _, _, exp, _ = compared
    doc = json.loads((exp / "report" / "report.json").read_text(encoding="utf-8"))
    rows = {r["name"]: r for r in doc["variants"]}
    assert list(rows) == [v["name"] for v in VARIANTS]
    for row in rows.values():
        assert row["status"] == "ok", row
        assert row["count"] == 1
        assert row["rtf"] > 0 and row["peak_rss_mb"] > 0 and row["lufs"] is not None
        assert row["frechet"] is not None and row["style_adherence"] is not None
        assert row["generate_seconds"] > 0 and row["generate_cpu_seconds"] > 0
    assert (rows["euler_2"]["steps"], rows["euler_2"]["solver"], rows["euler_2"]["nfe"]) == (2, "euler", 2)
    assert (rows["midpoint_2"]["solver"], rows["midpoint_2"]["nfe"]) == ("midpoint", 4)
    # inference-only variants share one trained model; the codec variant trained its own
    assert {rows[n]["model"] for n in ("euler_2", "midpoint_2")} == {"base_diffrhythm"}
    assert rows["mel24_2"]["model"] == "mel24_2"
    assert {m["name"] for m in doc["models"]} == {"base_diffrhythm", "mel24_2"}
    assert all(m["final_step"] == 3 for m in doc["models"])
    # resolved configs: in the JSON and as files, with each variant's settings
    assert doc["configs"]["euler_2"]["sampler"]["steps"] == 2
    assert doc["configs"]["midpoint_2"]["sampler"]["method"] == "midpoint"
    assert doc["configs"]["mel24_2"]["codec"]["n_mels"] == 24 and doc["configs"]["euler_2"]["codec"]["n_mels"] == 32
    saved = yaml.safe_load((exp / "report" / "configs" / "mel24_2.yaml").read_text())
    assert saved["codec"]["n_mels"] == 24 and saved["backbone"]["dim"] == 32
    machine, versions = doc["machine"], doc["versions"]
    assert machine["cpu"] and machine["cpu_count"] >= 1 and machine["torch_threads"] >= 1
    assert versions["torch"] and versions["python"] and versions["toolkit"]
    assert doc["requests"]["count"] == 1 and doc["requests"]["seeds"] == [7]
    assert set(doc["figures"]) == {"metric_vs_steps", "metric_vs_rtf"}
    assert "frechet" in doc["best"] and doc["best"]["frechet"]["higher_is_better"] is False
    # each variant's evaluation: the judge space, and the valid pieces as its held-out songs (requested first)
    evaluation = json.loads((exp / "eval" / "euler_2" / "evaluation.json").read_text(encoding="utf-8"))
    assert evaluation["embedding"] == "descriptors" == doc["embedding"]
    assert evaluation["held_out_manifest"].endswith("valid.jsonl")
    assert len(evaluation["held_out_songs"]) == 1 and evaluation["training_songs"] == []
    assert evaluation["groups"]["full"]["held_out"]["count"] == 1


def test_every_variant_ran_the_same_requests_and_seeds(compared):
    _, _, exp, _ = compared
    seen = {}
    for v in VARIANTS:
        manifests = sorted(p for p in (exp / "songs" / v["name"]).glob("*.json") if not p.name.startswith("."))
        assert len(manifests) == 1
        m = json.loads(manifests[0].read_text())
        seen[v["name"]] = (manifests[0].name, m["seed"], m["request"]["lrc"], m["request"]["style_audio"])
    assert len(set(seen.values())) == 1, seen


def test_rerun_skips_finished_steps_and_redoes_a_changed_variant(compared):
    root, conf, exp, _ = compared
    before = json.loads((exp / "timings.json").read_text())
    changed = [dict(v) for v in VARIANTS]
    changed[1] = {"name": "midpoint_2", "overrides": ["sampler.steps=3", "sampler.method=midpoint"]}
    conf2 = write_conf(root / "compare2.yaml", root / "songs", changed)
    result = run_compare(conf2, exp, "--stage", "1")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    for name in ("train/base_diffrhythm", "train/mel24_2", "generate/euler_2", "generate/mel24_2",
                 "evaluate/euler_2", "evaluate/mel24_2"):
        assert f"{name}: done before, skipped" in out, out
    assert "generate/midpoint_2: done before" not in out and "evaluate/midpoint_2: done before" not in out
    doc = json.loads((exp / "report" / "report.json").read_text())
    row = {r["name"]: r for r in doc["variants"]}["midpoint_2"]
    assert (row["steps"], row["nfe"]) == (3, 6)
    assert len(doc["runs"]) == 2 and doc["runs"][1]["stages"] == "train,generate,evaluate"
    after = json.loads((exp / "timings.json").read_text())
    assert after["train/base_diffrhythm"] == before["train/base_diffrhythm"]  # not retrained


def test_config_errors_are_one_line_usage_errors(tmp_path, capsys):
    corpus = tmp_path / "songs"
    corpus.mkdir()
    conf = write_conf(tmp_path / "dup.yaml", corpus, [VARIANTS[0], VARIANTS[0]])
    assert compare_cli.main(["--conf", str(conf), "--exp", str(tmp_path / "exp")]) == 2
    assert "two variants are named 'euler_2'" in capsys.readouterr().err
    conf = write_conf(tmp_path / "bad.yaml", corpus, [{"name": "x", "overides": ["sampler.steps=2"]}])
    assert compare_cli.main(["--conf", str(conf), "--exp", str(tmp_path / "exp")]) == 2
    assert "unknown key(s) overides" in capsys.readouterr().err
    conf = write_conf(tmp_path / "model.yaml", corpus, [{"name": "x", "model": "nope"}])
    assert compare_cli.main(["--conf", str(conf), "--exp", str(tmp_path / "exp")]) == 2
    assert "model 'nope'" in capsys.readouterr().err


def test_overrides_go_to_the_compare_config_or_to_every_variant(tmp_path):
    corpus = tmp_path / "songs"
    corpus.mkdir()
    conf = write_conf(tmp_path / "c.yaml", corpus)
    plan = make_plan(conf, tmp_path / "exp", ["requests.count=3", "backbone.depth=2"])
    assert plan.cfg["requests"]["count"] == 3
    assert plan.forwarded == ["backbone.depth=2"]
    by_name = {v.name: v for v in plan.variants}
    # after the common overrides, before the variant's own
    assert by_name["mel24_2"].overrides[-3:] == ["backbone.depth=2", "sampler.steps=2", "codec.n_mels=24"]
    assert plan.models["base_diffrhythm"].overrides[-1] == "backbone.depth=2"


ROWS = [
    {"name": "a", "steps": 8, "solver": "euler", "rtf": 0.5, "frechet": 3.0, "style_adherence": 0.2},
    {"name": "b", "steps": 16, "solver": "euler", "rtf": 0.9, "frechet": 2.0, "style_adherence": 0.4},
    {"name": "c", "steps": 8, "solver": "midpoint", "rtf": 1.0, "frechet": 2.0, "style_adherence": None},
]


def test_cached_embedder_embeds_each_file_and_window_once(tmp_path):
    from toolkit.experiments.compare_runner import CachedEmbedder

    class Counting:
        name = "counting"

        def __init__(self):
            self.calls = []

        def embed_audio(self, path, seconds=None):
            self.calls.append((Path(path).name, seconds))
            return np.array([len(self.calls), -1.0 if seconds is None else float(seconds)])

    audio = tmp_path / "a.wav"
    audio.write_bytes(b"x")
    inner = Counting()
    cached = CachedEmbedder(inner)
    whole, cut = cached.embed_audio(audio), cached.embed_audio(audio, 3.0)
    assert cached.embed_audio(audio) is whole and cached.embed_audio(audio, 3.0) is cut
    assert cut[1] == 3.0 and whole[1] == -1.0  # the window reached the inner embedder, not a cached whole file
    cached.embed_audio(audio, 4.0)
    assert inner.calls == [("a.wav", None), ("a.wav", 3.0), ("a.wav", 4.0)]
    assert cached.name == "counting"


def test_table_drops_blank_columns_and_best_follows_direction():
    table = variant_table(ROWS, [("name", "variant"), ("steps", "steps"), ("kernel_distance", "kernel")])
    assert table.splitlines()[0] == "| variant | steps |" and len(table.splitlines()) == 5
    best = best_variants(ROWS, ["frechet", "style_adherence", "rtf", "steps"])
    assert best["frechet"]["best"] is None  # b and c tie on the lowest
    assert best["style_adherence"]["best"] == "b" and best["style_adherence"]["values"] == {"a": 0.2, "b": 0.4}
    assert best["rtf"]["best"] == "a"
    assert "steps" not in best  # no direction: not judged


def test_metric_vs_x_png_draws_only_what_it_has(tmp_path):
    png = metric_vs_x_png(ROWS, "steps", ["frechet", "style_adherence"], tmp_path / "s.png", series="solver")
    _png_ok(png)
    assert metric_vs_x_png(ROWS, "steps", ["kernel_distance"], tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()
