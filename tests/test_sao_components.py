"""Behaviour of the Stable Audio Open components beyond the golden numbers: registration, declared inputs, input
checks, the objectives' keyed draws, sampler seeds and guidance batching, the distribution shift."""

from __future__ import annotations

import pytest
import torch

from toolkit.backbones.dit_sao import SAODiT
from toolkit.conditioners.number import NumberConditioner
from toolkit.objectives.diffusion_times import DistributionShift, times_from_draws
from toolkit.objectives.noise_streams import ItemNoise
from toolkit.objectives.noising import RectifiedFlowObjective, VDiffusionObjective
from toolkit.objectives.samplers import draw_noise
from toolkit.protocols import INPUT_CONCAT, INPUT_CROSS_ATTN, INPUT_GLOBAL, INPUT_PREPEND
from toolkit.registry import BACKBONES, CONDITIONERS, OBJECTIVES, SAMPLERS

D, T = 8, 12


def tiny(**kw) -> SAODiT:
    torch.manual_seed(0)
    args = dict(latent_dim=D, cond_token_dim=16, project_cond_tokens=True, global_cond_dim=16)
    net = SAODiT(64, 2, 2, **{**args, **kw})
    with torch.no_grad():
        for p in net.parameters():  # upstream zero-initialises branch outputs; randomise so nothing is trivial
            p.normal_(0, 0.2)
    return net.eval()


def conditions(b: int = 2, **extra) -> dict:
    gen = torch.Generator().manual_seed(1)
    return {"cross_attn": torch.randn(b, 5, 16, generator=gen), "global": torch.randn(b, 16, generator=gen), **extra}


def test_registered_names():
    assert {"dit_sao"} <= set(BACKBONES.names())
    assert {"number", "t5_text"} <= set(CONDITIONERS.names())
    assert {"v_diffusion", "rectified_flow", "cfm"} <= set(OBJECTIVES.names())
    assert {"v_diffusion", "rectified_flow", "flow"} <= set(SAMPLERS.names())
    assert isinstance(SAMPLERS.build({"type": "rectified_flow", "steps": 4}), SAMPLERS.get("rectified_flow"))


def test_inputs_follow_the_configuration():
    specs = tiny(prepend_cond_dim=16, input_concat_dim=3).inputs()
    assert {n: s.kind for n, s in specs.items()} == {"cross_attn": INPUT_CROSS_ATTN, "global": INPUT_GLOBAL,
                                                     "prepend": INPUT_PREPEND, "input_concat": INPUT_CONCAT}
    assert specs["cross_attn"].mask == "cross_attn_mask" and specs["prepend"].mask == "prepend_mask"
    assert specs["input_concat"].dim == 3 and all(s.multi for s in specs.values())
    assert set(tiny(cond_token_dim=0, global_cond_dim=0).inputs()) == set()


def test_bad_conditions_are_named():
    net = tiny()
    x = torch.randn(2, T, D)
    with pytest.raises(ValueError, match=r"\['lyrics'\].*no input for"):
        net(x, None, {**conditions(), "lyrics": torch.zeros(2, 3)}, torch.rand(2))
    with pytest.raises(ValueError, match="width 7, dit_sao expects 16"):
        net(x, None, {"cross_attn": torch.zeros(2, 5, 7)}, torch.rand(2))
    with pytest.raises(ValueError, match="input_concat.*required"):
        tiny(input_concat_dim=3)(x, None, conditions(), torch.rand(2))
    with pytest.raises(ValueError, match="unknown drop group"):
        net(x, None, conditions(), torch.rand(2), {"prepend": torch.ones(2, dtype=torch.bool)})
    with pytest.raises(ValueError, match="dim_heads"):
        SAODiT(64, 1, 4, latent_dim=D)


def test_missing_token_input_equals_dropped_and_audio_drop_is_inert():
    """Cross-attention to zeros is exactly no cross-attention (no biases), as upstream's null relies on."""
    net = tiny()
    x, t = torch.randn(2, T, D), torch.rand(2)
    with torch.no_grad():
        dropped = net(x, None, conditions(), t, {"cross_attn": torch.ones(2, dtype=torch.bool), "audio": True})
        absent = net(x, None, {"global": conditions()["global"]}, t)
    assert torch.allclose(dropped, absent, atol=1e-6)


# ------------------------------------------------------------------------------------------ objectives
@pytest.mark.parametrize("cls", [VDiffusionObjective, RectifiedFlowObjective])
def test_objective_draws_are_per_item(cls):
    net = tiny()
    x1 = torch.randn(3, T, D)
    lens = torch.tensor([T, 9, 7])
    objective = cls(time_distribution="logit_normal", seed=5)
    with torch.no_grad():
        full = objective(net, x1, conditions(3), lens, step=4)
        alone = objective(net, x1[1:2], {k: v[1:2] for k, v in conditions(3).items()}, lens[1:2], step=4,
                          sample_index=torch.tensor([1]))
    assert torch.equal(full["time"][1:2], alone["time"]) and torch.equal(full["noise"][1:2], alone["noise"])
    assert torch.equal(full["noise"][1, :9], alone["noise"][0, :9])
    assert set(full["drop"]) == {"cross_attn"}  # prepend is not an input of this backbone
    assert torch.isfinite(full["loss"]) and full["valid"] is None
    other = objective(net, x1, conditions(3), lens, step=5)
    assert not torch.equal(other["noise"], full["noise"])


def test_objective_padding_mask_and_injection():
    net = tiny()
    x1 = torch.randn(2, T, D)
    lens = torch.tensor([T, 5])
    objective = RectifiedFlowObjective(mask_padding=True, drop_probs={})
    draws = {"time": torch.tensor([0.3, 0.8]), "noise": torch.randn(2, T, D)}
    with torch.no_grad():
        out = objective(net, x1, conditions(), lens, draws=draws)
    assert torch.equal(out["time"], draws["time"]) and out["drop"] == {}
    t = draws["time"][:, None, None]
    assert torch.allclose(out["x_t"], x1 * (1 - t) + draws["noise"] * t)
    err = (out["pred"] - out["target"]) ** 2
    assert torch.allclose(out["loss"], torch.cat([err[0].flatten(), err[1, :5].flatten()]).mean())
    assert torch.equal(out["valid"][1], torch.arange(T) < 5)


@pytest.mark.parametrize("kind", ["sobol", "uniform", "logit_normal", "trunc_logit_normal", "log_snr"])
def test_time_distributions_stay_in_range(kind):
    objective = VDiffusionObjective(time_distribution=kind, drop_probs={})
    times = objective._draw(torch.zeros(64, 2, 1), torch.full((64,), 2), 0, torch.arange(64))["time"]
    assert times.shape == (64,) and bool(((times >= 0) & (times <= 1)).all()) and times.std() > 0.05
    if kind == "trunc_logit_normal":
        assert float(times.max()) <= 1.0 and float(times_from_draws(kind, torch.tensor([-10.0]))) == pytest.approx(1.0)


def test_distribution_shift():
    shift = DistributionShift(min_length=32, max_length=256)
    t = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0])
    short, long = shift.time_shift(t, 32), shift.time_shift(t, 256)
    assert float(short[0]) == 0 and float(short[-1]) == 1
    assert torch.all(long[1:-1] > short[1:-1]) and torch.all(short[1:] > short[:-1])


# -------------------------------------------------------------------------------------------- samplers
class Counting(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net, self.batches = net, []

    def inputs(self):
        return self.net.inputs()

    def forward(self, x, cond, conditions, time, drop=None):
        self.batches.append(x.shape[0])
        return self.net(x, cond, conditions, time, drop)


def test_item_noise_starts_like_draw_noise():
    stream = ItemNoise(3, seed=11)
    assert torch.equal(stream.draw(T, D), draw_noise(3, T, D, seed=11))
    assert not torch.equal(stream.draw(T, D), draw_noise(3, T, D, seed=11))


@pytest.mark.parametrize("node", [{"type": "rectified_flow", "method": "pingpong", "steps": 4},
                                  {"type": "v_diffusion", "method": "dpmpp-3m-sde", "steps": 4, "cfg_scale": 3.0},
                                  {"type": "v_diffusion", "method": "v-ddim", "steps": 3, "cfg_scale": 2.0}])
def test_sampler_items_reproduce_alone_with_their_seed(node):
    sampler = SAMPLERS.build(node)
    net = tiny()
    both = sampler.sample(net, None, None, conditions(2), shape=(2, T, D), seed=7)
    second = sampler.sample(net, None, None, {k: v[1:] for k, v in conditions(2).items()}, shape=(1, T, D), seed=8)
    assert torch.allclose(both[1:], second, atol=1e-5)
    assert torch.isfinite(both).all()


def test_guidance_runs_one_batched_forward_per_step():
    net = Counting(tiny())
    sampler = SAMPLERS.build({"type": "rectified_flow", "method": "euler", "steps": 3, "cfg_scale": 4.0})
    sampler.sample(net, torch.randn(2, T, D), None, conditions(2))
    assert net.batches == [4, 4, 4]
    net.batches.clear()
    sampler.sample(net, torch.randn(2, T, D), None, conditions(2), cfg_scale=1.0)
    assert net.batches == [2, 2, 2]
    net.batches.clear()
    sampler.sample(net, torch.randn(2, T, D), None, conditions(2), cfg_interval=(0.0, 0.97))
    assert net.batches == [2, 4, 4]  # logsnr grid 1, .966, .661: guided once sigma (= t) <= 0.97


def test_sampler_options_are_checked():
    with pytest.raises(ValueError, match="pingpong"):
        SAMPLERS.build({"type": "rectified_flow", "method": "heun"})
    with pytest.raises(TypeError, match="unknown options"):
        SAMPLERS.build("v_diffusion").sample(tiny(), torch.randn(1, T, D), None, conditions(1), sway_coef=1.0)
    with pytest.raises(ValueError, match="shape"):
        SAMPLERS.build("rectified_flow").sample(tiny(), None, None, conditions(1))


# --------------------------------------------------------------------------------------------- numbers
def test_number_conditioner_clamps_and_checks():
    cond = NumberConditioner(16, 0, 10, key="seconds_total")
    values = torch.stack([cond.prepare(v) for v in (-1, 5, [20.0], torch.tensor(2.5))])
    assert torch.equal(cond.normalize(values), torch.tensor([0.0, 0.5, 1.0, 0.25]))
    tokens, mask = cond(values)
    assert tokens.shape == (4, 1, 16) and torch.equal(mask, torch.ones(4, 1))
    with pytest.raises(ValueError, match="one number"):
        cond.prepare([1, 2])
    with pytest.raises(ValueError, match="expected a number"):
        cond.prepare(None)
    with pytest.raises(ValueError, match="max_val"):
        NumberConditioner(16, 5, 5)
    null_tokens, null_mask = cond.null(3)
    assert not null_tokens.any() and not null_mask.any()


def test_given_noise_continues_the_seeded_stream():
    """noise=draw_noise(seed) and noise=None with the same seed give the same ping-pong sample."""
    sampler = SAMPLERS.build({"type": "rectified_flow", "method": "pingpong", "steps": 3})
    net = tiny()
    drawn = sampler.sample(net, None, None, conditions(2), shape=(2, T, D), seed=3)
    given = sampler.sample(net, draw_noise(2, T, D, seed=3), None, conditions(2), seed=3)
    assert torch.equal(drawn, given)


def test_masked_loss_normalises_by_the_global_frame_count():
    net = tiny()
    x1, lens = torch.randn(2, T, D), torch.tensor([T, 5])
    objective = VDiffusionObjective(mask_padding=True)
    with torch.no_grad():
        local = objective(net, x1, conditions(), lens, step=1)
        wide = objective(net, x1, conditions(), lens, step=1, num_valid_global=4 * (T + 5))
    assert int(local["num_loss_frames"]) == T + 5
    assert torch.allclose(wide["loss"], local["loss"] / 4)
    assert torch.allclose(local["loss_sum"], local["loss"] * (T + 5) * D)
