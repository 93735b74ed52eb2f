"""The toolkit's shared parts drive Stable Audio Open models: the CFM flow sampler integrates the rectified-flow
DiT (through FlowTimeView) to upstream's recorded Euler samples, and the rectified-flow path is CFM's path
read backwards."""

from __future__ import annotations

import pytest
import torch
from golden import rel_err
from test_parity_sao import (
    all_cases,
    assemble,
    case_names,
    channels_last,
    dit,
    sample_model,
    tensors_from,
    wrapper_inputs,
)

from toolkit.objectives.noising import noised_and_target
from toolkit.objectives.rf_samplers import FlowTimeView, logsnr_grid
from toolkit.objectives.samplers import FlowSampler

SAMPLE_TOL = 1e-4


def euler_cases() -> list[str]:
    names = [n for n in case_names("sample_rf_") if
             (all_cases()[n]["inputs"].get("generate_kwargs") or all_cases()[n]["inputs"].get("sample_rf_kwargs"))
             ["sampler_type"] == "euler"]
    assert names, "the set has no rectified-flow Euler sampling case"
    return names


@pytest.mark.parametrize("name", euler_cases())
def test_flow_sampler_reproduces_rf_euler(name):
    inputs, outputs = all_cases()[name]["inputs"], all_cases()[name]["outputs"]
    tensors = tensors_from(inputs, "conditioning_tensors.")
    model = sample_model(name, tensors)
    if tensors:
        conditions, options = assemble(model, tensors), inputs["generate_kwargs"]
        start = channels_last(inputs["draws.randn"][0])
    else:
        conditions, options = wrapper_inputs(tensors_from(inputs, "conditioning_inputs.")), inputs["sample_rf_kwargs"]
        sigma_max = options["sigma_max"]
        start = channels_last(inputs["init_data"]) * (1 - sigma_max) + channels_last(inputs["noise"]) * sigma_max
    tau = 1 - logsnr_grid(options["steps"], options.get("sigma_max", 1.0))  # flow time: 0 = noise end
    sampler = FlowSampler(steps=options["steps"], method="euler", cfg_strength=options["cfg_scale"] - 1,
                          uncond_drop=("cross_attn",))
    out = sampler.sample(FlowTimeView(dit(model)).eval(), start, torch.zeros_like(start), conditions, t=tau)
    err = rel_err(channels_last(out), outputs["sampled"])
    assert err <= SAMPLE_TOL, f"{name}: {err:.2e}"


def test_rectified_flow_path_is_cfm_reversed():
    gen = torch.Generator().manual_seed(0)
    x, noise, t = torch.randn(3, 5, 4, generator=gen), torch.randn(3, 5, 4, generator=gen), torch.rand(3, generator=gen)
    noised, target = noised_and_target("rectified_flow", x, noise, t)
    tau = (1 - t)[:, None, None]
    cfm_point = (1 - tau) * noise + tau * x  # toolkit CFM: x0 = noise, x1 = data
    assert torch.allclose(noised, cfm_point, atol=1e-6)
    assert torch.equal(target, -(x - noise))
