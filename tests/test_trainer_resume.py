"""Exact resume: a training process killed (SIGKILL) after writing a checkpoint, then restarted, ends with
the same weights, EMA weights and optimizer state, bit for bit, as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
import torch
from test_trainer_toy import start_training, write_config

from toolkit.checkpoints import load_checkpoint

pytestmark = [pytest.mark.slow]  # trains, kills and resumes in subprocesses

# dropout > 0 makes the global torch RNG matter (its state must be restored); grad_accum 2 and one
# data-loader worker in the resumed run exercise the data plan.
COMMON = ["toy.dropout=0.2", "train.max_steps=8", "train.save_every=2", "train.keep_last=2", "train.grad_accum=2",
          "train.valid_every=3"]


def _assert_same_tensors(a, b, where=""):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same_tensors(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            _assert_same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def test_killed_run_resumes_bit_identically(tmp_path):
    config = write_config(tmp_path)
    ref_exp, exp = tmp_path / "reference", tmp_path / "interrupted"
    reference = start_training(tmp_path, ref_exp, COMMON, config)
    # the run to kill sleeps in every training step so the kill lands part way
    victim = start_training(tmp_path, exp, COMMON + ["toy.sleep=0.25"], config)
    first_ckpt, last = exp / "checkpoints" / "step_00000004.pt", exp / "checkpoints" / "last.pt"

    def step4_is_last():  # last.pt is a hard link to the newest step file
        try:
            return os.stat(last).st_ino == os.stat(first_ckpt).st_ino
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 40
    while not step4_is_last() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert victim.poll() is None, "the run finished (or failed) before it could be killed:\n" + victim.communicate()[0]
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_at = load_checkpoint(exp / "checkpoints" / "last.pt")["step"]
    assert 4 <= killed_at < 8

    resumed = start_training(tmp_path, exp, COMMON + ["toy.sleep=0.0", "train.num_workers=1"], config)
    for proc in (reference, resumed):
        out, _ = proc.communicate(timeout=50)
        assert proc.returncode == 0, out
    resumed_out = out
    assert f"resuming from {exp / 'checkpoints' / 'last.pt'} (step {killed_at})" in resumed_out

    a = load_checkpoint(ref_exp / "checkpoints" / "last.pt")
    b = load_checkpoint(exp / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 8
    for key in ("model_state_dict", "ema_model_state_dict", "optimizer_state_dict", "scheduler_state_dict",
                "data_state"):
        _assert_same_tensors(a[key], b[key], key)
    assert int(b["ema_model_state_dict"]["step"]) == 8
    # the training did move the weights (the comparison is not vacuous)
    first = load_checkpoint(first_ckpt) if first_ckpt.exists() else None
    if first is not None:
        assert not torch.equal(first["model_state_dict"]["transformer.o_proj.weight"],
                               b["model_state_dict"]["transformer.o_proj.weight"])

    # keep_last 2 step files plus last.pt
    assert sorted(p.name for p in (exp / "checkpoints").iterdir()) == ["last.pt", "step_00000006.pt",
                                                                        "step_00000008.pt"]
    # metrics: no step logged twice after the resume, same figures as the reference
    def records(path):
        return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]

    rec_a, rec_b = records(ref_exp), records(exp)
    assert [(r["step"], sorted(r)) for r in rec_a] == [(r["step"], sorted(r)) for r in rec_b]
    for ra, rb in zip(rec_a, rec_b, strict=False):
        for k in ("loss", "valid_loss", "valid_loss_dropped", "lr", "grad_norm"):
            if k in ra:
                assert ra[k] == rb[k], (ra, rb)
    summary = json.loads((exp / "train_summary.json").read_text())
    assert summary["initial_step"] == 0 and summary["final_step"] == 8
    assert "final valid loss with lyrics and style dropped" in resumed_out
