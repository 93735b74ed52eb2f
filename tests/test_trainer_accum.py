"""Gradient accumulation splits the global batch: grad_accum 2 trains the same model as grad_accum 1."""

from __future__ import annotations

import json

import torch
from test_trainer_toy import ToyFrames, build_recipe, write_config

from toolkit.checkpoints import load_checkpoint
from toolkit.config import load_config
from toolkit.training.trainer import Trainer


def _run(tmp_path, name, overrides):
    cfg = load_config(write_config(tmp_path), ["train.max_steps=5", "train.save_every=5", "train.valid_every=5",
                                               "train.batch_size=4", *overrides])
    torch.manual_seed(0)
    summary = Trainer(build_recipe(cfg), ToyFrames(), tmp_path / name, cfg).fit()
    return load_checkpoint(tmp_path / name / "checkpoints" / "last.pt"), summary


def test_grad_accum_matches_the_whole_batch(tmp_path):
    a, sa = _run(tmp_path, "accum1", ["train.grad_accum=1"])
    b, sb = _run(tmp_path, "accum2", ["train.grad_accum=2"])
    for key, value in a["model_state_dict"].items():
        torch.testing.assert_close(b["model_state_dict"][key], value, rtol=0, atol=1e-6)
    assert abs(sa["final_valid_loss"] - sb["final_valid_loss"]) < 1e-5
    assert sa["final_valid_loss"] < sa["initial_valid_loss"]  # it learns
    summary = json.loads((tmp_path / "accum1" / "train_summary.json").read_text())
    assert summary == sa and set(sa) >= {"initial_valid_loss", "final_valid_loss", "final_valid_loss_dropped"}
    records = [json.loads(x) for x in (tmp_path / "accum1" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [2, 4, 5]
    assert all(r["steps_per_sec"] > 0 and r["grad_norm"] > 0 for r in records if "loss" in r)
