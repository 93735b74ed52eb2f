"""`bash egs/f5tts/run.sh` end to end (all five stages) on a tiny configuration of the embedded speech set.

The recipe folder is copied to a temporary directory so the run leaves nothing in the repository; the
venv's python comes first on PATH (run.sh falls back to python3 outside the repository).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

pytestmark = [pytest.mark.e2e]  # runs egs/f5tts/run.sh

ROOT = Path(__file__).resolve().parents[1]
TINY = ["train.max_steps=2", "train.batch_size=2", "train.save_every=2", "train.valid_every=2",
        "backbone.dim=32", "backbone.depth=1", "backbone.heads=2", "backbone.dim_head=16", "backbone.text_dim=16",
        "backbone.conv_layers=1", "sampler.steps=2", "codec.griffin_lim_iters=2"]


@pytest.fixture()
def recipe_dir(tmp_path):
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed (make install): the embedded speech set needs it")
    egs = tmp_path / "egs"
    shutil.copytree(ROOT / "egs" / "_common", egs / "_common")
    shutil.copytree(ROOT / "egs" / "f5tts", egs / "f5tts", ignore=shutil.ignore_patterns("exp", "data"))
    return egs / "f5tts"


def test_run_sh_all_stages_tiny(recipe_dir, tmp_path):
    exp = tmp_path / "exp"
    env = {**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": str(ROOT)}
    res = subprocess.run(["bash", "run.sh", "--exp", str(exp), "--num_utterances", "4", "--num_requests", "1", *TINY],
                         cwd=recipe_dir, env=env, capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    for stage in range(5):
        assert f"stage {stage}:" in res.stdout
    utterances = sorted((recipe_dir / "data" / "speech").glob("*.wav"))
    assert len(utterances) == 4 and all(p.with_suffix(".txt").is_file() for p in utterances)
    ckpt = torch.load(exp / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert ckpt["config"]["recipe"] == "f5tts" and ckpt["step"] == 2
    assert all(k.startswith("transformer.") for k in ckpt["model_state_dict"])
    for group in ("full", "dropped"):
        wavs = sorted((exp / "songs" / group).glob("*.wav"))
        assert len(wavs) == 1
        manifest = json.loads(wavs[0].with_suffix(".json").read_text())
        assert manifest["condition"] == group and manifest["seconds"] > 0.5
        assert manifest["request"]["text"] and manifest["request"]["ref_text"]
    evaluation = json.loads((exp / "report" / "evaluation.json").read_text())
    assert {r["group"] for r in evaluation["songs"]} == {"full", "dropped"}
    assert (exp / "report.md").is_file()


def test_run_sh_rejects_unknown_options(recipe_dir):
    res = subprocess.run(["bash", "run.sh", "--num_pieces", "3"], cwd=recipe_dir, capture_output=True, text=True)
    assert res.returncode == 2 and "unknown option --num-pieces" in res.stderr
