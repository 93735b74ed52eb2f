"""Multi-process training: 2 CPU processes (gloo, started by `accelerate launch`) train the same model as
one process with the combined batch; the data-loader worker count does not change the batches."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
import torch
from test_trainer_toy import REPO, ToyFrames, runner_script, start_training, subprocess_env, write_config

from toolkit.checkpoints import load_checkpoint
from toolkit.training.batching import BatchPlan, PlanBatchSampler, make_loader

pytestmark = [pytest.mark.ddp]  # two training processes

RUN = ["train.max_steps=6", "train.save_every=6", "train.valid_every=3", "train.batch_size=4",
       "train.grad_accum=1", "train.num_workers=0", "train.ema.update_after_step=1"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_the_same_model_as_one(tmp_path):
    config = write_config(tmp_path)
    single = start_training(tmp_path, tmp_path / "one", RUN, config)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), str(runner_script(tmp_path)),
           "--config", str(config), "--exp", str(tmp_path / "two"), *RUN]
    double = subprocess.Popen(cmd, cwd=REPO, env=subprocess_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    for proc in (single, double):
        out, _ = proc.communicate(timeout=55)
        assert proc.returncode == 0, out
    two_out = out
    assert two_out.count("initial valid loss") == 1  # only the main process reports

    a = load_checkpoint(tmp_path / "one" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "two" / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 6
    assert len(a["rng_state"]) == 1 and len(b["rng_state"]) == 2
    start = ToyFrames  # noqa: F841 (the toy's weights start identical: same seed on every process)
    for key in ("model_state_dict", "ema_model_state_dict"):
        for name, value in a[key].items():
            torch.testing.assert_close(b[key][name], value, rtol=0, atol=1e-5, msg=f"{key}.{name}")
    moved = (a["model_state_dict"]["transformer.o_proj.weight"]
             - b["ema_model_state_dict"]["ema_model.transformer.o_proj.weight"])
    assert moved.abs().max() > 0  # EMA lags the online weights: the EMA comparison is not the model's again
    states = (a["optimizer_state_dict"]["state"].values(), b["optimizer_state_dict"]["state"].values())
    for s_a, s_b in zip(*states, strict=True):
        torch.testing.assert_close(s_b["exp_avg"], s_a["exp_avg"], rtol=0, atol=1e-5)

    import json

    def valid(path):
        return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()
                if "valid_loss" in line]

    for ra, rb in zip(valid(tmp_path / "one"), valid(tmp_path / "two"), strict=True):
        assert ra["step"] == rb["step"]
        assert abs(ra["valid_loss"] - rb["valid_loss"]) < 1e-5
        assert abs(ra["valid_loss_dropped"] - rb["valid_loss_dropped"]) < 1e-5


def _batches(num_workers: int, rank: int = 0, world_size: int = 1, start_step: int = 0):
    ds = ToyFrames(num_items=13, window=6)
    plan = BatchPlan(ds.lengths, batch_size=4, seed=3, bucket_batches=2)
    sampler = PlanBatchSampler(plan, start_step=start_step, max_steps=7, grad_accum=2, rank=rank,
                               world_size=world_size)
    return list(make_loader(ds, sampler, num_workers=num_workers, seed=0))


def _same(x, y):
    assert x.keys() == y.keys()
    return all(torch.equal(x[k], y[k]) for k in x)


@pytest.mark.parametrize("workers", [1, 2])
def test_worker_count_does_not_change_batches(workers):
    reference = _batches(0)
    assert len(reference) == 7 * 2
    got = _batches(workers)
    assert len(got) == len(reference) and all(_same(a, b) for a, b in zip(reference, got, strict=False))


def test_process_slices_cover_the_global_batch_and_resume_continues_the_plan():
    whole = _batches(0)
    ranks = [_batches(0, rank=r, world_size=2) for r in (0, 1)]
    for i, batch in enumerate(whole):
        merged = sorted(int(p) for r in (0, 1) for p in ranks[r][i]["sample_index"])
        assert merged == sorted(batch["sample_index"].tolist())
        got = {int(p): x for r in (0, 1) for p, x in zip(ranks[r][i]["sample_index"], ranks[r][i]["x"], strict=False)}
        for p, x, n in zip(batch["sample_index"], batch["x"], batch["lens"], strict=False):
            assert torch.equal(got[int(p)][:n], x[:n])  # the same item and window, whoever loads it
    resumed = _batches(0, start_step=4)
    assert all(_same(a, b) for a, b in zip(whole[8:], resumed, strict=True))
