"""The CFM objective: keyed per-sample draws, span prompts, loss regions, drops, normalisation."""

from __future__ import annotations

import pytest
import torch
from dit_helpers import LATENT, ToyBackbone, tiny_conditions, tiny_dit

from toolkit.keyed_random import keyed_seed
from toolkit.objectives.cfm import CFMObjective, span_mask
from toolkit.registry import OBJECTIVES

T = 24


def batch(b: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x1 = torch.randn(b, T, LATENT, generator=g)
    lens = torch.tensor([24, 20, 13, 17, 24, 9, 11, 22][:b])
    x1 = x1 * (torch.arange(T)[None, :, None] < lens[:, None, None])  # zero padding like real batches
    return x1, tiny_conditions(b, T, seed), lens


def take(conditions: dict, idx) -> dict:
    return {k: v[idx] for k, v in conditions.items()}


def test_registered_and_configurable_from_a_node():
    obj = OBJECTIVES.build({"type": "cfm", "time_distribution": "uniform", "loss_region": "span"})
    assert isinstance(obj, CFMObjective) and obj.loss_region == "span"
    with pytest.raises(ValueError, match="time_distribution"):
        CFMObjective(time_distribution="beta")
    with pytest.raises(ValueError, match="span_fraction"):
        CFMObjective(span_fraction=(0.9, 0.5))


def test_draws_do_not_depend_on_how_the_batch_is_split():
    model = tiny_dit()
    obj = CFMObjective(loss_region="span", drop_probs={"audio": 0.5, "lyrics": 0.5, "style": 0.5}, seed=7)
    x1, conditions, lens = batch(4)
    whole = obj(model, x1, conditions, lens, step=3, sample_index=torch.arange(4))
    # two "processes", the second with less padding (its batch is cropped to its longest item)
    first = obj(model, x1[:2], take(conditions, slice(0, 2)), lens[:2], step=3, sample_index=torch.arange(2))
    t2 = int(lens[2:].max())
    second = obj(model, x1[2:, :t2], {k: (v[2:, :t2] if v.ndim == 2 and k == "lyrics" else v[2:])
                                      for k, v in conditions.items()},
                 lens[2:], step=3, sample_index=torch.arange(2, 4))
    for key in ("time", "span_mask"):
        assert torch.equal(whole[key][:2], first[key])
        assert torch.equal(whole[key][2:, ...][..., :t2] if key == "span_mask" else whole[key][2:], second[key])
    for group in ("audio", "lyrics", "style"):
        assert torch.equal(whole["drop"][group], torch.cat([first["drop"][group], second["drop"][group]]))
    assert torch.equal(whole["x0"][:2], first["x0"])
    for i in (0, 1):  # the valid frames' noise is independent of the padding
        n = int(lens[2 + i])
        assert torch.equal(whole["x0"][2 + i, :n], second["x0"][i, :n])
    assert torch.allclose(whole["pred"][:2], first["pred"], atol=1e-5, rtol=1e-5)


def test_same_key_same_draws_other_key_other_draws():
    obj = CFMObjective(seed=1)
    toy = ToyBackbone()
    x1, conditions, lens = batch(2)
    a = obj(toy, x1, conditions, lens, step=5, sample_index=torch.tensor([10, 11]))
    b = obj(toy, x1, conditions, lens, step=5, sample_index=torch.tensor([10, 11]))
    c = obj(toy, x1, conditions, lens, step=6, sample_index=torch.tensor([10, 11]))
    d = obj(toy, x1, conditions, lens, step=5, sample_index=torch.tensor([11, 10]))
    assert torch.equal(a["x0"], b["x0"]) and torch.equal(a["time"], b["time"])
    assert not torch.equal(a["x0"], c["x0"]) and not torch.equal(a["time"], c["time"])
    assert torch.equal(a["time"].flip(0), d["time"])  # the draws follow the item, not its batch position
    assert not torch.equal(a["x0"][0], a["x0"][1])
    assert keyed_seed("cfm", 1, 5, 10) != keyed_seed("cfm", 1, 5, 11) != keyed_seed("cfm", 2, 5, 10)


def test_span_objective_trains_prompts_and_scores_only_the_span():
    obj = CFMObjective(loss_region="span", span_fraction=(0.7, 1.0), seed=3)
    model = tiny_dit()
    x1, conditions, lens = batch(8)
    out = obj(model, x1, conditions, lens, step=0, sample_index=torch.arange(8))
    span, valid = out["span_mask"], torch.arange(T)[None, :] < lens[:, None]
    assert not (span & ~valid).any()
    lengths = span.sum(1)
    assert ((lengths >= (0.7 * lens).long()) & (lengths <= lens)).all()
    assert (lengths < lens).any(), "some item must keep an audio prompt"
    for i in range(8):  # one contiguous span per item
        idx = span[i].nonzero().flatten()
        assert idx.numel() == 0 or idx.max() - idx.min() + 1 == idx.numel()
    assert torch.equal(out["cond"], torch.where(span[..., None], torch.zeros_like(x1), x1))
    err = (out["pred"] - out["target"]) ** 2
    assert torch.allclose(out["loss"], err[span].mean(), rtol=1e-6)
    assert out["num_loss_frames"] == span.sum()
    valid_obj = CFMObjective(loss_region="valid", seed=3)
    out_valid = valid_obj(model, x1, conditions, lens, step=0, sample_index=torch.arange(8))
    assert torch.equal(out_valid["span_mask"], span)  # same draws, other region
    assert torch.allclose(out_valid["loss"], ((out_valid["pred"] - out_valid["target"]) ** 2)[valid].mean(), rtol=1e-6)


def test_released_mode_zeroes_every_valid_frame_and_drops_per_batch():
    obj = CFMObjective(released=True, drop_probs={"audio": 0.5, "lyrics": 0.5, "style": 0.5})
    toy = ToyBackbone()
    x1, conditions, lens = batch(4)
    x1 = x1 + 1.0  # non-zero padding, so "x1 on padding frames" is visible
    for step in range(8):
        out = obj(toy, x1, conditions, lens, step=step)
        valid = torch.arange(T)[None, :] < lens[:, None]
        assert torch.equal(out["span_mask"], valid)
        assert torch.equal(out["cond"], torch.where(valid[..., None], torch.zeros_like(x1), x1))
        for flags in out["drop"].values():
            assert flags.all() or not flags.any()


def test_span_mask_formula():
    mask = span_mask(torch.tensor([0.5, 1.0]), torch.tensor([1.0, 0.3]), torch.tensor([10, 6]), 12)
    assert mask[0].nonzero().flatten().tolist() == [5, 6, 7, 8, 9]
    assert mask[1].nonzero().flatten().tolist() == [0, 1, 2, 3, 4, 5]


def test_drop_probabilities_per_sample_and_joint_rule():
    toy = ToyBackbone()
    x1, conditions, lens = batch(8)
    x1, lens = x1.repeat(8, 1, 1), lens.repeat(8)
    conditions = {k: v.repeat(8, *[1] * (v.ndim - 1)) for k, v in conditions.items()}
    never = CFMObjective(drop_probs={"audio": 0.0, "lyrics": 0.0})(toy, x1, conditions, lens)
    always = CFMObjective(drop_probs={"audio": 1.0, "lyrics": 1.0})(toy, x1, conditions, lens)
    half = CFMObjective(drop_probs={"audio": 0.5})(toy, x1, conditions, lens)
    assert not never["drop"]["audio"].any() and always["drop"]["lyrics"].all()
    assert 0 < int(half["drop"]["audio"].sum()) < 64  # per-sample decisions mix within a batch
    f5 = CFMObjective(time_distribution="uniform", loss_region="span", drop_probs={"audio": 0.0},
                      joint_drop_prob=1.0, joint_drop_groups=("audio", "text"), drop_per="batch")
    out = f5(toy, x1, conditions, lens)
    assert out["drop"]["audio"].all() and out["drop"]["text"].all()
    assert toy.calls[-1]["drop"] is out["drop"]


def test_time_distributions():
    toy = ToyBackbone()
    x1, conditions, lens = batch(8)
    x1, lens = x1.repeat(32, 1, 1), lens.repeat(32)
    conditions = {k: v.repeat(32, *[1] * (v.ndim - 1)) for k, v in conditions.items()}
    t = CFMObjective(time_distribution="logit_normal")(toy, x1, conditions, lens)["time"]
    logit = torch.log(t / (1 - t))
    assert abs(float(logit.mean())) < 0.2 and abs(float(logit.std()) - 1) < 0.15
    u = CFMObjective(time_distribution="uniform")(toy, x1, conditions, lens)["time"]
    assert 0 <= float(u.min()) and float(u.max()) < 1 and abs(float(u.mean()) - 0.5) < 0.08
    assert float(logit.std()) < float(torch.log(u / (1 - u)).std())  # really different distributions


def test_interpolation_target_and_global_normalisation():
    obj = CFMObjective(loss_region="valid")
    toy = ToyBackbone()
    x1, conditions, lens = batch(2)
    out = obj(toy, x1, conditions, lens)
    t = out["time"][:, None, None]
    assert torch.allclose(out["x_t"], (1 - t) * out["x0"] + t * x1)
    assert torch.equal(out["target"], x1 - out["x0"])
    assert int(out["num_loss_frames"]) == int(lens.sum())
    glob = obj(toy, x1, conditions, lens, num_valid_global=int(lens.sum()) * 3)
    assert torch.allclose(glob["loss"] * 3, out["loss"], rtol=1e-6)
    assert torch.allclose(glob["loss_sum"], out["loss"] * lens.sum() * LATENT, rtol=1e-5)


def test_injected_draws_win():
    obj = CFMObjective(loss_region="span")
    toy = ToyBackbone()
    x1, conditions, lens = batch(2)
    span = torch.zeros(2, T, dtype=torch.bool)
    span[:, 3:7] = True
    x0 = torch.ones_like(x1)
    out = obj(toy, x1, conditions, lens, draws={"x0": x0, "time": torch.tensor([0.25, 0.5]), "span_mask": span,
                                                 "drop": {"audio": True, "style": torch.tensor([False, True])}})
    assert torch.equal(out["x0"], x0) and torch.equal(out["span_mask"], span)
    assert out["drop"]["audio"].tolist() == [True, True] and out["drop"]["style"].tolist() == [False, True]
    assert int(out["num_loss_frames"]) == 8
