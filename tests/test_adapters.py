"""LoRA adapters in peft's folder format (toolkit.adapters): a run's adapter applied unmerged generates what its
merged export generates, several adapters compose as documented, peft itself reads the folders, an adapter of
another model is refused with the keys named, and bad specs say what is wrong."""

from __future__ import annotations

import json
import math

import pytest
import torch
from peft.tuners.tuners_utils import BaseTunerLayer
from test_trainer_recipe import TINY
from tiny_recipes import song_features

from toolkit import adapters as ad
from toolkit.bin import train as train_cli
from toolkit.checkpoints import load_checkpoint
from toolkit.io import sha256_files
from toolkit.models.diffrhythm.request import SongRequest
from toolkit.models.factory import build_recipe
from toolkit.training.lora import checkpoint_adapter
from toolkit.training.weights import init_from

MODEL = {k: v for k, v in TINY.items() if k not in ("data", "train")}
REQUEST = dict(lrc="[00:00.10]hello world\n[00:00.40]sing along", style_text="folk, guitar", length=0.8, seed=3)


def tiny_recipe(seed: int = 0, **backbone):
    """The tiny DiffRhythm recipe with every weight random (its output projection starts at zero otherwise)."""
    torch.manual_seed(seed)
    cfg = {**MODEL, "backbone": {**MODEL["backbone"], **backbone}}
    recipe = build_recipe(cfg).eval()
    with torch.no_grad():
        for name, p in recipe.named_parameters():
            p.normal_(0, 1.0 / max(p.shape[-1], 1) ** 0.5)
            if name.endswith("norm.weight"):
                p.add_(1.0)
    return recipe


def latents(recipe) -> torch.Tensor:
    return torch.stack(recipe.generate(SongRequest(**REQUEST), decode=False).latents)


def dit_output(recipe) -> torch.Tensor:
    """The backbone's velocity on fixed random inputs (conditions included)."""
    g = torch.Generator().manual_seed(5)
    frames, dim = 20, recipe.codec.latent_dim
    x, cond = torch.randn(2, frames, dim, generator=g), torch.randn(2, frames, dim, generator=g)
    lyrics = torch.randint(1, 50, (2, frames), generator=g)
    style_conditioner = recipe.conditions["style"]
    style = style_conditioner(style_conditioner.prepare("folk")[None].expand(2, -1))
    conditions = {"lyrics": lyrics, "style": style, "start_time": torch.zeros(2)}
    with torch.no_grad():
        return recipe.transformer(x, cond, conditions, torch.tensor([0.3, 0.7]))


def random_adapter(recipe, modules: list[str], rank: int, alpha: float, seed: int, **config) -> ad.Adapter:
    g = torch.Generator().manual_seed(seed)
    weights = {}
    for name in modules:
        layer = recipe.get_submodule(name)
        weights[name] = (torch.randn(rank, layer.in_features, generator=g) * 0.2,
                         torch.randn(layer.out_features, rank, generator=g) * 0.2)
    cfg = ad.new_config(rank, alpha, modules)
    cfg.update(config)
    return ad.Adapter(config=cfg, weights=weights,
                      made_for={"recipe": "diffrhythm", "backbone": recipe.config["backbone"]})


def write_features(root, recipe) -> None:
    root.mkdir()
    g = torch.Generator().manual_seed(0)
    entries = []
    for i in range(8):
        song = song_features(recipe, f"s{i}", torch.randn(30 + 5 * i, recipe.codec.latent_dim, generator=g),
                             [(0.1, [10, 11]), (0.5, [12])], "folk, guitar")
        torch.save(song, root / f"s{i}.pt")
        entries.append({"id": f"s{i}", "path": f"/nowhere/s{i}.wav"})
    (root / "train.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))


# --------------------------------------------------------------------------------------------- a trained LoRA

def train_base_and_lora(root):
    """Through the train CLI on tiny features: a base run, a 3-step LoRA run on it, the LoRA's merged export.
    Returns (base checkpoint, LoRA run folder, merged checkpoint)."""
    import yaml

    write_features(root / "features", tiny_recipe())
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    common = ["--config", str(config), "--features", str(root / "features")]
    base = root / "base" / "checkpoints" / "last.pt"
    assert train_cli.main(common + ["--exp", str(root / "base")]) == 0
    lora = root / "lora"
    assert train_cli.main(common + ["--exp", str(lora), f"train.init_from={base}", "train.lora.rank=4",
                                    "train.lora.alpha=8", "train.max_steps=3", "train.save_every=3",
                                    "train.lr=0.02"]) == 0
    merged = root / "merged.pt"
    assert train_cli.main(["export-lora", "--checkpoint", str(lora / "checkpoints" / "last.pt"),
                           "--out", str(merged)]) == 0
    return base, lora, merged


def test_trained_lora_generates_unmerged_as_its_merged_export(tmp_path):
    base_ckpt, lora_exp, merged = train_base_and_lora(tmp_path)
    adapter_dir = lora_exp / "adapter"
    assert sorted(p.name for p in adapter_dir.iterdir()) == ["README.md", ad.CONFIG_FILE, ad.WEIGHTS_FILE]

    plain = build_recipe(load_checkpoint(merged)["config"]).eval()
    init_from(plain, merged)
    base_cfg = load_checkpoint(base_ckpt)["config"]
    recipe = build_recipe(base_cfg).eval()
    init_from(recipe, base_ckpt)  # the base as train.init_from read it (EMA weights)
    base_latents = latents(recipe)
    applied = ad.apply_adapters(recipe, [str(adapter_dir)], base_sha256=sha256_files([base_ckpt])[:16])
    assert applied[0].warnings == []  # trained on exactly this base
    assert sum(isinstance(m, BaseTunerLayer) for m in recipe.modules()) == 7  # 7 projections in the one block
    with_adapter = latents(recipe)
    torch.testing.assert_close(with_adapter, latents(plain), rtol=0, atol=1e-5)
    assert (with_adapter - base_latents).abs().max() > 1e-3  # the adapter matters

    # the adapter records what it fits and how it was made
    adapter = applied[0].adapter
    assert adapter.made_for["recipe"] == "diffrhythm" and adapter.made_for["step"] == 3
    assert adapter.made_for["weights"] == "ema" and adapter.made_for["base_weights"]["file"].endswith("last.pt")
    record = ad.describe(applied)[0]
    assert record["path"] == str(adapter_dir.resolve()) and record["name"] == "adapter"
    assert record["scale"] == 1.0 and record["rank"] == 4 and record["alpha"] == 8 and record["modules"] == 7
    assert record["sha256"] == sha256_files([adapter_dir / ad.CONFIG_FILE, adapter_dir / ad.WEIGHTS_FILE])

    # a LoRA run's checkpoint carries the same adapter: applied from memory, it gives the same song
    lora_ckpt = lora_exp / "checkpoints" / "last.pt"
    from_checkpoint = ad.AdapterSpec(lora_ckpt, 1.0, adapter=checkpoint_adapter(load_checkpoint(lora_ckpt)))
    ad.apply_adapters(recipe, [from_checkpoint])
    assert torch.equal(latents(recipe), with_adapter)

    # removing it gives the base model back, bit for bit
    assert ad.remove_adapters(recipe) == 1
    assert not any(isinstance(m, BaseTunerLayer) for m in recipe.modules())
    assert torch.equal(latents(recipe), base_latents)

    # peft itself reads the folder into the same model and generates the same song
    from peft import PeftModel

    PeftModel.from_pretrained(recipe, str(adapter_dir))  # wraps `recipe` in place
    torch.testing.assert_close(latents(recipe), with_adapter, rtol=0, atol=0)

    # export-adapter writes the same folder from any checkpoint
    again = tmp_path / "exported"
    assert train_cli.main(["export-adapter", "--checkpoint", str(lora_exp / "checkpoints" / "last.pt"),
                           "--out", str(again)]) == 0
    first, second = ad.read_adapter(adapter_dir), ad.read_adapter(again)
    assert first.config == second.config and first.made_for == second.made_for
    assert all(torch.equal(first.weights[m][i], second.weights[m][i]) for m in first.weights for i in (0, 1))


# --------------------------------------------------------------------------------------------- composition

def test_two_adapters_compose_with_their_scales(tmp_path):
    recipe = tiny_recipe()
    block = "transformer.transformer_blocks.0."
    one = random_adapter(recipe, [block + "self_attn.q_proj", block + "self_attn.v_proj", block + "mlp.gate_proj"],
                         rank=2, alpha=4.0, seed=1)
    two = random_adapter(recipe, [block + "self_attn.q_proj", block + "mlp.down_proj"], rank=3, alpha=3.0, seed=2,
                         use_rslora=True)
    ad.write_adapter(one, tmp_path / "one")
    ad.write_adapter(two, tmp_path / "two")
    scales = (0.7, -1.5)

    # by hand: W + sum_i scale_i * s_i * B_i A_i with s = alpha / r (alpha / sqrt(r) with use_rslora)
    state = {k: v.clone() for k, v in recipe.state_dict().items()}
    expected = dict(state)
    for adapter, scale, s in ((one, scales[0], 4.0 / 2), (two, scales[1], 3.0 / math.sqrt(3))):
        for module, (a, b) in adapter.weights.items():
            key = module + ".weight"
            expected[key] = (expected[key].double() + scale * s * (b.double() @ a.double())).float()
    merged = ad.merge_into_state(state, [(one, scales[0]), (two, scales[1])])
    for key in state:
        torch.testing.assert_close(merged[key], expected[key], rtol=0, atol=1e-6)
    plain = tiny_recipe(seed=99)
    plain.load_state_dict(expected)

    before = dit_output(recipe)
    ad.apply_adapters(recipe, [f"{tmp_path / 'one'}:{scales[0]}", {"path": str(tmp_path / "two"), "scale": scales[1]}])
    torch.testing.assert_close(dit_output(recipe), dit_output(plain), rtol=0, atol=1e-5)
    assert (dit_output(recipe) - before).abs().max() > 1e-2

    # applying again replaces: one adapter alone, then none
    ad.apply_adapters(recipe, [str(tmp_path / "one")])
    assert len(ad.applied_adapters(recipe)) == 1
    only_one = tiny_recipe(seed=99)
    only_one.load_state_dict(ad.merge_into_state(state, [(one, 1.0)]))
    torch.testing.assert_close(dit_output(recipe), dit_output(only_one), rtol=0, atol=1e-5)
    ad.apply_adapters(recipe, [])
    assert torch.equal(dit_output(recipe), before)
    assert all(p.requires_grad for p in recipe.transformer.parameters())  # requires_grad left as it was


def test_adapters_follow_the_model_dtype(tmp_path):
    recipe = tiny_recipe()
    block = "transformer.transformer_blocks.0."
    ad.write_adapter(random_adapter(recipe, [block + "self_attn.q_proj"], 2, 2.0, seed=3), tmp_path / "a")
    reference = dit_output(recipe)
    ad.apply_adapters(recipe, [str(tmp_path / "a")])
    fp32 = dit_output(recipe)
    recipe.to(torch.bfloat16)
    layer = recipe.get_submodule(block + "self_attn.q_proj")
    assert layer.lora_A["adapter0"].weight.dtype == torch.bfloat16
    recipe.float()
    torch.testing.assert_close(dit_output(recipe), fp32, rtol=0, atol=0.1)
    assert (fp32 - reference).abs().max() > 1e-3


# --------------------------------------------------------------------------------------------- refusals

def test_an_adapter_of_another_model_is_refused_naming_the_keys(tmp_path):
    small = tiny_recipe()
    block = "transformer.transformer_blocks.0."
    ad.write_adapter(random_adapter(small, [block + "self_attn.q_proj", block + "mlp.down_proj"], 2, 2.0, seed=4),
                     tmp_path / "dim32")
    wider = tiny_recipe(dim=48)
    before = {k: v.clone() for k, v in wider.state_dict().items()}
    with pytest.raises(ad.AdapterMismatchError) as err:
        ad.apply_adapters(wider, [str(tmp_path / "dim32")])
    text = str(err.value)
    assert f"adapter {tmp_path / 'dim32'} does not fit this model" in text
    assert "made for: recipe diffrhythm, backbone dit_diffrhythm (conv_layers 1, depth 1, dim 32, ff_mult 2" in text
    assert "this model: recipe diffrhythm, backbone dit_diffrhythm (conv_layers 1, depth 1, dim 48, ff_mult 2" in text
    assert "backbone settings that differ (adapter vs model) (1):\n    dim: 32 vs 48" in text
    assert (f"base_model.model.{block}self_attn.q_proj.lora_A.weight: (2, 32) vs the layer's 48 inputs") in text
    assert f"base_model.model.{block}self_attn.q_proj.lora_B.weight: (32, 2) vs the layer's 48 outputs" in text
    assert f"base_model.model.{block}mlp.down_proj.lora_A.weight: (2, 64) vs the layer's 96 inputs" in text
    # nothing was applied
    assert not any(isinstance(m, BaseTunerLayer) for m in wider.modules())
    assert all(torch.equal(v, before[k]) for k, v in wider.state_dict().items())

    # modules the model lacks, and a hint when the names are those of the bare DiT
    bare = random_adapter(small, [block + "self_attn.k_proj"], 2, 2.0, seed=5)
    bare.weights = {"transformer_blocks.0.self_attn.k_proj": bare.weights[block + "self_attn.k_proj"],
                    "transformer_blocks.3.self_attn.k_proj": bare.weights[block + "self_attn.k_proj"]}
    bare.made_for = {}
    ad.write_adapter(bare, tmp_path / "bare")
    with pytest.raises(ad.AdapterMismatchError, match=r"keys of modules the model lacks \(2\):\n    "
                       r"base_model\.model\.transformer_blocks\.0\.self_attn\.k_proj\.lora_A\.weight"):
        ad.apply_adapters(small, [str(tmp_path / "bare")])

    # the recipe it records
    other = random_adapter(small, [block + "self_attn.q_proj"], 2, 2.0, seed=6)
    other.made_for = {"recipe": "f5tts", "backbone": {"type": "dit_f5", "dim": 1024}}
    ad.write_adapter(other, tmp_path / "f5")
    with pytest.raises(ad.AdapterMismatchError, match="recipe: adapter f5tts, model diffrhythm") as err:
        ad.apply_adapters(small, [str(tmp_path / "f5")])
    assert "backbone: adapter dit_f5, model dit_diffrhythm" in str(err.value)


def test_bad_specs_and_folders_give_clear_errors(tmp_path):
    recipe = tiny_recipe()
    good = tmp_path / "good"
    ad.write_adapter(random_adapter(recipe, ["transformer.transformer_blocks.0.self_attn.q_proj"], 2, 2.0, seed=7),
                     good)
    assert ad.parse_spec(f"{good}:0.5") == ad.AdapterSpec(good, 0.5)
    assert ad.parse_spec(str(good)) == ad.AdapterSpec(good, 1.0)
    assert ad.parse_spec("good:-2", base=tmp_path) == ad.AdapterSpec(good, -2.0)
    assert ad.parse_spec({"path": "good"}, base=tmp_path) == ad.AdapterSpec(good, 1.0)
    colon = tmp_path / "v1:2"
    colon.mkdir()
    assert ad.parse_spec(str(colon)) == ad.AdapterSpec(colon, 1.0)  # an existing folder wins over DIR:SCALE

    for spec, message in [("", "empty adapter spec"), (f"{good}:loud", "bad scale 'loud'"),
                          (f"{good}:nan", "must be a finite number"), (":0.5", "has a scale but no folder"),
                          ({"path": "x", "gain": 2}, "an adapter entry is"), (3, "not a int")]:
        with pytest.raises(ad.AdapterError, match=message):
            ad.parse_spec(spec)

    with pytest.raises(ad.AdapterError, match="adapter folder .*nowhere does not exist"):
        ad.apply_adapters(recipe, [str(tmp_path / "nowhere")])
    with pytest.raises(ad.AdapterError, match="huggingface-cli download someone/their-lora --local-dir DIR"):
        ad.read_adapter("someone/their-lora")
    (tmp_path / "file.pt").write_bytes(b"")
    with pytest.raises(ad.AdapterError, match="is a file; an adapter is a folder holding adapter_config.json"):
        ad.read_adapter(tmp_path / "file.pt")
    half = tmp_path / "half"
    half.mkdir()
    (half / ad.CONFIG_FILE).write_text((good / ad.CONFIG_FILE).read_text())
    with pytest.raises(ad.AdapterError, match="lacks adapter_model.safetensors"):
        ad.read_adapter(half)
    (half / ad.WEIGHTS_FILE).write_bytes((good / ad.WEIGHTS_FILE).read_bytes())
    (half / ad.CONFIG_FILE).write_text("{not json")
    with pytest.raises(ad.AdapterError, match="cannot read .*adapter_config.json"):
        ad.read_adapter(half)
    config = json.loads((good / ad.CONFIG_FILE).read_text())
    (half / ad.CONFIG_FILE).write_text(json.dumps({**config, "use_dora": True}))
    with pytest.raises(ad.AdapterError, match="uses use_dora: only plain LoRA adapters"):
        ad.read_adapter(half)
    (half / ad.CONFIG_FILE).write_text(json.dumps({**config, "init_lora_weights": "pissa"}))
    with pytest.raises(ad.AdapterError, match="changes the base weights"):
        ad.read_adapter(half)
    (half / ad.WEIGHTS_FILE).write_bytes(b"garbage")
    (half / ad.CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(ad.AdapterError, match="cannot read .*adapter_model.safetensors"):
        ad.read_adapter(half)
    with pytest.raises(ad.AdapterError, match="is given twice"):
        ad.apply_adapters(recipe, [f"{good}:0.5", str(good)])
