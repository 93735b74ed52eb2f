"""Checkpoint format, weight reading, schedule and train-config checks (in process, fast)."""

from __future__ import annotations

import pytest
import torch

from toolkit.checkpoints import FORMAT_VERSION, CheckpointError, load_checkpoint, read_weights
from toolkit.config import ConfigError
from toolkit.training.checkpoint import CheckpointManager
from toolkit.training.config import TrainConfig
from toolkit.training.rng import capture_rng_state, restore_rng_state
from toolkit.training.trainer import warmup_then_linear_decay


def _payload(step):
    return {"format_version": FORMAT_VERSION, "step": step, "model_state_dict": {"w": torch.full((2,), float(step))},
            "ema_model_state_dict": {"ema_model.w": torch.full((2,), -1.0), "initted": torch.tensor(True),
                                     "step": torch.tensor(step)},
            "rng_state": [capture_rng_state()], "config": {"train": {"lr": 1e-3}}, "data_state": {"next_step": step}}


def test_manager_keeps_the_last_k_and_last_points_at_the_newest(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=2)
    for step in (1, 2, 3):
        manager.save(_payload(step))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "step_00000002.pt", "step_00000003.pt"]
    ckpt = load_checkpoint(tmp_path / "last.pt")  # weights_only=True inside
    assert ckpt["step"] == 3 and ckpt["config"]["train"]["lr"] == 1e-3
    (tmp_path / ".last.pt.abc.tmp.pt").write_bytes(b"half")
    manager.remove_stale_temporaries()
    assert not (tmp_path / ".last.pt.abc.tmp.pt").exists()


def test_read_weights_picks_ema_or_online_and_strips_the_ema_prefix(tmp_path):
    CheckpointManager(tmp_path).save(_payload(5))
    last = tmp_path / "last.pt"
    assert torch.equal(read_weights(last, prefer_ema=True)["w"], torch.full((2,), -1.0))
    assert set(read_weights(last, use_ema=True)) == {"w"}  # the bookkeeping entries are dropped
    assert torch.equal(read_weights(last)["w"], torch.full((2,), 5.0))  # online weights unless asked
    assert torch.equal(read_weights(last, use_ema=False)["w"], torch.full((2,), 5.0))
    torch.save({"model_state_dict": {"w": torch.ones(2, dtype=torch.float16)}}, tmp_path / "cfm_model.pt")
    assert read_weights(tmp_path / "cfm_model.pt", prefer_ema=True)["w"].dtype == torch.float16
    with pytest.raises(CheckpointError, match="no 'ema_model_state_dict'"):
        read_weights(tmp_path / "cfm_model.pt", use_ema=True)


def test_version_and_format_errors_are_clear(tmp_path):
    torch.save({**_payload(1), "format_version": 99}, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="format_version 99; this toolkit reads version 1"):
        load_checkpoint(tmp_path / "future.pt")
    torch.save({"model_state_dict": {}}, tmp_path / "cfm_model.pt")
    with pytest.raises(CheckpointError, match="not a toolkit checkpoint.*train.init_from"):
        load_checkpoint(tmp_path / "cfm_model.pt")


def test_rng_state_round_trip_through_a_weights_only_file(tmp_path):
    import random

    import numpy as np

    torch.save(capture_rng_state(), tmp_path / "rng.pt")
    expected = (torch.rand(3), random.random(), np.random.rand())
    restore_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    got = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(expected[0], got[0]) and expected[1:] == got[1:]


def test_schedule_warms_up_then_decays_linearly():
    f = warmup_then_linear_decay(4, 12)
    assert f(0) == pytest.approx(1e-8) and f(2) == pytest.approx(0.5) and f(4) == pytest.approx(1.0)
    assert f(8) == pytest.approx(0.5) and f(12) == pytest.approx(1e-8) and f(20) == pytest.approx(1e-8)


def test_train_config_rejects_unknown_and_bad_keys():
    cfg = TrainConfig.from_config({"batch_size": 4, "ema": {"beta": 0.9}, "lora": {"rank": 4}})
    assert cfg.ema.beta == 0.9 and cfg.ema.update_every == 10 and cfg.lora.rank == 4
    with pytest.raises(ConfigError, match="unknown key.*train.btach_size"):
        TrainConfig.from_config({"btach_size": 4})
    with pytest.raises(ConfigError, match="train.ema.bta"):
        TrainConfig.from_config({"ema": {"bta": 0.9}})
    with pytest.raises(ConfigError, match="divisible"):
        TrainConfig.from_config({"batch_size": 6, "grad_accum": 4})
