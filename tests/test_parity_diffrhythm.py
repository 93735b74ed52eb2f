"""Golden parity of the DiffRhythm DiT, CFM loss and sampler against upstream fixtures.

Cases come from golden/diffrhythm/cases.pt (and extra_cases.pt when present), enumerated by name prefix
(dit_*, loss_*, sample_*); the model size comes from small_config.json. Recorded random draws (x0, time,
drop flags, initial noise) are injected: these tests pin numerics, not the seed API.
"""

from __future__ import annotations

import json
import random
from functools import cache

import pytest
import torch
from golden import golden_file, golden_root, load_cases, load_golden_weights, rel_err, select_cases

from toolkit.backbones.dit_diffrhythm import DiffRhythmDiT
from toolkit.objectives.cfm import CFMObjective
from toolkit.objectives.samplers import FlowSampler

SET = "diffrhythm"
DIT_TOL, LOSS_TOL, SAMPLE_TOL, SAMPLE_FP16_TOL = 1e-5, 1e-5, 1e-4, 5e-3


@cache
def config() -> dict:
    return json.loads(golden_file(SET, "small_config.json").read_text())


@cache
def all_cases() -> dict:
    cases = dict(load_cases(SET))
    if (golden_root() / SET / "extra_cases.pt").is_file():
        cases.update(load_cases(SET, "extra_cases.pt"))
    return cases


def case_names(prefix: str) -> list[str]:
    return select_cases(all_cases(), prefix)


@cache
def weights() -> dict:
    return load_golden_weights(golden_file(SET, "small_state_dict.pt"))


def build(full: bool) -> DiffRhythmDiT:
    """The small model; `full` = max_frames_full with the duration embedding, else base without it."""
    cfg = config()
    m = cfg["model"]
    model = DiffRhythmDiT(m["dim"], m["depth"], m["ff_mult"], latent_dim=m["mel_dim"], text_dim=m["text_dim"],
                          conv_layers=m["conv_layers"], text_num_embeds=m["text_num_embeds"],
                          max_frames=cfg["max_frames_full"] if full else cfg["max_frames_base"])
    assert model.has_duration == full
    state = {k.removeprefix("transformer."): v for k, v in weights().items()
             if full or not k.startswith("transformer.duration_time_embed.")}
    model.load_state_dict(state, strict=True)
    return model.eval()


def is_full(case: dict) -> bool:
    return str(case.get("model", "")).startswith("full") or "duration" in case["inputs"]


def dit_conditions(inputs: dict) -> dict:
    conditions = {"lyrics": inputs["text"], "style": inputs["style_prompt"], "start_time": inputs["start_time"]}
    if inputs.get("duration") is not None:
        conditions["duration"] = inputs["duration"]
    return conditions


def dit_drop(inputs: dict, batch: int) -> dict:
    return {group: torch.full((batch,), bool(inputs[flag]))
            for group, flag in (("audio", "drop_audio_cond"), ("lyrics", "drop_text"), ("style", "drop_prompt"))}


def test_fixture_set_is_complete():
    cfg = config()
    assert cfg["model"]["text_dim"] == 512 and cfg["max_frames_base"] != cfg["max_frames_full"]
    for prefix in ("dit_", "loss_", "sample_"):
        assert case_names(prefix)


# ------------------------------------------------------------------------------------------ DiT
@pytest.mark.parametrize("name", case_names("dit_"))
def test_dit_forward(name):
    case = all_cases()[name]
    inputs = case["inputs"]
    model = build(is_full(case))
    captured = {}
    hooks = [getattr(model, n).register_forward_hook(lambda _m, _a, out, n=n: captured.__setitem__(n, out))
             for n in ("time_embed", "start_time_embed", "text_embed", "input_embed", "norm_out")]
    hooks += [block.register_forward_hook(lambda _m, _a, out, n=f"block{i}": captured.__setitem__(n, out))
              for i, block in enumerate(model.transformer_blocks)]
    b = inputs["x"].shape[0]
    with torch.no_grad():
        out = model(inputs["x"], inputs["cond"], dit_conditions(inputs), inputs["time"], dit_drop(inputs, b))
    for h in hooks:
        h.remove()
    assert rel_err(out, case["output"]) <= DIT_TOL, name
    for key, expected in (case.get("intermediates") or {}).items():
        assert key in captured, f"{name}: no module produces intermediate '{key}'"
        assert rel_err(captured[key], expected) <= DIT_TOL, f"{name}: intermediate {key}"


@pytest.mark.parametrize("name", case_names("dit_"))
def test_dit_per_item_drop_matches_batch_drop(name):
    """Mixed per-item flags give, for each item, the numbers of a batch where everyone shares its flags."""
    case = all_cases()[name]
    inputs = case["inputs"]
    model = build(is_full(case))
    b = inputs["x"].shape[0]
    conditions = dit_conditions(inputs)
    flags = torch.arange(b) % 2 == 0
    mixed = {"audio": flags, "lyrics": flags, "style": flags}
    with torch.no_grad():
        out_mixed = model(inputs["x"], inputs["cond"], conditions, inputs["time"], mixed)
        everything = {g: torch.ones(b, dtype=torch.bool) for g in mixed}
        out_all = model(inputs["x"], inputs["cond"], conditions, inputs["time"], everything)
        out_none = model(inputs["x"], inputs["cond"], conditions, inputs["time"], None)
    expected = torch.where(flags[:, None, None], out_all, out_none)
    assert rel_err(out_mixed, expected) <= 1e-6
    assert rel_err(out_all, out_none) > 1e-3  # the drops change the output


# ------------------------------------------------------------------------------------------ loss
def released_objective(case: dict, rng: str = "per_sample") -> CFMObjective:
    cfm = config()["cfm"]
    probs = case.get("drop_probs") or {"audio": cfm["audio_drop_prob"], "lrc": cfm["lrc_drop_prob"],
                                       "style": cfm["style_drop_prob"]}
    return CFMObjective(time_distribution="logit_normal", span_fraction=tuple(cfm["frac_lengths_mask"]),
                        drop_probs={"audio": probs["audio"], "lyrics": probs["lrc"], "style": probs["style"]},
                        released=True, rng=rng)


def loss_conditions(inputs: dict) -> dict:
    return {"lyrics": inputs["text"], "style": inputs["style_prompt"], "start_time": inputs["start_time"]}


def check_loss(name: str, out: dict, case: dict) -> None:
    assert torch.equal(out["cond"], case["cond"]), f"{name}: cond differs"
    assert rel_err(out["pred"], case["pred"]) <= LOSS_TOL, f"{name}: pred"
    assert rel_err(out["loss"], case["loss"]) <= LOSS_TOL, f"{name}: loss"


@pytest.mark.parametrize("name", case_names("loss_"))
def test_loss_with_injected_draws(name):
    case = all_cases()[name]
    inputs, replayed = case["inputs"], case["replayed"]
    model = build(False).train()  # no dropout anywhere; train() as upstream
    draws = {"x0": replayed["x0"], "time": replayed["time"],
             "drop": {"audio": replayed["drop_audio_cond"], "lyrics": replayed["drop_text"],
                      "style": replayed["drop_prompt"]}}
    out = released_objective(case)(model, inputs["inp"], loss_conditions(inputs), inputs["lens"], draws=draws)
    check_loss(name, out, case)


@pytest.mark.parametrize("name", case_names("loss_"))
def test_loss_replays_upstream_global_draws(name):
    """rng='global' draws what upstream draws, in its order: seeding torch + random reproduces the case."""
    case = all_cases()[name]
    inputs, replayed = case["inputs"], case["replayed"]
    model = build(False).train()
    torch.manual_seed(case["torch_seed"])
    random.seed(case["python_random_seed"])
    out = released_objective(case, rng="global")(model, inputs["inp"], loss_conditions(inputs), inputs["lens"])
    assert torch.equal(out["x0"], replayed["x0"]) and torch.equal(out["time"], replayed["time"])
    for group, flag in (("audio", "drop_audio_cond"), ("lyrics", "drop_text"), ("style", "drop_prompt")):
        assert bool(out["drop"][group].all()) == replayed[flag] and bool(out["drop"][group].any()) == replayed[flag]
    check_loss(name, out, case)


# ------------------------------------------------------------------------------------------ sampling
@pytest.mark.parametrize("name", case_names("sample_"))
def test_sample(name):
    case = all_cases()[name]
    inputs = case["inputs"]
    fp16 = inputs["style_prompt"].dtype == torch.float16
    # the README names full-model sample cases sample_full_*; a "model" entry, if a set has one, also says it
    full = name.startswith("sample_full") or str(case.get("model", "")).startswith("full")
    model = build(full)
    if fp16:
        model = model.half()
    n, k = inputs["duration"], inputs["batch_infer_num"]
    ref = inputs["cond"][:, :n].expand(k, -1, -1)
    mask = torch.zeros(k, n, dtype=torch.bool)
    for start, end in inputs["latent_pred_segments"]:
        mask[:, start:end] = True
    conditions = {"lyrics": inputs["text"], "style": inputs["style_prompt"], "start_time": inputs["start_time"]}
    if model.has_duration:
        conditions["duration"] = inputs["song_duration"]
    sampler = FlowSampler(steps=inputs["steps"] - 1, method=config()["cfm"]["odeint_kwargs"]["method"],
                          sway_coef=inputs["sway_sampling_coef"], cfg_strength=inputs["cfg_strength"],
                          uncond_drop=("audio", "lyrics"))
    out, trajectory = sampler.sample(model, case["y0"], ref, conditions,
                                     negative_conditions={"style": inputs["negative_style_prompt"]},
                                     mask=mask, return_trajectory=True)
    tol = SAMPLE_FP16_TOL if fp16 else SAMPLE_TOL
    assert rel_err(out.float(), case["outputs"].float()) <= tol, name
    assert len(trajectory) == len(case["t_grid"])  # steps - 1 updates + the start
    if "trajectory" in case:
        assert rel_err(trajectory.float(), case["trajectory"].float()) <= tol
    outside = ~mask
    if outside.any():  # editing: frames outside the segments are the reference, exactly
        assert torch.equal(out[outside].float(), ref[outside].float())


@pytest.mark.parametrize("name", case_names("sample_"))
def test_sample_time_grid(name):
    from toolkit.objectives.time_grids import time_grid

    case = all_cases()[name]
    inputs = case["inputs"]
    grid = time_grid(inputs["steps"] - 1, "linspace", inputs["sway_sampling_coef"], dtype=case["t_grid"].dtype)
    assert torch.equal(grid, case["t_grid"])
