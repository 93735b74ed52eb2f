"""Golden parity of the Stable Audio Open parts (dit_sao, number / t5_text, guidance, objectives, samplers).

Cases come from golden/sao/cases.pt, enumerated by name prefix; the three models (v objective, rectified flow,
inpainting) and every size come from config.json and the tensors. Recorded random draws are injected.
Upstream is channels-first [B, C, T]; the toolkit is [B, T, C]: tensors are transposed at the boundary.
Tolerances are the README's (max|ours - theirs| / max|theirs| per tensor).
"""

from __future__ import annotations

import json
import math
from functools import cache

import pytest
import torch
from golden import golden_file, load_cases, load_golden_weights, rel_err, select_cases

from toolkit.backbones.dit_sao import SAODiT
from toolkit.conditioners.number import NumberConditioner
from toolkit.conditioners.t5_text import T5TextConditioner
from toolkit.objectives.diffusion_times import (
    DistributionShift,
    log_snr_times,
    logit_normal,
    times_from_draws,
    truncated_logit_normal,
)
from toolkit.objectives.k_samplers import VDiffusionSampler, polyexponential_sigmas
from toolkit.objectives.noising import (
    RectifiedFlowObjective,
    VDiffusionObjective,
    alphas_sigmas,
    masked_mse,
    noised_and_target,
)
from toolkit.objectives.rf_samplers import RectifiedFlowSampler, logsnr_grid

SET = "sao"
TOL = 2e-5           # DiT, conditioners, wrapper, objectives, training steps
SAMPLE_TOL = 1e-4    # samplers (up to 9 chained guided calls)
GRID_TOL = 1e-5      # time grids, timestep samplers
FP16_T5_TOL = 2e-2   # the T5 left in float16, as upstream does
# every case kind of the README, by name prefix; a case no prefix claims fails test_every_case_is_tested
PREFIXES = ("dit_forward_", "dit_cfg_", "number_conditioner_", "t5_encoder", "t5_conditioner_", "multi_conditioner_",
            "wrapper_forward_", "objective_", "timestep_samplers", "train_step_", "sample_", "time_grids")
RF_OBJECTIVES = ("rectified_flow", "rf_denoiser")
TOKEN_INPUTS = ("cross_attn", "prepend")  # upstream's bernoulli dropout order


# ------------------------------------------------------------------------------------------- fixtures
@cache
def config() -> dict:
    return json.loads(golden_file(SET, "config.json").read_text())


@cache
def all_cases() -> dict:
    return load_cases(SET)


@cache
def weights() -> dict:
    return load_golden_weights(golden_file(SET, "state_dict.pt"))


def case_names(prefix: str) -> list[str]:
    return select_cases(all_cases(), prefix)


def channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(1, 2)


def prefixed(prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in weights().items() if k.startswith(prefix)}


def kwargs(name: str) -> dict:
    return config()[name]["constructor_kwargs"]


def model_of(case_name: str) -> str:
    """The model a case names (`*_v`, `*_rf`, `*_inpaint` -> sao_v, ...): its first name token that is a model."""
    names = config()["model_names"]
    for token in case_name.split("_"):
        for model in names:
            if model.split("_", 1)[1] == token:
                return model
    pytest.fail(f"case {case_name} names none of the models {names}")


def path_of(model: str) -> str:
    objective = kwargs(model)["wrapper"]["diffusion_objective"]
    return "rectified_flow" if objective in RF_OBJECTIVES else "v"


@cache
def dit(model: str) -> SAODiT:
    net = SAODiT(**SAODiT.upstream_kwargs(kwargs(model)["dit"]))
    net.load_state_dict(prefixed(config()[model]["state_dict_prefix"] + "model.model."), strict=True)
    return net.eval()


class StubTokenizer:
    """The fixture's stand-in tokenizer: text -> the recorded ids (EOS-ended), truncated and padded with 0."""

    def __init__(self, table: dict):
        self.table = table

    def __call__(self, texts, truncation, max_length, padding, return_tensors):
        assert truncation and padding == "max_length" and return_tensors == "pt"
        rows = []
        for text in texts:
            ids = list(self.table[text])
            if len(ids) > max_length:
                ids = ids[: max_length - 1] + ids[-1:]
            rows.append(ids + [0] * (max_length - len(ids)))
        ids = torch.tensor(rows, dtype=torch.long)
        return {"input_ids": ids, "attention_mask": (ids != 0).long()}


@cache
def conditioners(model: str, t5_dtype: str = "float32") -> dict:
    """{id: toolkit conditioner} with the fixture weights (the tiny T5 for the prompt)."""
    base = config()[model]["state_dict_prefix"] + "conditioner.conditioners."
    out = {}
    for cid, spec in kwargs(model)["conditioners"].items():
        if spec["class"] == "NumberConditioner":
            cond = NumberConditioner(**spec["kwargs"], key=cid)
        elif spec["class"] == "T5Conditioner":
            cond = T5TextConditioner(spec["kwargs"]["output_dim"], t5_config=config()["t5"]["config"],
                                     max_length=spec["kwargs"]["max_length"], t5_dtype=t5_dtype, key=cid)
            cond.load_encoder_state(prefixed(config()["t5"]["state_dict_prefix"]))
            cond.tokenizer = StubTokenizer(config()["t5"]["stub_token_table"])
        else:
            pytest.fail(f"{model}: conditioner class {spec['class']} is not covered")
        cond.load_state_dict(prefixed(base + cid + "."), strict=True)
        out[cid] = cond.eval()
    return out


def condition_tensors(model: str, metadata: list[dict]) -> dict[str, list[torch.Tensor]]:
    """MultiConditioner: per id, the items' values (one-element lists unwrapped by prepare) -> [tensor, mask]."""
    out = {}
    with torch.no_grad():
        for cid, cond in conditioners(model).items():
            prepared = torch.stack([cond.prepare(item[cid]) for item in metadata])
            out[cid] = list(cond(prepared))
    return out


def assemble(model: str, tensors: dict, negative: bool = False) -> dict[str, torch.Tensor]:
    """Upstream get_conditioning_inputs in the toolkit layout: tokens concatenated for cross_attn / prepend,
    features for global (squeezed) and input_concat (channels)."""
    wrapper = kwargs(model)["wrapper"]
    out = {}

    def tokens(cid):
        t = tensors[cid][0]
        return t.unsqueeze(1) if t.dim() == 2 else t

    if wrapper["cross_attn_cond_ids"]:
        out["cross_attn"] = torch.cat([tokens(c) for c in wrapper["cross_attn_cond_ids"]], 1)
        out["cross_attn_mask"] = torch.cat([tensors[c][1] for c in wrapper["cross_attn_cond_ids"]], 1)
    if wrapper["global_cond_ids"]:
        g = torch.cat([tensors[c][0] for c in wrapper["global_cond_ids"]], -1)
        out["global"] = g.squeeze(1) if g.dim() == 3 else g
    if wrapper["input_concat_ids"]:
        out["input_concat"] = channels_last(torch.cat([tensors[c][0] for c in wrapper["input_concat_ids"]], 1))
    if wrapper["prepend_cond_ids"] and not negative:
        out["prepend"] = torch.cat([tokens(c) for c in wrapper["prepend_cond_ids"]], 1)
        out["prepend_mask"] = torch.cat([tensors[c][1] for c in wrapper["prepend_cond_ids"]], 1)
    return out


def tensors_from(inputs: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in inputs.items() if k.startswith(prefix)}


def dit_conditions(inputs: dict) -> dict[str, torch.Tensor]:
    """A DiffusionTransformer call's keyword inputs -> dit_sao conditions."""
    names = {"cross_attn_cond": "cross_attn", "cross_attn_cond_mask": "cross_attn_mask", "global_embed": "global",
             "prepend_cond": "prepend", "prepend_cond_mask": "prepend_mask"}
    out = {ours: inputs[theirs] for theirs, ours in names.items() if inputs.get(theirs) is not None}
    if inputs.get("input_concat_cond") is not None:
        out["input_concat"] = channels_last(inputs["input_concat_cond"])
    return out


WRAPPER_INPUTS = {"cross_attn_cond": "cross_attn", "cross_attn_mask": "cross_attn_mask", "global_cond": "global",
                  "prepend_cond": "prepend", "prepend_cond_mask": "prepend_mask", "input_concat_cond": "input_concat"}


def wrapper_inputs(values: dict) -> dict[str, torch.Tensor]:
    """get_conditioning_inputs' names and layout -> dit_sao conditions (absent ones dropped)."""
    out = {WRAPPER_INPUTS[k]: v for k, v in values.items() if v is not None}
    if "input_concat" in out:
        out["input_concat"] = channels_last(out["input_concat"])
    return out


def check(name: str, key: str, ours: torch.Tensor, theirs: torch.Tensor, tol: float) -> float:
    if theirs.dtype in (torch.bool, torch.int64, torch.int32):
        assert torch.equal(ours.to(theirs.dtype), theirs), f"{name}: {key} differs"
        return 0.0
    assert ours.shape == theirs.shape, f"{name}: {key} shape {tuple(ours.shape)} != {tuple(theirs.shape)}"
    err = rel_err(ours.float(), theirs.float())
    assert err <= tol, f"{name}: {key} relative error {err:.2e} > {tol:.0e}"
    return err


def test_fixture_set_is_complete():
    cfg = config()
    assert cfg["model_names"] and all(m in cfg for m in cfg["model_names"])
    for prefix in PREFIXES:
        assert case_names(prefix)


def test_every_case_is_tested():
    untested = sorted(n for n in all_cases() if not n.startswith(PREFIXES))
    assert untested == [], f"cases no test covers: {untested}"


# ------------------------------------------------------------------------------------------------ DiT
HOOKED = {"timestep_features": "timestep_features", "to_timestep_embed": "timestep_embed",
          "to_cond_embed": "cond_embed", "to_global_embed": "global_embed", "to_prepend_embed": "prepend_embed",
          "transformer.project_in": "project_in", "transformer.project_out": "project_out"}


def run_with_intermediates(net: SAODiT, inputs: dict) -> tuple[torch.Tensor, dict]:
    captured = {}
    hooks = []
    modules = dict(net.named_modules())
    for module_name, key in HOOKED.items():
        if module_name in modules:
            hooks.append(modules[module_name].register_forward_hook(
                lambda _m, _a, out, key=key: captured.__setitem__(key, out)))
    for i, layer in enumerate(net.transformer.layers):
        hooks.append(layer.register_forward_hook(lambda _m, _a, out, i=i: captured.__setitem__(f"layer{i}", out)))

    def before_transformer(_m, args, kw):
        captured["transformer_in"] = args[0]
        captured["transformer_prepend_embeds"] = kw["prepend_embeds"]

    hooks.append(net.transformer.register_forward_pre_hook(before_transformer, with_kwargs=True))
    hooks.append(net.preprocess_conv.register_forward_pre_hook(
        lambda _m, args: captured.__setitem__("preprocess_conv_in", args[0])))
    with torch.no_grad():
        out = net(channels_last(inputs["x"]), None, dit_conditions(inputs), inputs["t"])
    for h in hooks:
        h.remove()
    return channels_last(out), captured


@pytest.mark.parametrize("name", case_names("dit_forward_"))
def test_dit_forward(name):
    case = all_cases()[name]
    out, captured = run_with_intermediates(dit(model_of(name)), case["inputs"])
    check(name, "out", out, case["outputs"]["out"], TOL)
    for key, expected in case["outputs"].items():
        if key == "out":
            continue
        assert key in captured, f"{name}: no module produces intermediate '{key}'"
        check(name, key, captured[key], expected, TOL)


@pytest.mark.parametrize("name", case_names("dit_forward_"))
def test_dit_per_item_drop_is_upstream_null(name):
    """Dropping cross_attn / prepend for some items equals feeding those items zeros (upstream's null)."""
    inputs = all_cases()[name]["inputs"]
    net = dit(model_of(name))
    conditions = dit_conditions(inputs)
    b = inputs["x"].shape[0]
    flags = torch.arange(b) % 2 == 0
    groups = [g for g in TOKEN_INPUTS if g in conditions]
    zeroed = {k: (torch.where(flags.view(-1, 1, 1), torch.zeros_like(v), v) if k in groups else v)
              for k, v in conditions.items()}
    x = channels_last(inputs["x"])
    with torch.no_grad():
        dropped = net(x, None, conditions, inputs["t"], {g: flags for g in groups})
        expected = net(x, None, zeroed, inputs["t"])
        plain = net(x, None, conditions, inputs["t"])
    assert rel_err(dropped, expected) <= 1e-6
    assert rel_err(dropped, plain) > 1e-4


@pytest.mark.parametrize("name", case_names("dit_cfg_"))
def test_dit_cfg(name):
    case = all_cases()[name]
    inputs, outputs = case["inputs"], case["outputs"]
    net = dit(model_of(name))
    conditions = dit_conditions(inputs)
    x = channels_last(inputs["x"])
    batch = None
    with torch.no_grad():
        if inputs.get("cfg_dropout_prob", 0.0) > 0:
            draws = iter(inputs["draws.bernoulli"])  # one [B, 1, 1] draw per present token input, in order
            drop = {g: next(draws).view(-1).bool() for g in TOKEN_INPUTS if g in conditions}
            assert inputs.get("cfg_scale", 1.0) == 1.0
            out = net(x, None, conditions, inputs["t"], drop)
        else:
            negative = None
            if inputs.get("negative_cross_attn_cond") is not None:
                negative = {"cross_attn": inputs["negative_cross_attn_cond"],
                            "cross_attn_mask": inputs["negative_cross_attn_mask"]}
            out, batch = net.cfg_forward(x, conditions, inputs["t"], cfg_scale=inputs["cfg_scale"],
                                         negative_conditions=negative, scale_phi=inputs.get("scale_phi", 0.0),
                                         cfg_interval=tuple(inputs.get("cfg_interval", (0.0, 1.0))),
                                         return_batch=True)
    check(name, "out", channels_last(out), outputs["out"], TOL)
    if "cfg_batch_output" in outputs:
        assert batch is not None, f"{name}: upstream guided this call, we did not"
        check(name, "cfg_batch_output", channels_last(batch), outputs["cfg_batch_output"], TOL)
    elif "cfg_scale" in inputs and inputs["cfg_scale"] != 1.0:
        assert batch is None, f"{name}: upstream skipped guidance (cfg interval), we guided"


# -------------------------------------------------------------------------------------- conditioners
@pytest.mark.parametrize("name", case_names("number_conditioner_"))
def test_number_conditioner(name):
    case = all_cases()[name]
    model = model_of(name)
    ids = sorted({key.split(".")[0] for key in case["outputs"]})
    assert ids
    for cid in ids:
        cond = conditioners(model)[cid]
        prepared = torch.stack([cond.prepare(v) for v in case["inputs"]["floats"]])
        with torch.no_grad():
            normalized = cond.normalize(prepared)
            ours = {"normalized": normalized, "fourier": cond.embedder.embedding[0](normalized)}
            ours["embeds"], ours["mask"] = cond(prepared)
        for part, expected in tensors_from(case["outputs"], cid + ".").items():
            check(name, f"{cid}.{part}", ours[part], expected, TOL)


def t5_for(name: str, ids: torch.Tensor, width: int | None, t5_dtype: str) -> T5TextConditioner:
    """The T5 conditioner of the model a case names, else of the first model whose sizes fit the tensors."""
    named = [m for m in config()["model_names"] if m.split("_", 1)[1] in name.split("_")]
    for model in named + list(config()["model_names"]):
        found = [c for c in conditioners(model, t5_dtype).values() if isinstance(c, T5TextConditioner)]
        if found and found[0].max_length == ids.shape[1] and width in (None, found[0].output_dim):
            return found[0]
    pytest.fail(f"{name}: no model has a T5 conditioner of max_length {ids.shape[1]} and width {width}")


def test_t5_encoder():
    for name in case_names("t5_encoder"):
        case = all_cases()[name]
        cond = t5_for(name, case["inputs"]["input_ids"], None, "float32")
        with torch.no_grad():
            out = cond.encoder(input_ids=case["inputs"]["input_ids"],
                               attention_mask=case["inputs"]["attention_mask"]).last_hidden_state
        check(name, "last_hidden_state", out, case["outputs"]["last_hidden_state"], TOL)


@pytest.mark.parametrize("name", case_names("t5_conditioner_"))
def test_t5_conditioner(name):
    case = all_cases()[name]
    inputs, outputs = case["inputs"], case["outputs"]
    fp16 = outputs["t5_last_hidden_state"].dtype == torch.float16
    cond = t5_for(name, inputs["input_ids"], outputs["embeddings"].shape[-1], "float16" if fp16 else "float32")
    prepared = torch.stack([cond.prepare(text) for text in inputs["texts"]])
    assert torch.equal(prepared, inputs["input_ids"])  # the stub tokenizer through prepare
    assert torch.equal(prepared != cond.pad_token_id, inputs["attention_mask"].bool())
    seen = []
    hook = cond.encoder.register_forward_hook(lambda _m, _a, out: seen.append(out.last_hidden_state))
    with torch.no_grad():
        tokens, mask = cond(prepared)
    hook.remove()
    tol = FP16_T5_TOL if fp16 else TOL
    check(name, "t5_last_hidden_state", seen[0], outputs["t5_last_hidden_state"], tol)
    check(name, "embeddings", tokens, outputs["embeddings"], tol)
    assert tokens.dtype == outputs["embeddings"].dtype
    check(name, "mask", mask, outputs["mask"], 0)


@pytest.mark.parametrize("name", case_names("multi_conditioner_"))
def test_multi_conditioner(name):
    case = all_cases()[name]
    inputs, outputs = case["inputs"], case["outputs"]
    model = model_of(name)
    tensors = condition_tensors(model, inputs["metadata"])
    for cid in kwargs(model)["wrapper"]["input_concat_ids"]:
        tensors[cid] = [inputs[cid]]
    expected = tensors_from(outputs, "conditioning_tensors.")
    assert set(expected) == set(tensors), f"{name}: conditioner ids differ"
    for cid, parts in expected.items():
        for k, (ours, theirs) in enumerate(zip(tensors[cid], parts, strict=True)):
            check(name, f"{cid}[{k}]", ours, theirs, TOL)
            assert ours.dtype == theirs.dtype, f"{name}: {cid}[{k}] dtype"
    ours = assemble(model, tensors)
    for key, theirs in tensors_from(outputs, "conditioning_inputs.").items():
        mine = ours.get(WRAPPER_INPUTS[key])
        if theirs is None:
            assert mine is None, f"{name}: {key} should be absent"
            continue
        mine = channels_last(mine) if key == "input_concat_cond" else mine
        check(name, key, mine, theirs, TOL)
    negative = assemble(model, tensors, negative=True)
    for key, theirs in tensors_from(outputs, "negative_conditioning_inputs.").items():
        mine = negative.get(WRAPPER_INPUTS[key.removeprefix("negative_")])
        if theirs is None:
            assert mine is None, f"{name}: {key} should be absent"
            continue
        check(name, key, channels_last(mine) if key.endswith("input_concat_cond") else mine, theirs, TOL)


# ------------------------------------------------------------------------------------------- wrapper
@pytest.mark.parametrize("name", case_names("wrapper_forward_"))
def test_wrapper_forward(name):
    case = all_cases()[name]
    inputs = case["inputs"]
    model = model_of(name)
    conditions = assemble(model, tensors_from(inputs, "conditioning_tensors."))
    with torch.no_grad():
        out = dit(model).cfg_forward(channels_last(inputs["x"]), conditions, inputs["t"], cfg_scale=inputs["cfg_scale"])
    check(name, "out", channels_last(out), case["outputs"]["out"], TOL)


# ----------------------------------------------------------------------------------------- objectives
@pytest.mark.parametrize("name", case_names("objective_"))
def test_objective_formulas(name):
    case = all_cases()[name]
    inputs, outputs = case["inputs"], case["outputs"]
    path = path_of(model_of(name))
    alphas, sigmas = alphas_sigmas(path, inputs["t"])
    noised, target = noised_and_target(path, inputs["x"], inputs["noise"], inputs["t"])
    pred = channels_last(inputs["output"])
    ours = {"alphas": alphas, "sigmas": sigmas, "noised_inputs": noised, "targets": target,
            "loss": masked_mse(pred, channels_last(target), None),
            "loss_masked": masked_mse(pred, channels_last(target), inputs["padding_mask"])}
    assert set(outputs) <= set(ours), f"{name}: outputs {sorted(set(outputs) - set(ours))} not covered"
    for key, expected in outputs.items():
        check(name, key, ours[key], expected, TOL)


def test_timestep_samplers():
    for name in case_names("timestep_samplers"):
        case = all_cases()[name]
        inputs, outputs = case["inputs"], case["outputs"]
        z = inputs["draws.randn"]
        ours = {"logit_normal": logit_normal(z[0]), "trunc_logit_normal_raw": truncated_logit_normal(z[1]),
                "trunc_logit_normal": times_from_draws("trunc_logit_normal", z[1]),
                "log_snr": log_snr_times(z[2], inputs["mean_logsnr"], inputs["std_logsnr"])}
        for i, options in enumerate(inputs["dist_shift_options"]):
            for length in inputs["seq_lens"]:
                ours[f"time_shift.{i}.len{length}"] = DistributionShift(**options).time_shift(inputs["t"], length)
        assert set(outputs) == set(ours), f"{name}: outputs {sorted(set(outputs) ^ set(ours))}"
        for key, expected in outputs.items():
            check(name, key, ours[key], expected, GRID_TOL)


UPSTREAM_TIMES = {"uniform": "sobol", "logit_normal": "logit_normal", "trunc_logit_normal": "trunc_logit_normal",
                  "log_snr": "log_snr"}


@pytest.mark.parametrize("name", case_names("train_step_"))
def test_train_step(name):
    case = all_cases()[name]
    inputs, outputs = case["inputs"], case["outputs"]
    model = model_of(name)
    wrapper, options = kwargs(model)["wrapper"], inputs["wrapper_kwargs"]
    metadata = inputs["metadata"]
    kind = UPSTREAM_TIMES[options.get("timestep_sampler", "uniform")]
    raw = inputs["draws.sobol"][0, :, 0] if kind == "sobol" else inputs["draws.randn"][0]
    time = times_from_draws(kind, raw)
    if wrapper["distribution_shift_options"]:
        time = DistributionShift(**wrapper["distribution_shift_options"]).time_shift(time, inputs["reals"].shape[2])
    check(name, "t", time, outputs["t"], TOL)

    masks = torch.stack([item["padding_mask"][0] for item in metadata])
    lens = masks.sum(1)
    assert torch.equal(masks, torch.arange(masks.shape[1])[None] < lens[:, None]), "padding masks are prefixes"
    conditions = assemble(model, condition_tensors(model, metadata))
    draws = iter(inputs["draws.bernoulli"])
    drop = {g: next(draws).view(-1).bool() for g in TOKEN_INPUTS if g in conditions}
    use_mask = bool(options.get("mask_padding", False))
    if use_mask and inputs["draws.py_random"]:
        use_mask = inputs["draws.py_random"][0] > options.get("mask_padding_dropout", 0.0)
    p = options.get("cfg_dropout_prob", 0.1)
    objective_cls = RectifiedFlowObjective if path_of(model) == "rectified_flow" else VDiffusionObjective
    objective = objective_cls(time_distribution=kind, drop_probs={"cross_attn": p, "prepend": p},
                              dist_shift=wrapper["distribution_shift_options"], mask_padding=use_mask)
    with torch.no_grad():
        out = objective(dit(model), channels_last(inputs["reals"]), conditions, lens,
                        draws={"time": time, "noise": channels_last(inputs["draws.randn_like"][0]), "drop": drop,
                               "mask_padding": use_mask})
    check(name, "noised_inputs", channels_last(out["x_t"]), outputs["noised_inputs"], TOL)
    check(name, "targets", channels_last(out["target"]), outputs["targets"], TOL)
    check(name, "output", channels_last(out["pred"]), outputs["output"], TOL)
    check(name, "loss", out["loss"], outputs["loss"], TOL)
    used = outputs["padding_mask_used"]
    assert (out["valid"] is None) == (used.numel() == 0), f"{name}: masked loss or not"
    if used.numel():
        assert torch.equal(out["valid"], used)


# ------------------------------------------------------------------------------------------- samplers
def sample_model(name: str, conditioning: dict) -> str:
    """sample_rf_* run the rectified-flow model, the others the v model (without input concatenation)."""
    want_rf = name.startswith("sample_rf")
    found = [m for m in config()["model_names"] if (path_of(m) == "rectified_flow") == want_rf
             and not kwargs(m)["wrapper"]["input_concat_ids"]]
    if conditioning:
        found = [m for m in found if set(kwargs(m)["conditioners"]) == set(conditioning)]
    assert len(found) == 1, f"{name}: cannot tell which model it samples ({found})"
    return found[0]


@pytest.mark.parametrize("name", case_names("sample_"))
def test_sample(name):
    case = all_cases()[name]
    inputs, outputs = case["inputs"], case["outputs"]
    tensors = tensors_from(inputs, "conditioning_tensors.")
    model = sample_model(name, tensors)
    negative = None
    if tensors:  # generate_diffusion_cond
        conditions = assemble(model, tensors)
        negative_tensors = tensors_from(inputs, "negative_conditioning_tensors.")
        if negative_tensors:
            negative = assemble(model, negative_tensors, negative=True)
            negative.pop("global", None)  # upstream ignores the negative global condition
        options = dict(inputs["generate_kwargs"])
        noise, init = channels_last(inputs["draws.randn"][0]), None
    else:  # sample_rf called directly (variation)
        conditions = wrapper_inputs(tensors_from(inputs, "conditioning_inputs."))
        options = dict(inputs["sample_rf_kwargs"])
        noise, init = channels_last(inputs["noise"]), channels_last(inputs["init_data"])
    steps_seen, calls = [], []
    method = options["sampler_type"]
    if path_of(model) == "rectified_flow":
        sampler = RectifiedFlowSampler(method=method, steps=options["steps"], sigma_max=options.get("sigma_max", 1.0),
                                       cfg_scale=options["cfg_scale"], scale_phi=options.get("scale_phi", 0.0))
        step_noise = inputs.get("draws.randn_like")
    else:
        sampler = VDiffusionSampler(method=method, steps=options["steps"], sigma_min=options.get("sigma_min", 0.3),
                                    sigma_max=options.get("sigma_max", 500.0), rho=options.get("rho", 1.0),
                                    cfg_scale=options["cfg_scale"], scale_phi=options.get("scale_phi", 0.0))
        step_noise = inputs.get("draws.sde_noise")
    if step_noise is not None and step_noise.numel():
        step_noise = step_noise.transpose(-1, -2)
    else:
        step_noise = None
    out = sampler.sample(dit(model), noise, None, conditions, negative_conditions=negative, init=init,
                         step_noise=step_noise, callback=steps_seen.append, trace=calls)
    check(name, "sampled", channels_last(out), outputs["sampled"], SAMPLE_TOL)
    check(name, "steps.x", channels_last(torch.stack([s["x"] for s in steps_seen]).flatten(0, 1)).unflatten(
        0, (len(steps_seen), -1)), outputs["steps.x"], SAMPLE_TOL)
    check(name, "steps.i", torch.tensor([s["i"] for s in steps_seen]), outputs["steps.i"], 0)
    for key in ("t", "sigma"):
        if f"steps.{key}" in outputs:
            check(name, f"steps.{key}", torch.stack([s[key] for s in steps_seen]), outputs[f"steps.{key}"],
                  SAMPLE_TOL)
    check(name, "calls.t", torch.stack([c["t"] for c in calls]), outputs["calls.t"], SAMPLE_TOL)
    check(name, "calls.out", torch.stack([channels_last(c["out"]) for c in calls]), outputs["calls.out"],
          SAMPLE_TOL)
    if "time_grid" in outputs:
        if path_of(model) == "rectified_flow":
            grid = logsnr_grid(options["steps"], options.get("sigma_max", 1.0))
        else:
            grid = polyexponential_sigmas(options["steps"], options["sigma_min"], options["sigma_max"],
                                          options["rho"])
        check(name, "time_grid", grid, outputs["time_grid"], GRID_TOL)


def test_time_grids():
    for name in case_names("time_grids"):
        case = all_cases()[name]
        inputs, outputs = case["inputs"], case["outputs"]
        ours = {f"sample_rf.steps{s}.sigma_max{m}": logsnr_grid(s, m) for s, m in inputs["rf_grids"]}
        ours.update({f"polyexponential.steps{s}.min{lo}.max{hi}.rho{rho}": polyexponential_sigmas(s, lo, hi, rho)
                     for s, lo, hi, rho in inputs["k_grids"]})
        assert set(outputs) == set(ours), f"{name}: grids {sorted(set(outputs) ^ set(ours))}"
        for key, expected in outputs.items():
            check(name, key, ours[key], expected, GRID_TOL)


def test_interval_sigma_is_the_objective_noise_level():
    """Guidance intervals compare sin(t pi/2) for v models and t for rectified flow (item 0 decides)."""
    for model in config()["model_names"]:
        net = dit(model)
        t = torch.tensor([0.5, 0.1])
        expected = math.sin(0.25 * math.pi) if path_of(model) == "v" else 0.5
        assert abs(float(net.sigma(t)[0]) - expected) < 1e-6
