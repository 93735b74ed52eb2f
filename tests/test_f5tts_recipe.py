"""The F5-TTS recipe on a tiny config: training step, generation with a prompt, chunking, vocab resize,
checkpoint loading, and the cross-recipe overrides (F5 over Oobleck latents, DiffRhythm over mel + Vocos)."""

from __future__ import annotations

import math

import pytest
import torch

from toolkit.conditioners.char_tokens import write_vocab
from toolkit.models.f5tts.checkpoints import VocabMismatchError, load_f5_checkpoint_into, read_f5_state_dict
from toolkit.models.f5tts.recipe import F5TTS, SpeechRequest, chunk_text, cross_fade
from toolkit.models.f5tts.vocab import resize_state_dict, resize_text_embedding
from toolkit.models.factory import build_recipe
from toolkit.objectives.cfm import CFMObjective
from toolkit.objectives.samplers import FlowSampler
from toolkit.protocols import StepContext

TINY_BACKBONE = {"type": "dit_f5", "dim": 32, "depth": 1, "heads": 2, "dim_head": 16, "ff_mult": 2,
                 "text_dim": 16, "conv_layers": 1}
TINY_CODEC = {"type": "mel", "latent_mean": 0.0, "latent_std": 1.0, "griffin_lim_iters": 2}


def tiny_config(**extra) -> dict:
    """F5's preset with a tiny backbone and Griffin-Lim (`extra` merged in, e.g. chunk_seconds=1.6)."""
    from omegaconf import OmegaConf

    from toolkit.config import load_preset, to_plain

    codec = extra.pop("codec", TINY_CODEC)  # a codec node is replaced, not merged
    cfg = to_plain(OmegaConf.merge(load_preset("models/f5tts/presets/f5tts.yaml"),
                                   {"backbone": TINY_BACKBONE, "sampler": {"steps": 2}}, extra))
    return {**cfg, "codec": codec}


def tiny(**extra) -> F5TTS:
    torch.manual_seed(0)
    recipe = build_recipe(tiny_config(**extra)).eval()
    with torch.no_grad():  # upstream zero-inits the output: randomise so every path shows in the output
        for param in recipe.transformer.parameters():
            param.add_(torch.randn_like(param) * 0.1)
    return recipe


def speech(path, seconds: float = 1.0, sr: int = 24000) -> str:
    from toolkit.audio import save_audio

    t = torch.arange(int(seconds * sr)) / sr
    wav = 0.05 * torch.sin(2 * math.pi * 220 * t) * (1 + torch.sin(2 * math.pi * 3 * t))
    save_audio(path, wav[None], sr)
    return str(path)


def batch(recipe: F5TTS) -> dict:
    tokens = recipe.text
    ids = tokens.collate([tokens.prepare("hello there"), tokens.prepare("a cat")])
    return {"latent": torch.randn(2, 30, recipe.codec.latent_dim), "lens": torch.tensor([30, 21]),
            "conditions": {"text": ids}, "sample_index": torch.tensor([0, 1])}


def test_defaults_are_f5_configurations_of_the_shared_components():
    recipe = tiny()
    obj, smp = recipe.objective, recipe.sampler
    assert type(obj) is CFMObjective and type(smp) is FlowSampler
    assert (obj.time_distribution, obj.loss_region, obj.drop_per, obj.frame_mask_key) == ("uniform", "span", "batch",
                                                                                         "mask")
    assert obj.drop_probs == {"audio": 0.3} and obj.joint_drop_prob == 0.2
    assert set(obj.joint_drop_groups) == {"audio", "text"}
    assert (smp.time_grid, smp.sway_coef, smp.cfg_strength, smp.method) == ("epss", -1.0, 2.0, "euler")
    assert smp.steps == 2 and set(smp.uncond_drop) == {"audio", "text"}
    assert recipe.transformer.text_num_embeds == recipe.text.vocab_size
    assert all(k.startswith("transformer.") for k in recipe.state_dict())


def test_training_step_backpropagates_and_is_seeded():
    recipe = tiny().train()
    b = batch(recipe)
    out = recipe.training_step(b, StepContext(step=3, seed=1, num_valid_global=51))
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and out["loss"] > 0
    grads = [p.grad for p in recipe.transformer.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    recipe.eval()  # dropout off: the loss is then a function of (seed, step, batch)
    out = recipe.training_step(b, StepContext(step=3, seed=1, num_valid_global=51))
    again = recipe.training_step(b, StepContext(step=3, seed=1, num_valid_global=51))["loss_value"]
    assert torch.equal(again, out["loss_value"])
    other = recipe.training_step(b, StepContext(step=4, seed=1, num_valid_global=51))["loss_value"]
    assert not torch.equal(other, out["loss_value"])
    kept = recipe.training_step(b, StepContext(step=3, seed=1, drop_override={"audio": False, "text": False}))
    dropped = recipe.training_step(b, StepContext(step=3, seed=1, drop_override={"audio": True, "text": True}))
    assert not torch.equal(dropped["loss_value"], kept["loss_value"])


def test_generate_with_a_prompt_keeps_the_prompt_out_of_the_output(tmp_path):
    recipe = tiny()
    ref = speech(tmp_path / "ref.wav", 1.0)
    req = SpeechRequest(text="Nice to meet you.", ref_audio=ref, ref_text="hello there", seed=3)
    res = recipe.generate(req)
    ref_frames = res.info["ref_frames"]
    assert ref_frames == 24000 // 256 + 1
    # duration by the text-length ratio: ref_frames / len("hello there. ") * len("Nice to meet you.")
    expected = int(ref_frames / len("hello there. ") * len("Nice to meet you."))
    assert res.info["frames"] == [expected]
    assert res.audio[0].shape == (1, expected * 256) and torch.isfinite(res.audio[0]).all()
    again = recipe.generate(SpeechRequest(text="Nice to meet you.", ref_audio=ref, ref_text="hello there", seed=3))
    assert torch.equal(again.latents[0], res.latents[0])
    with pytest.raises(ValueError, match="transcript"):
        recipe.generate(SpeechRequest(text="x", ref_audio=ref))


def test_generate_without_a_prompt_and_dropped():
    recipe = tiny()
    res = recipe.generate(SpeechRequest(text="hi", seconds=0.2, seed=0), decode=False)
    assert res.info["frames"] == [int(0.2 * recipe.frame_rate)]
    dropped = recipe.generate(SpeechRequest(text="hi", seconds=0.2, seed=0, drop_conditions=True), decode=False)
    assert dropped.info["condition"] == "dropped"
    assert not torch.equal(dropped.latents[0], res.latents[0])


def test_long_text_is_chunked_and_cross_faded(tmp_path):
    text = "One sentence here. Another one follows, with a clause! And a third? Yes."
    chunks = chunk_text(text, 30)
    assert len(chunks) > 1 and all(len(c.encode()) <= 30 for c in chunks)
    assert " ".join(chunks) == text
    assert chunk_text("你好。世界！", 6) == ["你好。", "世界！"]
    a, b = torch.ones(1, 100), torch.full((1, 80), 3.0)
    joined = cross_fade([a, b], 20)
    assert joined.shape == (1, 160)
    assert joined[0, 79] == 1 and joined[0, 100] == 3 and 1 < joined[0, 90] < 3
    recipe = tiny(chunk_seconds=1.6)
    ref = speech(tmp_path / "ref.wav", 1.0)
    res = recipe.generate(SpeechRequest(text=text, ref_audio=ref, ref_text="hello there", seed=1))
    chunks = res.info["chunks"]
    assert len(chunks) > 1 and len(res.info["frames"]) == len(chunks)
    overlap = int(0.15 * 24000)
    total = sum(res.info["frames"]) * 256 - overlap * (len(chunks) - 1)
    assert res.audio[0].shape[-1] == total


def test_vocab_resize_keeps_known_rows_and_strict_loading_reports_the_size(tmp_path):
    recipe = tiny()
    old = list(recipe.text.vocab)
    path = tmp_path / "ckpt.pt"
    torch.save({"model_state_dict": recipe.state_dict()}, path)
    new_vocab = ["z", " ", "a", "ni3", "hao3"]
    write_vocab(new_vocab, tmp_path / "vocab.txt")
    other = tiny(conditions={"text": {"conditioner": {"type": "char_tokens", "vocab": str(tmp_path / "vocab.txt")}}})
    assert other.transformer.text_num_embeds == 5
    with pytest.raises(VocabMismatchError, match="vocabulary size mismatch.*95 tokens.*built for 5"):
        load_f5_checkpoint_into(other.transformer, path)
    state = resize_state_dict(read_f5_state_dict(path), old, new_vocab)
    other.transformer.load_state_dict(state, strict=True)
    table, before = other.transformer.text_embed.text_embed.weight, recipe.transformer.text_embed.text_embed.weight
    assert torch.equal(table[0], before[0])
    assert torch.equal(table[1], before[1 + old.index("z")]) and torch.equal(table[3], before[1 + old.index("a")])
    assert not torch.equal(table[4], table[5])
    resize_text_embedding(recipe.transformer, old, new_vocab)
    assert recipe.transformer.text_embed.text_embed.weight.shape == (6, 16)
    assert torch.equal(recipe.transformer.text_embed.text_embed.weight, table)


def test_published_formats_load_strictly(tmp_path):
    from safetensors.torch import save_file

    recipe = tiny()
    state = {f"ema_model.transformer.{k}": v.clone() + 1 for k, v in recipe.transformer.state_dict().items()}
    state.update({"ema_model.initted": torch.tensor(True), "ema_model.step": torch.tensor(10)})
    save_file(state, str(tmp_path / "model.safetensors"))
    torch.save({"ema_model_state_dict": state, "model_state_dict": {f"transformer.{k}": v for k, v in
                                                                    recipe.transformer.state_dict().items()}},
               tmp_path / "model.pt")
    for name in ("model.safetensors", "model.pt"):
        target = tiny()
        load_f5_checkpoint_into(target.transformer, tmp_path / name)
        for k, v in recipe.transformer.state_dict().items():
            assert torch.equal(target.transformer.state_dict()[k], v + 1), (name, k)
    broken = {k: v for k, v in state.items() if "proj_out" not in k}
    save_file(broken, str(tmp_path / "broken.safetensors"))
    with pytest.raises(Exception, match="(?s)missing keys.*proj_out"):
        load_f5_checkpoint_into(tiny().transformer, tmp_path / "broken.safetensors")


def test_f5_over_oobleck_latents():
    """codec=oobleck: the backbone takes the codec's latent_dim; a training step and a generation run."""
    oobleck = {"type": "oobleck", "latent_dim": 8, "channels": 2, "base_channels": 4, "strides": [2, 2],
               "c_mults": [1, 2], "chunked": False}
    recipe = tiny(codec=oobleck)  # random tiny weights: only the wiring is checked
    assert recipe.transformer.latent_dim == recipe.codec.latent_dim == 8
    b = batch(recipe)
    b["latent"] = torch.randn(2, 30, 8)
    recipe.train()
    assert torch.isfinite(recipe.training_step(b, StepContext(step=0, seed=0))["loss"])
    recipe.eval()
    res = recipe.generate(SpeechRequest(text="hi", seconds=0.01, seed=0))
    assert res.audio[0].shape[0] == recipe.codec.channels and torch.isfinite(res.audio[0]).all()


def test_init_from_a_published_safetensors_for_fine_tuning(tmp_path):
    """train.init_from takes F5's published layout (ema_model.transformer.* + ema_model.initted/step)."""
    from safetensors.torch import save_file

    from toolkit.training.weights import init_from

    source = tiny()
    state = {f"ema_model.transformer.{k}": v.clone() for k, v in source.transformer.state_dict().items()}
    state.update({"ema_model.initted": torch.tensor(True), "ema_model.step": torch.tensor(7)})
    save_file(state, str(tmp_path / "model_1250000.safetensors"))
    target = build_recipe(tiny_config())
    init_from(target, tmp_path / "model_1250000.safetensors")
    for k, v in source.state_dict().items():
        assert torch.equal(target.state_dict()[k], v), k
