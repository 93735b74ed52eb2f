"""A bf16 DiffRhythm DiT keeps its cheap ends and its residual stream in fp32 (Backbone.to_compute_dtype):
what it keeps, that it is closer to fp32 than a DiT cast whole, and that fp32 / fp16 (upstream's numerics) are
cast whole as before."""

from __future__ import annotations

import torch
from test_parity_diffrhythm import all_cases, build, case_names

from toolkit.backbones.dit_diffrhythm import DiffRhythmDiT


def velocity(model, inputs):
    return model(inputs["x"], inputs["cond"], inputs["conditions"], inputs["time"]).float()


def golden_inputs():
    """The parity model (golden weights) with a golden sampling case's conditions, two items."""
    name = next(n for n in case_names("sample_") if not n.startswith("sample_full") and "fp16" not in n)
    case = all_cases()[name]["inputs"]
    model = build(False)
    frames, dim = int(case["duration"]), model.latent_dim
    x = torch.randn(2, frames, dim, generator=torch.Generator().manual_seed(0))
    conditions = {"lyrics": case["text"][:1].expand(2, -1), "style": case["style_prompt"][:1].expand(2, -1),
                  "start_time": torch.zeros(2)}
    return model, {"x": x, "cond": torch.zeros_like(x), "conditions": conditions,
                   "time": torch.tensor([0.3127, 0.8411])}


def test_bf16_keeps_the_ends_and_the_stream_in_fp32():
    model = DiffRhythmDiT(64, 2, 2, latent_dim=8, text_dim=32, conv_layers=1, text_num_embeds=20, max_frames=64,
                          style_dim=16, num_heads=4).eval()
    model.to_compute_dtype(torch.bfloat16)
    for name, p in model.named_parameters():
        kept = name.split(".")[0] in DiffRhythmDiT.FP32_WITH_BF16
        assert p.dtype == (torch.float32 if kept else torch.bfloat16), name
    assert any(p.dtype == torch.bfloat16 for p in model.transformer_blocks.parameters())
    x = torch.randn(1, 10, 8)
    out = model(x, torch.zeros_like(x), {"lyrics": torch.randint(0, 20, (1, 10)), "style": torch.randn(1, 16),
                                         "start_time": torch.zeros(1)}, torch.tensor([0.5]))
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    # fp32 and fp16 (upstream's fp16 inference) cast the whole model
    for dtype in (torch.float16, torch.float32):
        assert {p.dtype for p in model.to_compute_dtype(dtype).parameters()} == {dtype}


def test_mixed_bf16_is_closer_to_fp32_than_a_whole_bf16_cast():
    # The parity model (golden weights), one forward on a guidance-sized batch.
    model, inputs = golden_inputs()
    reference = velocity(model, inputs)
    whole = velocity(model.to(torch.bfloat16), inputs)
    model.to_compute_dtype(torch.bfloat16)
    mixed = velocity(model, inputs)

    def rel(a):
        return float((a - reference).norm() / reference.norm())

    assert 0 < rel(mixed) < 0.8 * rel(whole), (rel(mixed), rel(whole))


def test_a_recipe_moved_to_bf16_keeps_the_fp32_parts():
    from tiny_recipes import tiny_song

    from toolkit.models.factory import build_recipe

    recipe = build_recipe(tiny_song()).eval()
    before = {k: v.clone() for k, v in recipe.state_dict().items()}
    recipe.to_device("cpu", torch.bfloat16)
    dit = recipe.transformer
    assert dit.proj_out.weight.dtype == torch.float32 and dit.time_embed.time_mlp[0].weight.dtype == torch.float32
    assert dit.transformer_blocks[0].mlp.gate_proj.weight.dtype == torch.bfloat16
    # the fp32 parts keep their weights exactly (never rounded through bf16); the rest is rounded to bf16; every
    # floating tensor of the recipe (conditions' too) is in one of the two
    for key, value in recipe.state_dict().items():
        if not value.is_floating_point():
            assert torch.equal(value, before[key]), key
        elif value.dtype == torch.float32:
            assert key.split(".")[1] in DiffRhythmDiT.FP32_WITH_BF16 and torch.equal(value, before[key]), key
        else:
            assert value.dtype == torch.bfloat16 and torch.equal(value, before[key].to(torch.bfloat16)), key


def test_f5_bf16_keeps_its_ends_stream_and_flow_times_in_fp32():
    """F5-TTS's DiT follows the same rule: on its parity model (golden weights) the mixed bf16 forward is closer to
    fp32 than a whole cast, and both embed the flow time in fp32 (rounding it to bf16 alone moved the output 12 %)."""
    from test_parity_f5tts import build_model, cases

    from toolkit.backbones.dit_f5 import F5DiT

    case = cases()["cfm_sample_cfg_sway_linspace"]["inputs"]
    model = build_model().eval()
    x = torch.randn(2, 30, model.latent_dim, generator=torch.Generator().manual_seed(0))
    cond = torch.zeros_like(x)
    cond[:, :14] = case["cond"][0]
    inputs = {"x": x, "cond": cond, "conditions": {"text": case["text"][:1].expand(2, -1)},
              "time": torch.tensor([0.3127, 0.8411])}
    with torch.no_grad():
        reference = velocity(model, inputs)
        rounded_time = velocity(model, {**inputs, "time": inputs["time"].bfloat16().float()})
        whole = velocity(model.to(torch.bfloat16), inputs)
        model.float().to_compute_dtype(torch.bfloat16)
        mixed = velocity(model, inputs)
    for name, p in model.named_parameters():
        assert p.dtype == (torch.float32 if name.split(".")[0] in F5DiT.FP32_WITH_BF16 else torch.bfloat16), name

    def rel(a):
        return float((a - reference).norm() / reference.norm())

    assert 0 < rel(mixed) < 0.5 * rel(whole) and rel(whole) < 0.2 * rel(rounded_time), \
        (rel(mixed), rel(whole), rel(rounded_time))
