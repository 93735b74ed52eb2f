"""egs/diffrhythm/run.sh end to end (every stage) with an even smaller configuration."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e]  # runs egs/diffrhythm/run.sh

ROOT = Path(__file__).resolve().parents[1]

TINY = [
    "max_frames=128", "default_seconds=2.0",
    "codec.n_mels=32", "codec.griffin_lim_iters=4",
    "backbone.dim=32", "backbone.depth=2", "backbone.num_heads=2",
    "sampler.steps=2",
    "train.batch_size=2", "train.max_steps=3", "train.warmup_steps=1", "train.valid_every=3",
    "train.save_every=3", "train.ema.update_after_step=0", "train.progress=false",
]


def test_run_sh_all_stages(tmp_path):
    exp = tmp_path / "exp"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "HF_HUB_OFFLINE": "1"}
    cmd = ["bash", str(ROOT / "egs/diffrhythm/run.sh"), "--exp", str(exp), "--chorales_dir", str(tmp_path / "songs"),
           "--num_pieces", "2", "--piece_seconds", "8", "--num_songs", "2", "--song_seconds", "2", *TINY]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]

    assert len(list((tmp_path / "songs").glob("*.flac"))) == 2
    assert (exp / "data" / "train.jsonl").is_file() and (exp / "features" / "train.jsonl").is_file()
    assert (exp / "checkpoints" / "last.pt").is_file()
    full, dropped = sorted((exp / "songs" / "full").glob("*.wav")), sorted((exp / "songs" / "dropped").glob("*.wav"))
    mismatched = sorted((exp / "songs" / "mismatched").glob("*.wav"))
    assert len(full) == len(dropped) == len(mismatched) == 2
    manifest = json.loads(full[0].with_suffix(".json").read_text())
    assert manifest["condition"] == "full" and manifest["seconds"] > 1.5
    # the control: each song's own style prompt with the other song's LRC
    control = json.loads(mismatched[0].with_suffix(".json").read_text())
    assert control["request"]["extra"]["group"] == "mismatched"
    assert control["request"]["extra"]["lrc_from"] != control["request"]["title"]
    assert control["lrc"] != json.loads((exp / "songs" / "full" / mismatched[0].name).with_suffix(".json")
                                        .read_text())["lrc"]
    evaluation = json.loads((exp / "report" / "evaluation.json").read_text())
    assert list(evaluation["groups"]) == ["full", "dropped", "mismatched", "reconstructed"]  # + the codec ceiling
    assert len(list((exp / "songs" / "reconstructed").glob("*.wav"))) == 2
    assert evaluation["embedding"] == "descriptors" and evaluation["self_consistency"] == "features"
    # one piece held out (valid.jsonl), one trained on; each group has both columns
    assert len(evaluation["held_out_songs"]) == 1 and len(evaluation["training_songs"]) == 1
    assert evaluation["groups"]["full"]["held_out"]["count"] == 1
    assert evaluation["reference_window_seconds"] == pytest.approx(2.0, abs=0.1)
    report = (exp / "report.md").read_text()
    assert "loss" in report and ".png" in report
    assert "| figure | full: held-out | full: training | full: all |" in report and "mismatched: held-out" in report
    assert "Style was scored with `descriptors`" in report and "Songs of **training** pieces" in report
    assert "validated on the EMA weights" in report

    # every stage can be rerun alone and skips finished work
    res = subprocess.run(cmd + ["--stage", "1", "--stop_stage", "1"], capture_output=True, text=True, env=env,
                         timeout=300)
    assert res.returncode == 0 and '"done": 0' in res.stdout, res.stdout + res.stderr
    songs_before = {p: p.stat().st_mtime_ns for p in (exp / "songs").rglob("*.wav")}
    res = subprocess.run(cmd + ["--stage", "2", "--stop_stage", "3"], capture_output=True, text=True, env=env,
                         timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "resuming from" in res.stdout and "(step 3)" in res.stdout       # training was already finished
    assert res.stderr.count("already generated, skipped") == 6              # full, dropped and mismatched songs
    assert {p: p.stat().st_mtime_ns for p in (exp / "songs").rglob("*.wav")} == songs_before
    assert manifest["config"]["sampler"]["method"] == "midpoint"  # the conf's sampler

    # generation follows the conf's sampler, not the one saved in the checkpoint: editing it remakes the songs
    conf = tmp_path / "euler.yaml"
    conf.write_text((ROOT / "egs/diffrhythm/conf/default.yaml").read_text().replace("method: midpoint",
                                                                                    "method: euler"))
    res = subprocess.run(cmd + ["--conf", str(conf), "--stage", "3", "--stop_stage", "3"], capture_output=True,
                         text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "already generated" not in res.stderr
    remade = json.loads(full[0].with_suffix(".json").read_text())
    assert remade["config"]["sampler"]["method"] == "euler" and remade["config"]["sampler"]["steps"] == 2


def test_run_sh_with_pretrained_skips_training_and_generates(tmp_path):
    """--pretrained DIR: no training; generation reads the published-layout folder (tiny weights here)."""
    from test_generate_pretrained import build_published_folder

    published = tmp_path / "published"
    published.mkdir()
    build_published_folder(published)
    exp = tmp_path / "exp"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "HF_HUB_OFFLINE": "1"}
    cmd = ["bash", str(ROOT / "egs/diffrhythm/run.sh"), "--pretrained", str(published), "--variant", "base",
           "--exp", str(exp),
           "--chorales_dir", str(tmp_path / "songs"), "--num_pieces", "2", "--piece_seconds", "8",
           "--num_songs", "1", "--song_seconds", "1"]  # the tiny VAE's 2048 frames are 1.5 s
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "stage 2: skipped (--pretrained given)" in res.stdout + res.stderr
    assert not (exp / "checkpoints").exists()
    full = sorted((exp / "songs" / "full").glob("*.wav"))
    assert len(full) == 1
    manifest = json.loads(full[0].with_suffix(".json").read_text())
    assert str(published) in json.dumps(manifest)  # generated from the published folder's files
    assert (exp / "report.md").is_file()
