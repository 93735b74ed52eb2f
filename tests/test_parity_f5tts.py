"""Golden parity of F5-TTS: DiT forward, CFM loss (replayed draws), sampling, time grids, mel, tokens.

Cases come from golden/f5tts/cases.pt, enumerated by name prefix (dit_forward*, cfm_loss*, cfm_sample*,
time_grid*, mel_spec*, text_to_idx*, pinyin*); the model size from config.json. Tolerances from the set's
README: DiT / loss / sampler atol 3e-4 + rtol 1e-4, mel (log) atol 4e-4, grids atol 1e-6, ids exact.
"""

from __future__ import annotations

import json
import random
import re
from functools import cache

import pytest
import torch
from golden import golden_file, load_cases, load_golden_weights, reference_file, select_cases

from toolkit.backbones.dit_f5 import F5DiT
from toolkit.codecs.mel import MelCodec
from toolkit.conditioners.char_tokens import CharTokens, convert_to_pinyin, texts_to_bytes, texts_to_indices
from toolkit.models.f5tts.inference import effective_durations, item_noise, sampling_inputs
from toolkit.objectives import time_grids
from toolkit.objectives.cfm import CFMObjective
from toolkit.objectives.samplers import FlowSampler

SET = "f5tts"
ATOL, RTOL, MEL_ATOL, GRID_ATOL = 3e-4, 1e-4, 4e-4, 1e-6
INTERMEDIATES = ("time_embed", "text_embed", "input_embed", "norm_out")


def close(ours: torch.Tensor, theirs: torch.Tensor, what: str, atol: float = ATOL, rtol: float = RTOL) -> None:
    ours, theirs = ours.detach().double(), theirs.detach().double()
    assert ours.shape == theirs.shape, f"{what}: shape {tuple(ours.shape)} != {tuple(theirs.shape)}"
    excess = ((ours - theirs).abs() - (atol + rtol * theirs.abs())).max()
    assert excess <= 0, f"{what}: max|diff| {float((ours - theirs).abs().max()):.3g} exceeds atol {atol} + rtol {rtol}"


@cache
def config() -> dict:
    return json.loads(golden_file(SET, "config.json").read_text())


@cache
def cases() -> dict:
    return load_cases(SET)


@cache
def weights() -> dict:
    return load_golden_weights(golden_file(SET, "state_dict.pt"))


def build_model() -> F5DiT:
    d = config()["dit"]
    assert not d.get("long_skip_connection") and not d.get("text_embedding_average_upsampling")
    assert d.get("qk_norm") is None and d.get("pe_attn_head") is None and not d.get("attn_mask_enabled")
    model = F5DiT(d["dim"], d["depth"], d["heads"], d["dim_head"], d["ff_mult"], d["dropout"],
                  latent_dim=d["mel_dim"], text_num_embeds=d["text_num_embeds"], text_dim=d["text_dim"],
                  conv_layers=d["conv_layers"], text_mask_padding=d["text_mask_padding"])
    state = {k.removeprefix("transformer."): v for k, v in weights().items()}
    model.load_state_dict(state, strict=True)
    return model.eval()


def objective() -> CFMObjective:
    c = config()["cfm"]
    return CFMObjective(time_distribution="uniform", loss_region="span", span_fraction=c["frac_lengths_mask"],
                        drop_probs={"audio": c["audio_drop_prob"]}, joint_drop_prob=c["cond_drop_prob"],
                        joint_drop_groups=("audio", "text"), drop_per="batch", rng="global", frame_mask_key="mask")


def record(model: F5DiT) -> tuple[dict, list]:
    """Forward hooks on the modules upstream hooked; text_embed through embed_text (it may run per item)."""
    seen: dict[str, list] = {}
    hooks = []

    def keep(name):
        def hook(_module, _args, out):
            seen.setdefault(name, []).append(out.detach())
        return hook

    hooks.append(model.time_embed.register_forward_hook(keep("time_embed")))
    hooks.append(model.input_embed.register_forward_hook(keep("input_embed")))
    hooks.append(model.norm_out.register_forward_hook(keep("norm_out")))
    for i, block in enumerate(model.transformer_blocks):
        hooks.append(block.register_forward_hook(keep(f"block{i}")))
    original = model.embed_text

    def embed_text(*args, **kwargs):
        out = original(*args, **kwargs)
        seen.setdefault("text_embed", []).append(out.detach())
        return out

    model.embed_text = embed_text
    return seen, hooks


def test_fixture_set_is_complete():
    cfg = config()
    assert {"dit", "cfm", "vocab"} <= set(cfg) and cfg["vocab"][0] == " "
    assert cfg["dit"]["text_num_embeds"] == len(cfg["vocab"])


@pytest.mark.parametrize("name", select_cases(cases(), "dit_forward"))
def test_dit_forward(name):
    case = cases()[name]
    inp, out = case["inputs"], case["outputs"]
    model = build_model()
    b = inp["x"].shape[0]
    x, cond, text, time = inp["x"], inp["cond"], inp["text"], inp["time"]
    conditions = {"text": text}
    if inp.get("mask") is not None:
        conditions["mask"] = inp["mask"]
    if inp.get("cfg_infer"):  # [conditional; unconditional] as one batch with per-item drops
        flags = torch.tensor([False] * b + [True] * b)
        x, cond = torch.cat([x, x]), torch.cat([cond, cond])
        conditions = {k: torch.cat([v, v]) for k, v in conditions.items()}
        drop = {"audio": flags, "text": flags}
        time = torch.cat([time, time]) if time.ndim else time
    else:
        drop = {"audio": torch.full((b,), bool(inp["drop_audio_cond"])),
                "text": torch.full((b,), bool(inp["drop_text"]))}
    seen, hooks = record(model)
    with torch.no_grad():
        pred = model(x, cond, conditions, time, drop)
    for h in hooks:
        h.remove()
    close(pred, out["pred"], f"{name}: pred")
    for key in [k for k in out if k in INTERMEDIATES or re.fullmatch(r"block\d+", k)]:
        ours = torch.cat(seen[key])
        theirs = out[key]
        if inp.get("cfg_infer") and key in ("text_embed", "input_embed"):
            theirs = theirs.flatten(0, 1)  # upstream ran two calls [cond, uncond]; ours is one batch
        if inp.get("cfg_infer") and key == "time_embed":
            ours = ours[:b]
        close(ours, theirs, f"{name}: {key}")


@pytest.mark.parametrize("name", select_cases(cases(), "cfm_loss"))
def test_cfm_loss_replays_upstream_draws(name):
    case = cases()[name]
    inp, out = case["inputs"], case["outputs"]
    model = build_model()
    torch.manual_seed(inp["torch_seed"])
    random.seed(inp["python_random_seed"])
    with torch.no_grad():
        res = objective()(model, inp["inp"], {"text": inp["text"]}, inp["lens"])
    assert torch.equal(res["span_mask"], out["rand_span_mask"]), f"{name}: span mask"
    assert torch.equal(res["x0"], out["draw3_x0"]) and torch.equal(res["time"], out["draw4_time"])
    assert bool(res["drop"]["audio"].all()) == out["drop_audio_cond"]
    assert bool(res["drop"]["audio"].any()) == out["drop_audio_cond"]
    assert bool(res["drop"].get("text", torch.zeros(1, dtype=torch.bool)).all()) == out["drop_text"]
    close(res["cond"], out["cond"], f"{name}: cond", 0, 0)
    close(res["x_t"], out["phi"], f"{name}: phi")
    close(res["target"], out["flow"], f"{name}: flow")
    close(res["pred"], out["pred"], f"{name}: pred")
    close(res["loss"], out["loss"], f"{name}: loss")


@pytest.mark.parametrize("name", select_cases(cases(), "cfm_loss"))
def test_cfm_loss_with_injected_draws(name):
    """The recorded draws injected (no RNG replay): the loss follows from them alone."""
    case = cases()[name]
    inp, out = case["inputs"], case["outputs"]
    b = inp["inp"].shape[0]
    draws = {"x0": out["draw3_x0"], "time": out["draw4_time"], "span_mask": out["rand_span_mask"],
             "drop": {"audio": torch.full((b,), out["drop_audio_cond"]), "text": torch.full((b,), out["drop_text"])}}
    with torch.no_grad():
        res = objective()(build_model(), inp["inp"], {"text": inp["text"]}, inp["lens"], draws=draws)
    close(res["pred"], out["pred"], f"{name}: pred")
    close(res["loss"], out["loss"], f"{name}: loss")


@pytest.mark.parametrize("name", select_cases(cases(), "cfm_sample"))
def test_cfm_sample(name):
    case = cases()[name]
    inp, out = case["inputs"], case["outputs"]
    prompt, text = inp["cond"], inp["text"]
    b, n = prompt.shape[:2]
    lens = inp["lens"] if inp["lens"] is not None else torch.full((b,), n)
    durations = effective_durations(text, lens, inp["duration"])
    assert torch.equal(durations, out["duration_eff"])
    noise = item_noise(durations, prompt.shape[-1], inp["seed"])
    close(noise, out["y0"], f"{name}: y0", 0, 0)
    cond, generate, frame_mask = sampling_inputs(prompt, lens, durations)
    conditions = {"text": text}
    if frame_mask is not None:
        conditions["mask"] = frame_mask
    sampler = FlowSampler(method="euler", uncond_drop=("audio", "text"))
    grid = "epss" if inp["use_epss"] else "linspace"
    res, trajectory = sampler.sample(build_model(), noise, cond, conditions, mask=generate, steps=inp["steps"],
                                     time_grid=grid, sway_coef=inp["sway_sampling_coef"],
                                     cfg_strength=inp["cfg_strength"], return_trajectory=True)
    t = time_grids.time_grid(inp["steps"], grid, inp["sway_sampling_coef"])
    close(t, out["t"], f"{name}: t", GRID_ATOL, 0)
    close(trajectory, out["trajectory"], f"{name}: trajectory")
    close(res, out["out"], f"{name}: out")


def test_time_grids():
    names = select_cases(cases(), "time_grid")
    checked = 0
    for name in names:
        for key, theirs in cases()[name]["outputs"].items():
            m = re.fullmatch(r"steps=(\d+),use_epss=(True|False),sway=(None|[-\d.e]+)", key)
            assert m, f"unexpected time-grid key {key!r}"
            sway = None if m[3] == "None" else float(m[3])
            ours = time_grids.time_grid(int(m[1]), "epss" if m[2] == "True" else "linspace", sway)
            close(ours, theirs, f"{name}: {key}", GRID_ATOL, 0)
            checked += 1
    assert checked > 0


@pytest.mark.parametrize("name", select_cases(cases(), "mel_spec"))
def test_mel_features(name):
    case = cases()[name]
    kw = config()["cfm"]["mel_spec_kwargs"]
    assert kw["mel_spec_type"] == "vocos"
    codec = MelCodec(sample_rate=kw["target_sample_rate"], n_fft=kw["n_fft"], hop_length=kw["hop_length"],
                     win_length=kw["win_length"], n_mels=kw["n_mel_channels"], log_floor=1e-5,
                     latent_mean=0.0, latent_std=1.0)
    wav = case["inputs"]["wav"]
    mel = codec.encode(wav[:, None, :]).transpose(1, 2)
    close(mel, case["outputs"]["mel"], f"{name}: mel", MEL_ATOL, 0)
    mel_spec = codec.features.mel_spec
    close(mel_spec.mel_scale.fb, case["outputs"]["fb"], f"{name}: fb", 1e-6, 0)
    close(mel_spec.spectrogram.window, case["outputs"]["window"], f"{name}: window", 1e-7, 0)


@pytest.mark.parametrize("name", select_cases(cases(), "text_to_idx"))
def test_text_to_indices(name):
    inp, out = cases()[name]["inputs"], cases()[name]["outputs"]
    vocab = inp["vocab"]
    tokens = CharTokens(vocab=vocab)
    vocab_map = tokens.vocab_map
    assert torch.equal(texts_to_indices(inp["strings"], vocab_map), out["idx"])
    assert torch.equal(tokens.collate([tokens.prepare(s) for s in inp["strings"]]), out["idx"])
    assert torch.equal(texts_to_indices(inp["token_lists"], vocab_map), out["idx_token_lists"])
    assert torch.equal(texts_to_bytes(inp["byte_strings"]), out["bytes"])
    byte_tokens = CharTokens(tokenizer="byte")
    assert torch.equal(byte_tokens.collate([byte_tokens.prepare(s) for s in inp["byte_strings"]]), out["bytes"])


@pytest.mark.parametrize("name", select_cases(cases(), "pinyin"))
def test_pinyin(name):
    inp, out = cases()[name]["inputs"], cases()[name]["outputs"]
    assert convert_to_pinyin(inp["text"]) == out["char_lists"]
    tokens = CharTokens(vocab=config()["vocab"], tokenizer="pinyin")
    assert [tokens.split(t) for t in inp["text"]] == out["char_lists"]


def read_reference_keys() -> dict[str, tuple[int, ...]]:
    path = reference_file("f5tts_keys.txt")
    keys = {}
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape, _kind = line.split("\t")
        keys[key] = tuple(json.loads(shape))
    return keys


def test_released_keys_on_meta_device():
    from toolkit.models.f5tts.checkpoints import build_released_backbone

    model = build_released_backbone(device="meta")
    ours = {f"transformer.{k}": tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = read_reference_keys()
    assert list(ours) == list(theirs)
    assert ours == theirs
    params = sum(p.numel() for p in model.parameters())
    assert params == 337096804


def test_pinyin_keeps_characters_pypinyin_cannot_read():
    """Kana, hangul and bopomofo among Chinese characters are kept as characters (nothing dropped), and each
    Chinese syllable still gets its leading space."""
    assert convert_to_pinyin(["你あい好"]) == [[" ", "ni3", "あ", "い", " ", "hao3"]]
    assert convert_to_pinyin(["한국어你好"]) == [["한", "국", "어", " ", "ni2", " ", "hao3"]]
