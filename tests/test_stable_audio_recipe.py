"""The stable_audio recipe on tiny parts: routing of text and timing as Stable Audio Open does it, training steps,
generation (seeds, batches, timing, negative prompt, the unconditional model, variations), request options."""

from __future__ import annotations

import copy

import pytest
import torch

from toolkit.conditions.spec import ConditionConfigError
from toolkit.models.factory import build_recipe
from toolkit.models.requests import RequestError, request_options
from toolkit.models.stable_audio.request import AudioRequest
from toolkit.models.stable_audio.validation import AudioValidator
from toolkit.protocols import StepContext

MEL = {"type": "mel", "sample_rate": 8000, "channels": 2, "n_fft": 256, "hop_length": 128, "n_mels": 8,
       "griffin_lim_iters": 2}


def number(derive: str) -> dict:
    return {"type": "number", "output_dim": 32, "min_val": 0, "max_val": 64, "derive": derive}


TINY = {
    "recipe": "stable_audio", "max_frames": 64, "default_seconds": 0.5, "codec": MEL,
    "conditions": {
        "prompt": {"conditioner": {"type": "learned_text", "output_dim": 32, "embed_dim": 16, "buckets": 64},
                   "input": "cross_attn", "drop": "prompt"},
        "seconds_start": {"conditioner": number("start"), "source": None, "input": ["cross_attn", "global"],
                          "drop": "prompt", "drop_at": ["cross_attn"]},
        "seconds_total": {"conditioner": number("total"), "source": None, "input": ["cross_attn", "global"],
                          "drop": "prompt", "drop_at": ["cross_attn"]},
    },
    "backbone": {"type": "dit_sao", "embed_dim": 64, "depth": 1, "num_heads": 2, "cond_token_dim": 32,
                 "global_cond_dim": 64},
    "objective": {"type": "v_diffusion", "drop_probs": {"prompt": 0.1}},
    "sampler": {"type": "v_diffusion", "steps": 3, "cfg_scale": 3.0, "uncond_drop": ["prompt"]},
}


def tiny(**changes) -> dict:
    cfg = copy.deepcopy(TINY)
    cfg.update(copy.deepcopy(changes))
    return cfg


@pytest.fixture(scope="module")
def recipe():
    torch.manual_seed(0)
    r = build_recipe(tiny()).eval()
    with torch.no_grad():  # upstream zero-inits the blocks' outputs: give every weight a say
        for p in r.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return r


def batch(recipe, prompts=("organ, 84 BPM", "piano, 104 BPM"), t=24):
    c = recipe.conditions
    b = len(prompts)
    return {"latent": torch.randn(b, t, recipe.codec.latent_dim, generator=torch.Generator().manual_seed(1)),
            "lens": torch.full((b,), t), "sample_index": torch.arange(b),
            "conditions": {"prompt": torch.stack([c["prompt"].prepare(p) for p in prompts]),
                           "seconds_start": torch.tensor([0.0, 3.0][:b]),
                           "seconds_total": torch.tensor([20.0, 25.0][:b])}}


def test_routing_is_stable_audio_opens(recipe):
    """cross_attn = [prompt tokens, start token, total token]; global = start || total; dropping the prompt group
    zeroes the whole cross-attention (upstream's null embedding) and keeps the global vector."""
    assert recipe.conditions.bound == {"cross_attn": ["prompt", "seconds_start", "seconds_total"],
                                       "global": ["seconds_start", "seconds_total"]}
    values = recipe.conditions(batch(recipe)["conditions"])
    routed = recipe.routed
    inputs, _ = routed.route(values, None)
    words = recipe.conditions["prompt"].max_words
    assert inputs["cross_attn"].shape == (2, words + 2, 32) and inputs["global"].shape == (2, 64)
    assert torch.equal(inputs["cross_attn"][:, words], values["seconds_start"][:, 0])
    assert torch.equal(inputs["global"][:, 32:], values["seconds_total"][:, 0])
    dropped, _ = routed.route(values, {"prompt": torch.tensor([True, False])})
    assert torch.all(dropped["cross_attn"][0] == 0) and torch.equal(dropped["cross_attn"][1], inputs["cross_attn"][1])
    assert torch.equal(dropped["global"], inputs["global"])
    assert routed.groups_of(values) == {"prompt"}


def test_drop_at_must_name_bound_inputs():
    bad = tiny()
    bad["conditions"]["seconds_total"]["drop_at"] = ["prepend"]
    with pytest.raises(ConditionConfigError, match="drop_at names \\['prepend'\\]"):
        build_recipe(bad)


def test_objective_and_sampler_groups_are_checked():
    bad = tiny(objective={"type": "v_diffusion", "drop_probs": {"cross_attn": 0.1}})
    with pytest.raises(ConditionConfigError, match="drop group\\(s\\) \\['cross_attn'\\]"):
        build_recipe(bad)
    bad = tiny(sampler={"type": "v_diffusion", "uncond_drop": ["text"]})
    with pytest.raises(ConditionConfigError, match="sampler.uncond_drop"):
        build_recipe(bad)


@pytest.mark.parametrize("objective", ["v_diffusion", "rectified_flow"])
def test_training_step_drops_the_prompt_when_told(objective):
    torch.manual_seed(0)
    r = build_recipe(tiny(objective={"type": objective, "drop_probs": {"prompt": 0.1}},
                          backbone={**TINY["backbone"], "diffusion_objective": "v" if objective == "v_diffusion"
                                    else "rectified_flow"}))
    b = batch(r)
    optimizer = torch.optim.Adam(r.parameters(), lr=1e-2)
    for step in range(3):  # upstream zero-inits the blocks' outputs: conditions matter after a few steps
        optimizer.zero_grad()
        out = r.training_step(b, StepContext(step=step))
        out["loss"].backward()
        optimizer.step()
    assert torch.isfinite(out["loss"]) and r.conditions["prompt"].embedding.weight.grad is not None
    kept = r.training_step(b, StepContext(step=-1, drop_override={"prompt": False}, time_override=0.9))["loss_value"]
    gone = r.training_step(b, StepContext(step=-1, drop_override={"prompt": True}, time_override=0.9))["loss_value"]
    again = r.training_step(b, StepContext(step=-1, drop_override={"prompt": False}, time_override=0.9))["loss_value"]
    assert kept == again and kept != gone


def test_timing_of_a_training_window():
    """stable-audio-tools' dataset: seconds_start = floor(window start), seconds_total = ceil(song length)."""
    from toolkit.conditions import Span

    r = build_recipe(tiny())
    span = Span(start=200, frames=64, total=1000, frame_rate=62.5, max_frames=64)
    assert float(r.conditions["seconds_start"].crop(None, span)) == 3.0
    assert float(r.conditions["seconds_total"].crop(None, span)) == 16.0
    assert r.conditions["seconds_start"].extract(None, span) is None
    whole = Span.whole(31, 62.5, 64)
    assert float(r.conditions["seconds_total"].from_request(None, whole)) == pytest.approx(0.496)
    assert float(r.conditions["seconds_total"].from_request(7.0, whole)) == 7.0


def test_generation_seeds_batches_and_timing(recipe):
    single = recipe.generate(AudioRequest(prompt="organ", seed=5, seconds_total=0.4))
    pair = recipe.generate(AudioRequest(prompt="organ", seed=4, batch=2, seconds_total=0.4))
    assert torch.allclose(single.latents[0], pair.latents[1], atol=1e-5)  # item i of a batch is seed + i
    assert single.info["frames"] == int(0.4 * 62.5) and single.audio[0].shape[0] == 2
    late = recipe.generate(AudioRequest(prompt="organ", seed=5, seconds_start=3.0, seconds_total=3.4))
    assert late.info["frames"] == single.info["frames"] and not torch.equal(late.latents[0], single.latents[0])
    other = recipe.generate(AudioRequest(prompt="piano", seed=5, seconds_total=0.4))
    assert not torch.allclose(other.latents[0], single.latents[0])
    negative = recipe.generate(AudioRequest(prompt="organ", negative_prompt="piano", seed=5, seconds_total=0.4))
    assert not torch.allclose(negative.latents[0], single.latents[0])
    default = recipe.generate(AudioRequest(prompt="organ", seed=5))
    assert default.info["frames"] == int(0.5 * 62.5)  # default_seconds


def test_unconditional_model_drops_where_training_drops(recipe):
    """drop_conditions: the prompt and the timing tokens of the cross-attention are dropped, the global timing
    is kept (as in training), and guidance is off."""
    calls = []
    original = recipe.transformer.forward

    def spy(x, cond, conditions, time, drop=None):
        calls.append(conditions)
        return original(x, cond, conditions, time, drop)

    recipe.transformer.forward = spy
    try:
        out = recipe.generate(AudioRequest(drop_conditions=True, seed=1, seconds_total=0.3))
    finally:
        del recipe.transformer.forward
    assert out.info["condition"] == "dropped"
    conditions = calls[0]
    assert conditions["cross_attn"].shape[0] == 1  # no guidance batch
    assert torch.all(conditions["cross_attn"] == 0)  # the router puts upstream's null embedding in
    assert conditions["global"].abs().sum() > 0


def test_variation_starts_from_the_init_clip(recipe, tmp_path):
    from toolkit.audio import save_audio

    path = tmp_path / "init.wav"
    save_audio(path, 0.3 * torch.sin(torch.linspace(0, 400, 4000))[None].repeat(2, 1), 8000)
    near = recipe.generate(AudioRequest(prompt="organ", seed=2, seconds_total=0.4, init_audio=str(path),
                                        init_noise_level=0.05))
    far = recipe.generate(AudioRequest(prompt="organ", seed=2, seconds_total=0.4, init_audio=str(path),
                                       init_noise_level=1.0))
    init = recipe.init_latent(str(path), near.info["frames"])
    assert (near.latents[0] - init).abs().mean() < (far.latents[0] - init).abs().mean()


def test_request_checks_and_validator(recipe):
    validator = AudioValidator(tiny())
    with pytest.raises(RequestError, match="give a text prompt"):
        validator.check(AudioRequest())
    with pytest.raises(RequestError, match="greater than seconds_start"):
        validator.check(AudioRequest(prompt="x", seconds_start=2, seconds_total=1))
    with pytest.raises(RequestError, match="at most 1.0 s"):
        validator.check(AudioRequest(prompt="x", seconds_total=5))
    with pytest.raises(RequestError, match="does not fit this model's v_diffusion sampler"):
        validator.check(AudioRequest(prompt="x", sampler="pingpong"))
    with pytest.raises(RequestError, match="init_noise_level applies to a variation"):
        validator.check(AudioRequest(prompt="x", init_noise_level=0.5))
    checked = validator.check(AudioRequest(prompt="organ", negative_prompt="drums", seconds_total=0.6))
    assert checked.tags["PROMPT"] == "organ" and checked.tags["NEGATIVE_PROMPT"] == "drums"
    assert checked.record["style"] == {"audio": None, "text": "organ"} and checked.record["seconds_total"] == 0.6
    assert validator.check(AudioRequest(drop_conditions=True)).record["seconds_total"] == 0.5


def test_an_init_clip_of_lower_rate_or_mono_is_warned_about(tmp_path):
    from toolkit.audio import save_audio

    validator = AudioValidator(tiny())  # an 8 kHz stereo codec
    tone = 0.3 * torch.sin(torch.linspace(0, 400, 4000))[None]
    save_audio(tmp_path / "same.wav", tone.repeat(2, 1), 8000)
    save_audio(tmp_path / "mono.wav", tone[:, :2000], 4000)
    same = validator.check(AudioRequest(prompt="organ", seconds_total=0.4, init_audio=str(tmp_path / "same.wav")))
    assert same.warnings == []
    mono = validator.check(AudioRequest(prompt="organ", seconds_total=0.4, init_audio=str(tmp_path / "mono.wav")))
    assert mono.warnings == [f"the init audio {tmp_path / 'mono.wav'} is 4000 Hz with 1 channel(s): the output "
                             "starts from audio with nothing above 2 kHz and the same sound in all 2 channels; give "
                             "it at 8000 Hz with 2 channel(s) for full quality"]


def test_front_ends_offer_the_declared_options():
    flags = {o.flag for o in request_options(AudioRequest)}
    assert {"--prompt", "--negative-prompt", "--seconds-start", "--seconds-total", "--steps", "--cfg",
            "--cfg-rescale", "--sampler", "--seed", "--batch", "--title", "--drop-conditions", "--init-audio",
            "--init-noise-level", "--condition"} <= flags


def test_learned_text_words_are_hashed_stably():
    from toolkit.registry import CONDITIONERS

    text = CONDITIONERS.build({"type": "learned_text", "output_dim": 8, "buckets": 1000, "max_words": 4})
    ids = text.prepare("Organ, 84 BPM!")
    assert ids.tolist()[:3] == text.prepare("organ 84 bpm").tolist()[:3] and ids[3] == 0
    assert ids[0] == 1 + int.from_bytes(__import__("hashlib").sha1(b"organ").digest()[:8], "big") % 1000
    assert text.prepare("a b c d e f").ne(0).sum() == 4  # cut at max_words
    tokens, mask = text(torch.stack([ids, text.prepare("")]))
    assert mask.tolist() == [[True, True, True, False], [False] * 4]
    assert torch.all(tokens[1] == 0) and torch.all(tokens[0, 3] == 0)
    null_tokens, null_mask = text.null(2)
    assert null_tokens.shape == tokens.shape and not null_mask.any()


def test_learned_text_word_dropout_only_in_training():
    from toolkit.registry import CONDITIONERS

    text = CONDITIONERS.build({"type": "learned_text", "output_dim": 8, "max_words": 8, "word_dropout": 0.5})
    ids = torch.stack([text.prepare("organ 84 bpm major key solemn chorale baroque")] * 64)
    text.eval()
    assert bool(text(ids)[1].all())
    text.train()
    torch.manual_seed(0)
    kept = text(ids)[1].float().mean()
    assert 0.35 < kept < 0.65  # about half of the words are left out
    with pytest.raises(ValueError, match="word_dropout"):
        CONDITIONERS.build({"type": "learned_text", "word_dropout": 1.0})


def test_mel_codec_per_band_statistics_round_trip():
    from toolkit.registry import CODECS

    bands = 8
    mean, std = [float(i) / 4 for i in range(bands)], [0.5 + i / 8 for i in range(bands)]
    codec = CODECS.build({**MEL, "latent_mean": mean, "latent_std": std})
    plain = CODECS.build({**MEL, "latent_mean": 0.0, "latent_std": 1.0})
    wav = 0.3 * torch.sin(torch.linspace(0, 900, 4000))[None, None].repeat(1, 2, 1)
    z, raw = codec.encode(wav), plain.encode(wav)
    expected = (raw - torch.tensor(mean).repeat(2)) / torch.tensor(std).repeat(2)  # both channels, band by band
    assert torch.allclose(z, expected, atol=1e-5)
    assert torch.allclose(codec.latents_to_log_mel(z), plain.latents_to_log_mel(raw), atol=1e-4)
    with pytest.raises(ValueError, match="8 numbers \\(one per mel band\\), got 3"):
        CODECS.build({**MEL, "latent_std": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match="latent_std must be positive"):
        CODECS.build({**MEL, "latent_std": [1.0] * 7 + [0.0]})


def test_unmasked_loss_sums_to_the_steps_mean_as_the_trainer_sums_it():
    """The trainer sums the losses of its validation batches and micro-batches; each is weighted by its share of
    the step's frames, so the sum is the mean over all of them (not their count times it)."""
    r = build_recipe(tiny())
    b = batch(r)
    whole = r.training_step(b, StepContext(step=-1, time_override=0.9))["loss_value"]
    halves = [{**b, "latent": b["latent"][i:i + 1], "lens": b["lens"][i:i + 1],
               "sample_index": b["sample_index"][i:i + 1],
               "conditions": {k: v[i:i + 1] for k, v in b["conditions"].items()}} for i in range(2)]
    frames = int(b["lens"].sum())
    parts = [r.training_step(h, StepContext(step=-1, time_override=0.9, num_valid_global=frames))["loss_value"]
             for h in halves]
    assert torch.allclose(parts[0] + parts[1], whole, rtol=1e-5)
