"""The flow sampler: steps semantics, ODE methods, seeds, batched guidance, editing masks, time grids."""

from __future__ import annotations

import math

import pytest
import torch
from dit_helpers import LATENT, ToyBackbone, tiny_conditions, tiny_dit
from golden import load_cases

from toolkit.objectives.samplers import FlowSampler, draw_noise
from toolkit.objectives.time_grids import EPSS_TABLE, time_grid
from toolkit.registry import SAMPLERS

T = 16


def setup(b: int = 2):
    model = tiny_dit()
    conditions = tiny_conditions(b, T)
    negative = {"style": torch.nn.functional.normalize(torch.ones(1, 512), dim=-1)}
    return model, conditions, negative


def test_registered():
    sampler = SAMPLERS.build({"type": "flow", "steps": 5, "method": "midpoint"})
    assert isinstance(sampler, FlowSampler) and sampler.method == "midpoint"
    with pytest.raises(ValueError, match="method"):
        FlowSampler(method="rk4")


@pytest.mark.parametrize("method,evals", [("euler", 1), ("midpoint", 2), ("dpmpp", 1)])
@pytest.mark.parametrize("guidance,per_eval", [("none", 1), ("batched", 1), ("separate", 2)])
def test_steps_is_the_number_of_updates(method, evals, guidance, per_eval):
    toy = ToyBackbone()
    seen = []
    sampler = FlowSampler(steps=5, method=method, cfg_strength=0.0 if guidance == "none" else 2.0,
                          guidance="batched" if guidance == "none" else guidance)
    sampler.sample(toy, torch.zeros(3, T, LATENT), torch.zeros(3, T, LATENT), {},
                   callback=lambda i, n, t, x: seen.append((i, n, float(t))))
    assert len(toy.calls) == 5 * evals * per_eval
    assert [s[0] for s in seen] == list(range(5)) and all(s[1] == 5 for s in seen) and seen[-1][2] == 1.0
    if guidance == "batched":
        assert all(c["batch"] == 6 for c in toy.calls)
        assert toy.calls[0]["drop"]["audio"].tolist() == [False] * 3 + [True] * 3


def test_euler_and_midpoint_on_a_known_ode():
    # dx/dt = t from x(0) = 0: x(1) = 1/2. Euler over n uniform steps gives (n-1)/(2n); midpoint is exact.
    toy = ToyBackbone()
    zeros = torch.zeros(1, T, LATENT)
    euler = FlowSampler(steps=4, cfg_strength=0.0).sample(toy, zeros, zeros, {})
    midpoint = FlowSampler(steps=4, method="midpoint", cfg_strength=0.0).sample(toy, zeros, zeros, {})
    assert torch.allclose(euler, torch.full_like(euler, 3 / 8))
    assert torch.allclose(midpoint, torch.full_like(midpoint, 0.5))


class DecayTowardsCosine(ToyBackbone):
    """dx/dt = cos(t) - x: from x(0) = 0, x(1) = (cos 1 + sin 1 - e^-1) / 2."""

    def forward(self, x, cond, conditions, time, drop=None):
        return torch.cos(torch.as_tensor(time, dtype=x.dtype)) - x


# error(128 updates) / error(512 updates): 4 for first order, 16 for second; dpmpp's first two and last updates are
# first order (its log-SNR steps are unbounded at the ends), which keeps it between the two at these sizes
@pytest.mark.parametrize("method,low,high", [("euler", 3.2, 5.0), ("midpoint", 12.8, 20.0), ("dpmpp", 8.0, 20.0)])
def test_each_method_converges_at_its_order(method, low, high):
    exact = (math.cos(1) + math.sin(1) - math.exp(-1)) / 2
    zeros = torch.zeros(1, 2, LATENT, dtype=torch.float64)
    model = DecayTowardsCosine().double()

    def error(steps):
        out = FlowSampler(steps=steps, method=method, cfg_strength=0.0).sample(model, zeros, zeros, {})
        return abs(float(out[0, 0, 0]) - exact)

    assert low < error(128) / error(512) < high


def test_seeds_reproduce_and_items_differ():
    model, conditions, negative = setup(2)
    sampler = FlowSampler(steps=3, cfg_strength=2.0)
    ref = torch.zeros(2, T, LATENT)
    a = sampler.sample(model, None, ref, conditions, negative_conditions=negative, seed=11)
    b = sampler.sample(model, None, ref, conditions, negative_conditions=negative, seed=11)
    c = sampler.sample(model, None, ref, conditions, negative_conditions=negative, seed=12)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    same_inputs = {k: v[:1].expand(2, *v.shape[1:]) for k, v in conditions.items()}
    d = sampler.sample(model, None, ref, same_inputs, negative_conditions=negative, seed=11)
    assert not torch.allclose(d[0], d[1]), "items with identical conditions must get different noise"
    noise = draw_noise(3, T, LATENT, seed=5)
    assert torch.equal(noise[2], draw_noise(1, T, LATENT, seed=7)[0])  # item i == seed + i alone
    assert not torch.equal(noise[0], noise[1])


def test_batched_guidance_equals_two_passes():
    model, conditions, negative = setup(2)
    ref = torch.zeros(2, T, LATENT)
    noise = draw_noise(2, T, LATENT, seed=0)
    batched = FlowSampler(steps=4, cfg_strength=4.0, guidance="batched").sample(
        model, noise, ref, conditions, negative_conditions=negative)
    separate = FlowSampler(steps=4, cfg_strength=4.0, guidance="separate").sample(
        model, noise, ref, conditions, negative_conditions=negative)
    plain = FlowSampler(steps=4, cfg_strength=0.0).sample(model, noise, ref, conditions)
    assert torch.allclose(batched, separate, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(batched, plain, atol=1e-3)


def test_negative_conditions_reach_only_the_unconditional_half():
    model, conditions, negative = setup(1)
    ref, noise = torch.zeros(1, T, LATENT), draw_noise(1, T, LATENT, seed=0)
    other = {"style": -negative["style"]}
    out = [FlowSampler(steps=2, cfg_strength=cfg).sample(model, noise, ref, conditions, negative_conditions=neg)
           for cfg in (0.0, 3.0) for neg in (negative, other)]
    assert torch.equal(out[0], out[1])  # no guidance: the negative style is unused
    assert not torch.allclose(out[2], out[3], atol=1e-4)


def test_editing_mask_keeps_given_frames_exactly():
    model, conditions, negative = setup(2)
    ref = torch.randn(2, T, LATENT, generator=torch.Generator().manual_seed(3))
    mask = torch.zeros(2, T, dtype=torch.bool)
    mask[0, 4:9] = True
    mask[1, 10:] = True  # continuation
    toy_seen = []
    out = FlowSampler(steps=3, cfg_strength=2.0).sample(
        model, None, ref, conditions, negative_conditions=negative, mask=mask, seed=0,
        callback=lambda i, n, t, x: toy_seen.append(x))
    assert torch.equal(out[~mask], ref[~mask])
    assert not torch.allclose(out[mask], ref[mask], atol=1e-2)
    toy = ToyBackbone()
    FlowSampler(steps=1, cfg_strength=0.0).sample(toy, None, ref, {}, mask=mask, seed=0)
    prompt = toy.calls[0]["cond"]
    assert torch.equal(prompt, torch.where(mask[..., None], torch.zeros_like(ref), ref))


def test_fp16_model_gets_fp16_grid_and_output():
    toy = ToyBackbone().half()
    seen = []
    out = FlowSampler(steps=3, cfg_strength=0.0).sample(toy, None, torch.zeros(1, T, LATENT), {}, seed=0,
                                                         callback=lambda i, n, t, x: seen.append(t))
    assert out.dtype == torch.float16 and all(t.dtype == torch.float16 for t in seen)


def test_time_grids_match_f5tts_fixtures():
    case = load_cases("f5tts")["time_grid"]
    assert case["outputs"]
    for key, expected in case["outputs"].items():
        spec = dict(part.split("=") for part in key.split(","))
        steps, epss = int(spec["steps"]), spec["use_epss"] == "True"
        coef = None if spec["sway"] == "None" else float(spec["sway"])
        assert torch.equal(time_grid(steps, "epss" if epss else "linspace", coef), expected), key


def test_time_grid_shapes_and_sway():
    for steps in (1, 5, 31):
        grid = time_grid(steps)
        assert len(grid) == steps + 1 and grid[0] == 0 and grid[-1] == 1
    for steps, table in EPSS_TABLE.items():
        assert len(table) == steps + 1
    swayed = time_grid(8, sway_coef=-1.0)
    assert swayed[0] == 0 and torch.isclose(swayed[-1], torch.tensor(1.0))
    assert (swayed[1:-1] < time_grid(8)[1:-1]).all()  # s < 0 crowds the steps near t = 0
    with pytest.raises(ValueError, match="steps"):
        time_grid(0)
