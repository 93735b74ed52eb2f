"""Published Stable Audio Open layouts: the released-size DiT + number conditioners have exactly the key lists'
names, shapes and parameter counts (meta device); published-layout files load strictly; a wrong key or shape is
reported by its published name."""

from __future__ import annotations

import ast
import re

import pytest
import torch
from golden import golden_file, load_golden_weights, reference_file

from toolkit.backbones.dit_sao import SAODiT
from toolkit.backbones.sao_checkpoint import (
    PublishedLayout,
    build_released_dit,
    build_released_number_conditioners,
    load_published,
    released_config,
    split_published,
)
from toolkit.codecs.oobleck import OobleckCodec
from toolkit.conditioners.number import NumberConditioner
from toolkit.registry import BACKBONES
from toolkit.weights import WeightsMismatchError

KEY_LISTS = {"sao_1.0": "sao_1.0_dit_keys.txt", "sao_small": "sao_small_dit_keys.txt"}


def reference(name: str) -> tuple[dict[str, tuple[int, ...]], dict[str, int]]:
    """(key -> shape in file order, the header's parameter counts)."""
    keys, counts = {}, {}
    for line in reference_file(KEY_LISTS[name]).read_text().splitlines():
        if line.startswith("#"):
            m = re.search(r"entries; (\d+) parameters .*?of which DiT \(model\.model\.\*\) (\d+)", line)
            if m:
                counts = {"total": int(m.group(1)), "dit": int(m.group(2))}
            continue
        if line.strip():
            key, shape, _kind = line.split("\t")
            keys[key] = tuple(ast.literal_eval(shape))
    assert keys and counts, f"could not read {KEY_LISTS[name]}"
    return keys, counts


@pytest.mark.parametrize("name", sorted(KEY_LISTS))
def test_released_keys_shapes_and_counts(name):
    dit = build_released_dit(name, device="meta")
    layout = PublishedLayout(dit, build_released_number_conditioners(name, device="meta"))
    ours = {k: tuple(v.shape) for k, v in layout.state_dict().items()}
    theirs, counts = reference(name)
    assert sorted(set(theirs) - set(ours)) == [], "keys upstream has and we lack"
    assert sorted(set(ours) - set(theirs)) == [], "keys we have and upstream lacks"
    assert {k: (ours[k], theirs[k]) for k in theirs if ours[k] != theirs[k]} == {}
    assert list(ours) == list(theirs), "key order differs from upstream"
    assert sum(p.numel() for p in layout.parameters()) == counts["total"]
    assert sum(p.numel() for p in dit.parameters()) == counts["dit"]
    assert all(p.device.type == "meta" for p in layout.parameters())


def test_released_configs_build_through_the_registry():
    for name in KEY_LISTS:
        node = {"type": "dit_sao", **released_config(name)["dit"]}
        latent_dim = node.pop("latent_dim")
        with torch.device("meta"):
            net = BACKBONES.build(node, latent_dim=latent_dim)
        assert isinstance(net, SAODiT) and set(net.inputs()) == set(released_config(name)["inputs"])


# ------------------------------------------------------------------------------- tiny published files
def tiny_parts(seed: int = 0, latent_dim: int = 8):
    torch.manual_seed(seed)
    dit = SAODiT(64, 2, 2, latent_dim=latent_dim, cond_token_dim=32, project_cond_tokens=False, global_cond_dim=32,
                 qk_norm="ln")
    numbers = {cid: NumberConditioner(16, 0, 256, key=cid) for cid in ("seconds_start", "seconds_total")}
    codec = OobleckCodec(latent_dim=latent_dim, base_channels=4, c_mults=(1, 2), strides=(2, 2), chunked=False)
    for module in (dit, *numbers.values(), codec):
        with torch.no_grad():
            for p in module.parameters():
                p.normal_()
    return dit, numbers, codec


def published_state(seed: int = 0) -> dict[str, torch.Tensor]:
    dit, numbers, codec = tiny_parts(seed)
    return dict(PublishedLayout(dit, numbers, codec).state_dict())


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
def test_tiny_published_file_loads_strictly(tmp_path, suffix):
    state = published_state(seed=1)
    assert any(k.startswith("pretransform.model.encoder.") for k in state)
    path = tmp_path / f"model{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save({"state_dict": state, "global_step": 7}, path)
    dit, numbers, codec = tiny_parts(seed=2)
    counts = load_published(path, dit, numbers, codec)
    assert counts["dit"] == len(dit.state_dict()) and counts["conditioner.seconds_total"] == 3
    loaded = dict(PublishedLayout(dit, numbers, codec).state_dict())
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    # without a pretransform module the VAE keys are left to the codec's own loader
    dit2, numbers2, _ = tiny_parts(seed=3)
    load_published(state, dit2, numbers2)
    assert torch.equal(dit2.transformer.project_in.weight, state["model.model.transformer.project_in.weight"])


def test_split_published_by_component():
    parts = split_published({**published_state(), "other.thing": torch.zeros(1)})
    assert "transformer.project_in.weight" in parts["dit"]
    assert set(parts["conditioners"]) == {"seconds_start", "seconds_total"}
    assert "embedder.embedding.0.weights" in parts["conditioners"]["seconds_total"]
    assert any(k.startswith("encoder.") for k in parts["pretransform"]) and list(parts["other"]) == ["other.thing"]


def test_wrong_key_and_shape_are_named():
    state = published_state()
    state["model.model.transformer.layers.0.self_attn.to_qkv.weight"] = torch.zeros(5, 5)
    state["conditioner.conditioners.seconds_start.embedder.embedding.1.bias"] = torch.zeros(3)
    del state["model.model.to_global_embed.2.weight"]
    state["model.model.transformer.layers.0.self_attn.q_scale"] = torch.zeros(2)
    dit, numbers, codec = tiny_parts()
    before = dit.transformer.project_in.weight.clone()
    with pytest.raises(WeightsMismatchError) as err:
        load_published(state, dit, numbers, codec, source="model.safetensors")
    message = str(err.value)
    assert "model.safetensors" in message
    assert "model.model.transformer.layers.0.self_attn.to_qkv.weight: (5, 5) vs (192, 64)" in message
    assert "conditioner.conditioners.seconds_start.embedder.embedding.1.bias: (3,) vs (16,)" in message
    assert "missing keys" in message and "model.model.to_global_embed.2.weight" in message
    assert "unexpected keys" in message and "model.model.transformer.layers.0.self_attn.q_scale" in message
    assert "sao_small_dit_keys.txt" in message  # the hint says where the released layouts are
    assert err.value.missing == ["model.model.to_global_embed.2.weight"]
    assert torch.equal(dit.transformer.project_in.weight, before), "nothing is loaded on a mismatch"


def test_missing_conditioner_is_named():
    state = published_state()
    dit, numbers, codec = tiny_parts()
    numbers.pop("seconds_start")
    with pytest.raises(WeightsMismatchError, match=r"conditioner\.conditioners\.seconds_start\.embedder"):
        load_published(state, dit, numbers, codec)


@pytest.mark.parametrize("model", ["sao_v", "sao_rf", "sao_inpaint"])
def test_golden_wrappers_are_published_layout(model):
    """The fixture's upstream wrappers (random int8 weights) load under the published names, strictly."""
    import json

    config = json.loads(golden_file("sao", "config.json").read_text())
    if model not in config["model_names"]:
        pytest.fail(f"the sao set has no model {model}")
    prefix = config[model]["state_dict_prefix"]
    state = {k[len(prefix):]: v for k, v in load_golden_weights(golden_file("sao", "state_dict.pt")).items()
             if k.startswith(prefix)}
    ctor = config[model]["constructor_kwargs"]
    dit = SAODiT(**SAODiT.upstream_kwargs(ctor["dit"]))
    numbers = {cid: NumberConditioner(**spec["kwargs"], key=cid) for cid, spec in ctor["conditioners"].items()
               if spec["class"] == "NumberConditioner"}
    prompt_keys = {k for k in state if k.startswith("conditioner.conditioners.prompt.")}
    state = {k: v for k, v in state.items() if k not in prompt_keys}  # t5_text's proj_out, checked in parity
    counts = load_published(state, dit, numbers)
    assert counts["dit"] == len(dit.state_dict())
