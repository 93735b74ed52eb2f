"""toolkit-generate --pretrained DIR: a folder laid out like the published downloads, at tiny sizes.

DiT: random weights under the published key names ("transformer.*", fp16, {"model_state_dict": ...}) at the
golden small config (dim 128, depth 2, ff_mult 2, conv_layers 1, 32 heads) with the fixture VAE's 8-d latents;
VAE: the golden TorchScript fixture (hop 32); MuQ-MuLan: the tiny folder of tests/test_style_mulan.py.
Sizes are read off the files (docs/generate.md), so no override is needed.
"""

import json
import shutil

import mutagen
import numpy as np
import pytest
import soundfile as sf
import torch
from golden import golden_file
from test_generate_fixtures import run

from toolkit.backbones.dit_diffrhythm import DiffRhythmDiT
from toolkit.models.diffrhythm.pretrained import PretrainedError, locate, pretrained_config, resolve_variant

SMALL = dict(dim=128, depth=2, ff_mult=2, text_dim=512, conv_layers=1, text_num_embeds=363, num_heads=32)
LRC = "[00:00.01]hello world\n[00:00.05]la la la\n[00:00.09]\n"  # base model: the last line marks the end


def published_dit(path, latent_dim=8, max_frames=2048, seed=0):
    torch.manual_seed(seed)
    dit = DiffRhythmDiT(**SMALL, latent_dim=latent_dim, max_frames=max_frames)
    with torch.no_grad():
        for p in dit.parameters():
            p.add_(0.05 * torch.randn_like(p))
    state = {f"transformer.{k}": v.half() for k, v in dit.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model_state_dict": state}, path)
    return dit


def build_published_folder(root):
    """A folder laid out like the published downloads (DiT, VAE, MuQ-MuLan), at tiny sizes."""
    from test_style_mulan import build_tiny_mulan

    published_dit(root / "DiffRhythm-1_2" / "cfm_model.pt")
    shutil.copy(golden_file("oobleck", "vae_small_scripted.pt"), root / "vae_model.pt")
    (root / "MuQ-MuLan-large").mkdir()
    build_tiny_mulan(root / "MuQ-MuLan-large")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = build_published_folder(tmp_path_factory.mktemp("pretrained"))
    (root / "song.lrc").write_text(LRC, encoding="utf-8")
    return root


def test_the_config_is_read_off_the_files(folder):
    cfg, files, variant = pretrained_config(folder, "base")
    assert files.dit == folder / "DiffRhythm-1_2" / "cfm_model.pt" and files.vae == folder / "vae_model.pt"
    assert files.audio_tower.name == "MuQ-large-msd-iter" and files.text_tower.name == "xlm-roberta-base"
    assert variant == "base" and cfg["max_frames"] == 2048
    assert cfg["backbone"] == {"type": "dit_diffrhythm", "dim": 128, "depth": 2, "ff_mult": 2, "text_dim": 512,
                               "conv_layers": 1, "text_num_embeds": 363, "style_dim": 512, "num_heads": 32,
                               "duration_embed": False}
    assert cfg["codec"]["type"] == "oobleck" and cfg["codec"]["weights"] == str(files.vae)
    assert cfg["codec"]["latent_dim"] == 8 and cfg["codec"]["strides"] == [2, 4, 4] and cfg["codec"]["chunked"]
    conditions = cfg["conditions"]
    assert conditions["style"]["conditioner"]["type"] == "style_mulan"
    assert conditions["lyrics"]["conditioner"]["type"] == "lyrics_lrc" and "duration" not in conditions
    assert conditions["style"]["uncond"] == "negative"  # upstream's fixed negative style embedding
    assert cfg["sampler"] == {"type": "flow", "steps": 31, "cfg_strength": 4.0}


def test_published_weights_load_strictly(folder, tmp_path):
    from toolkit.models.diffrhythm.pretrained import build_published_recipe
    from toolkit.weights import WeightsMismatchError

    cfg, files, _ = pretrained_config(folder, "base")
    recipe = build_published_recipe(cfg, files.dit)
    stored = torch.load(files.dit, weights_only=True)["model_state_dict"]
    for key, value in recipe.transformer.state_dict().items():
        assert torch.equal(value, stored[f"transformer.{key}"].float()), key
    tensors = [*recipe.parameters(), *recipe.buffers(), *recipe.codec.parameters(), *recipe.codec.buffers()]
    assert not any(t.is_meta for t in tensors)
    # Built without random initialisation, the DiT computes what the ordinarily built one does.
    from toolkit.models.diffrhythm.pretrained import load_dit_weights
    from toolkit.models.factory import build_recipe

    plain = build_recipe(cfg)
    load_dit_weights(plain, files.dit)
    g = torch.Generator().manual_seed(0)
    x, cond = torch.randn(1, 40, 8, generator=g), torch.zeros(1, 40, 8)
    conditions = {"lyrics": torch.randint(0, 364, (1, 40), generator=g), "style": torch.randn(1, 512, generator=g)}
    with torch.no_grad():
        assert torch.equal(recipe.transformer(x, cond, conditions, torch.tensor([0.3])),
                           plain.transformer(x, cond, conditions, torch.tensor([0.3])))

    del stored["transformer.proj_out.bias"]
    torch.save({"model_state_dict": stored}, tmp_path / "cfm_model.pt")
    with pytest.raises(WeightsMismatchError, match="proj_out.bias"):
        build_published_recipe(cfg, tmp_path / "cfm_model.pt")


def test_variants(folder, tmp_path):
    meta = {"input_embed.proj.weight": torch.empty(4, 4, device="meta")}
    with_duration = {**meta, "duration_time_embed.time_mlp.0.weight": torch.empty(1, device="meta")}
    assert resolve_variant(with_duration, None, "f") == "full"
    assert resolve_variant(with_duration, "v1.2-full", "f") == "full"
    assert resolve_variant(meta, "base", "f") == "base" and resolve_variant(meta, "full", "f") == "full-v1.0"
    with pytest.raises(PretrainedError, match="--variant base or --variant full"):
        resolve_variant(meta, None, "f")
    with pytest.raises(PretrainedError, match="not base"):
        resolve_variant(with_duration, "base", "f")
    # Two DiTs side by side: the length (or --variant) picks the folder.
    two = tmp_path / "two"
    for name in ("DiffRhythm-1_2", "DiffRhythm-1_2-full"):
        (two / name).mkdir(parents=True)
        (two / name / "cfm_model.pt").write_bytes(b"x")
    shutil.copytree(folder / "MuQ-MuLan-large", two / "MuQ-MuLan-large")
    (two / "vae_model.pt").write_bytes(b"x")
    assert locate(two, seconds=60).dit.parent.name == "DiffRhythm-1_2"
    assert locate(two, seconds=200).dit.parent.name == "DiffRhythm-1_2-full"
    assert locate(two, variant="full").dit.parent.name == "DiffRhythm-1_2-full"


def test_without_variant_the_ambiguous_dit_is_an_error(folder, tmp_path, capsys):
    status, err = run(["--pretrained", folder, "--lrc", folder / "song.lrc", "--style-text", "folk",
                       "--out", tmp_path / "o"], capsys)
    assert status == 2 and "say which with --variant base or --variant full" in err
    assert not (tmp_path / "o").exists()


def test_generate_from_the_published_layout(folder, tmp_path):
    out = tmp_path / "songs"
    status, _ = run(["--pretrained", folder, "--variant", "base", "--lrc", folder / "song.lrc", "--style-text",
                     "folk, acoustic guitar", "--length", "0.1", "--steps", "2", "--seed", "4", "--quiet",
                     "--title", "Tiny", "--out", out])
    assert status == 0
    wav, sr = sf.read(str(out / "Tiny.wav"), dtype="float32")
    frames = int(0.1 * 44100 / 32)
    assert sr == 44100 and wav.shape == (frames * 32, 2) and np.isfinite(wav).all()
    assert 20 * np.log10(np.abs(wav).max()) == pytest.approx(-1.0, abs=1e-3)
    manifest = json.loads((out / "Tiny.json").read_text())
    assert manifest["checkpoint"]["path"] == str((folder / "DiffRhythm-1_2" / "cfm_model.pt").resolve())
    assert manifest["checkpoint"]["variant"] == "base"
    assert len(manifest["checkpoint"]["files"]["vae"]["sha256"]) == 16
    assert manifest["config"]["codec"]["type"] == "oobleck"
    assert manifest["config"]["conditions"]["style"]["conditioner"]["type"] == "style_mulan"
    assert manifest["steps"] == 2 and manifest["guidance"] == 4.0
    assert manifest["seconds"] == pytest.approx(frames / (44100 / 32))
    tags = mutagen.File(str(out / "Tiny.wav")).tags
    assert [t for t, _ in tags.getall("SYLT")[0].text] == ["hello world", "la la la"]
