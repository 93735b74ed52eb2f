"""The comparison harness across recipes on one task (tiny): DiffRhythm, DiffRhythm's task on dit_f5 and Stable
Audio trained on the same corpus, each recipe's requests made from the same manifests, songs and seeds, every row
evaluated by the same evaluator into one table; plus the shipped configs' plans."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from toolkit.experiments.compare_plan import PlanError, make_plan

ROOT = Path(__file__).resolve().parents[1]
EGS = ROOT / "egs"
CODEC = ["codec.sample_rate=16000", "codec.n_fft=512", "codec.hop_length=256", "codec.n_mels=32",
         "codec.griffin_lim_iters=2", "codec.latent_mean=1.0", "codec.latent_std=1.9"]
TRAIN = ["max_frames=96", "train.batch_size=2", "train.max_steps=3", "train.warmup_steps=1", "train.save_every=3",
         "train.valid_every=3", "train.keep_last=1", "train.ema.update_after_step=1", "train.progress=false",
         "train.tensorboard=false", "train.valid_windows=1"]
F5 = ("backbone={type: dit_f5, dim: 32, depth: 1, heads: 1, dim_head: 32, ff_mult: 2, text_dim: 16, conv_layers: 1, "
      "text_num_embeds: 363, dropout: 0.0}")
VARIANTS = [
    {"name": "dr", "recipe": "diffrhythm", "overrides": ["sampler.steps=2"]},
    {"name": "dr_f5", "recipe": "diffrhythm", "train": True,
     "overrides": ["sampler.steps=2", F5, "conditions.lyrics.input=text", "conditions.style.input=global",
                   "conditions.start_time.input=global"]},
    {"name": "sa", "recipe": "stable_audio", "overrides": ["sampler.steps=2"]},
    {"name": "sa_uncond", "recipe": "stable_audio", "drop_conditions": True, "overrides": ["sampler.steps=2"]},
]


def write_corpus(folder: Path, n: int = 4, seconds: float = 3.0, sr: int = 16000) -> None:
    """Tagged songs with LRC sidecars: the tags give Stable Audio its prompts, the LRC DiffRhythm its lyrics."""
    import soundfile as sf

    from toolkit.data.tags import write_tags

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    for i in range(n):
        tone = sum(np.sin(2 * np.pi * 196.0 * 2 ** (i / 12) * k * t) / k for k in (1, 2, 3))
        wav = (0.2 * tone + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
        path = folder / f"song{i}.flac"
        sf.write(path, np.stack([wav, wav[::-1]], 1), sr)
        write_tags(path, title=f"song {i}", genres=["chorale", ("organ", "piano")[i % 2]], moods=["solemn"])
        (folder / f"song{i}.lrc").write_text("[00:00.00]Halleluja singet\n[00:01.20]Gott dem Herrn\n",
                                             encoding="utf-8")


def write_conf(path: Path, corpus: Path, variants=VARIANTS) -> Path:
    conf = {
        "recipes": {
            "diffrhythm": {"conf": str(EGS / "diffrhythm/conf/default.yaml"),
                           "requests": str(EGS / "diffrhythm/local/make_requests.py"),
                           "overrides": ["backbone.dim=32", "backbone.depth=1", "backbone.num_heads=2"]},
            "stable_audio": {"conf": str(EGS / "stable_audio/conf/default.yaml"),
                             "requests": str(EGS / "stable_audio/local/make_requests.py"),
                             "manifests": str(EGS / "stable_audio/local/make_prompts.py"),
                             "overrides": ["backbone.embed_dim=64", "backbone.depth=1", "backbone.num_heads=1",
                                           "backbone.project_cond_tokens=true"]}},
        "corpus": {"dir": str(corpus), "valid_fraction": 0.25},
        "requests": {"count": 2, "seconds": 1.5, "seed": 3},
        "common": CODEC + TRAIN,
        "evaluation": {"embedding": "features", "tolerance": 0.5},
        "report": {"plot_metrics": ["frechet", "rtf"], "notes": ["a note from the config"]},
        "variants": variants,
    }
    path.write_text(yaml.safe_dump(conf, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare_recipes")
    write_corpus(root / "songs")
    conf = write_conf(root / "compare.yaml", root / "songs")
    exp = root / "exp"
    result = subprocess.run(["bash", str(EGS / "compare" / "run.sh"), "--conf", str(conf), "--exp", str(exp)],
                            capture_output=True, text=True, timeout=900, env={**__import__("os").environ,
                                                                               "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return exp


@pytest.mark.e2e  # runs the harness stages in subprocesses
def test_one_table_with_rows_from_three_recipes_and_backbones(compared):
    doc = json.loads((compared / "report" / "report.json").read_text())
    rows = {r["name"]: r for r in doc["variants"]}
    assert list(rows) == [v["name"] for v in VARIANTS]
    assert {(r["recipe"], r["backbone"]) for r in rows.values()} == {
        ("diffrhythm", "dit_diffrhythm"), ("diffrhythm", "dit_f5"), ("stable_audio", "dit_sao")}
    for row in rows.values():  # the same evaluation for every row
        assert row["status"] == "ok" and row["count"] == 2 and row["frechet"] is not None and row["rtf"] > 0
    assert rows["dr"]["style_adherence"] is not None  # an audio style prompt
    assert rows["sa"].get("style_adherence") is None  # a text prompt: the features embedder cannot embed it
    table = (compared / "report" / "report.md").read_text().split("## Results")[1].split("##")[0]
    assert table.splitlines()[2].startswith("| variant | recipe | backbone |")
    assert "| sa | stable_audio | dit_sao |" in table and "| dr_f5 | diffrhythm | dit_f5 |" in table
    assert "a note from the config" in doc["notes"]


@pytest.mark.e2e
def test_every_recipe_got_the_same_songs_and_seeds(compared):
    doc = json.loads((compared / "report" / "report.json").read_text())
    by_recipe = doc["requests"]["by_recipe"]
    assert set(by_recipe) == {"diffrhythm", "stable_audio"}
    assert by_recipe["diffrhythm"]["seeds"] == by_recipe["stable_audio"]["seeds"] == [3, 4]
    assert by_recipe["diffrhythm"]["names"] == by_recipe["stable_audio"]["names"]
    seeds = {}  # song -> seed, per variant: the same for every recipe and backbone
    for variant in ("dr", "dr_f5", "sa", "sa_uncond"):
        manifests = (compared / "songs" / variant).glob("*.json")
        seeds[variant] = {json.loads(p.read_text())["request"]["title"]: json.loads(p.read_text())["seed"]
                          for p in manifests}
    assert sorted(seeds["dr"].values()) == [3, 4]
    assert all(found == seeds["dr"] for found in seeds.values()), seeds
    sa = json.loads(sorted((compared / "songs" / "sa").glob("*.json"))[0].read_text())
    assert sa["request"]["prompt"] in ("chorale, organ, solemn", "chorale, piano, solemn")
    assert sa["request"]["seconds_total"] == 1.5 and sa["condition"] == "full"
    uncond = json.loads(sorted((compared / "songs" / "sa_uncond").glob("*.json"))[0].read_text())
    assert uncond["condition"] == "dropped"


def test_shipped_configs_plan_recipes_and_settings(tmp_path):
    plan = make_plan(EGS / "compare/conf/default.yaml", tmp_path / "exp", [])
    recipes = {v.recipe for v in plan.variants}
    assert recipes == {"diffrhythm", "stable_audio"}
    assert {"base_diffrhythm", "base_stable_audio", "diffrhythm_on_dit_f5", "stable_audio_rf"} == set(plan.models)
    f5 = next(v for v in plan.variants if v.name == "diffrhythm_on_dit_f5")
    assert any(o.startswith("backbone={type: dit_f5") for o in f5.overrides)
    sa = plan.models["base_stable_audio"].overrides
    assert "backbone.embed_dim=128" in sa and "backbone.dim=128" not in sa  # a recipe's own overrides only
    speech = make_plan(EGS / "compare/conf/speech.yaml", tmp_path / "speech", [])
    assert {v.recipe for v in speech.variants} == {"f5tts"} and len(speech.variants) >= 5
    assert speech.recipes["f5tts"]["requests"].args[:2] == ["--targets", "{valid}"]


def test_recipe_entries_are_checked(tmp_path):
    corpus = tmp_path / "songs"
    corpus.mkdir()
    conf = write_conf(tmp_path / "c.yaml", corpus)
    data = yaml.safe_load(conf.read_text())
    data["recipes"]["stable_audio"]["request"] = "x.py"
    conf.write_text(yaml.safe_dump(data))
    with pytest.raises(PlanError, match="unknown key\\(s\\) request"):
        make_plan(conf, tmp_path / "exp", [])
    del data["recipes"]["stable_audio"]["request"]
    data["recipes"]["stable_audio"]["requests"] = {"script": str(EGS / "stable_audio/local/make_requests.py"),
                                                   "args": ["--out", "{nowhere}"]}
    conf.write_text(yaml.safe_dump(data))
    plan = make_plan(conf, tmp_path / "exp", [])
    with pytest.raises(PlanError, match="unknown placeholder 'nowhere'"):
        plan.recipes["stable_audio"]["requests"].command("python", {"out": "x"})
