"""egs/stable_audio/run.sh end to end (every stage) with a much smaller configuration, as DiffRhythm's test does."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e]  # runs egs/stable_audio/run.sh

ROOT = Path(__file__).resolve().parents[1]

TINY = [
    "max_frames=96", "default_seconds=2.0",
    "codec.n_mels=32", "codec.griffin_lim_iters=4", "codec.latent_mean=1.0", "codec.latent_std=1.9",
    "backbone.embed_dim=64", "backbone.depth=1", "backbone.num_heads=2", "backbone.project_cond_tokens=true",
    "sampler.steps=2",
    "train.batch_size=2", "train.max_steps=3", "train.warmup_steps=1", "train.valid_every=3",
    "train.save_every=3", "train.ema.update_after_step=0", "train.progress=false", "train.valid_windows=1",
]


def test_run_sh_all_stages(tmp_path):
    exp = tmp_path / "exp"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1"}
    cmd = ["bash", str(ROOT / "egs/stable_audio/run.sh"), "--exp", str(exp), "--chorales_dir", str(tmp_path / "songs"),
           "--num_pieces", "2", "--piece_seconds", "8", "--num_songs", "1", "--song_seconds", "2", *TINY]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]

    entries = [json.loads(line) for split in ("train", "valid")
               for line in (exp / "data" / f"{split}.jsonl").read_text().splitlines()]
    for entry in entries:  # prompts from the tags: ensemble, tempo, key
        assert "BPM" in entry["prompt"] and entry["prompt"].split(", ")[-2].endswith(" key"), entry["prompt"]
    requests = [json.loads(line) for line in (exp / "requests.jsonl").read_text().splitlines()]
    assert requests[0]["prompt"] == entries[-1]["prompt"]  # the held-out song first
    assert (exp / "checkpoints" / "last.pt").is_file()
    summary = json.loads((exp / "train_summary.json").read_text())
    assert "final_valid_loss_dropped" in summary and summary["valid_drop"] == ["prompt"]
    full, dropped = sorted((exp / "songs" / "full").glob("*.wav")), sorted((exp / "songs" / "dropped").glob("*.wav"))
    assert len(full) == 1 and len(dropped) == 1
    manifest = json.loads(full[0].with_suffix(".json").read_text())
    assert manifest["condition"] == "full" and manifest["recipe"] == "stable_audio"
    assert manifest["seconds"] > 1.9 and manifest["style"]["text"] == requests[0]["prompt"]
    assert manifest["guidance_option"] == "cfg_scale" and manifest["guidance"] > 1.0, "SAO's convention: 1 is none"
    unguided = json.loads(dropped[0].with_suffix(".json").read_text())
    assert unguided["condition"] == "dropped"
    assert unguided["guidance"] == 1.0 and unguided["guidance_option"] == "cfg_scale"
    evaluation = json.loads((exp / "report" / "evaluation.json").read_text())
    assert {"full", "dropped"} <= set(evaluation["groups"])
    report = (exp / "report.md").read_text()
    assert "loss" in report and ".png" in report

    # a stage can be rerun alone and skips finished work
    songs_before = {p: p.stat().st_mtime_ns for p in (exp / "songs").rglob("*.wav")}
    res = subprocess.run(cmd + ["--stage", "3", "--stop_stage", "3"], capture_output=True, text=True, env=env,
                         timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stderr.count("already generated, skipped") == 2
    assert {p: p.stat().st_mtime_ns for p in (exp / "songs").rglob("*.wav")} == songs_before


def test_run_sh_with_a_t5_folder_trains_on_t5_tokens(tmp_path):
    """--t5 DIR: the prompt condition becomes T5 tokens (frozen, outside the checkpoint; only its projection
    trains)."""
    import torch
    from test_stable_audio_pretrained import t5_folder

    t5 = t5_folder(tmp_path / "t5-base")
    exp = tmp_path / "exp"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1"}
    cmd = ["bash", str(ROOT / "egs/stable_audio/run.sh"), "--exp", str(exp), "--chorales_dir", str(tmp_path / "songs"),
           "--num_pieces", "2", "--piece_seconds", "8", "--t5", str(t5), "--stop_stage", "2", *TINY]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    ckpt = torch.load(exp / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    keys = list(ckpt["model_state_dict"])
    assert "conditions.prompt.proj_out.weight" in keys and not any("encoder.block" in k for k in keys)
    assert ckpt["config"]["conditions"]["prompt"]["conditioner"]["type"] == "t5_text"
