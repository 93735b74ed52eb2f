"""A published-layout Stable Audio Open folder (model_config.json + model.safetensors / model.ckpt, T5 in its own
folder) with tiny random weights under the published key names: it is configured from its files, loads strictly
(a missing or wrong-shape key is named by its published name) and generates through toolkit-generate."""

from __future__ import annotations

import copy
import json

import pytest
import soundfile as sf
import torch
import transformers
from safetensors.torch import load_file, save_file

from toolkit.backbones.dit_sao import SAODiT
from toolkit.bin.generate import main as generate_main
from toolkit.codecs.oobleck import OobleckCodec
from toolkit.conditioners.number import NumberConditioner
from toolkit.models.stable_audio.pretrained import PretrainedError, find_files, published_config

T5_CONFIG = {"vocab_size": 48, "d_model": 16, "d_kv": 4, "d_ff": 32, "num_layers": 1, "num_heads": 4,
             "feed_forward_proj": "relu", "pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0}
VAE = {"channels": 4, "c_mults": [1, 2], "strides": [2, 4], "use_snake": True}
SAO_1 = {  # Stable Audio Open 1.0's layout at toy sizes
    "model_type": "diffusion_cond", "sample_size": 4096, "sample_rate": 44100, "audio_channels": 2,
    "model": {
        "pretransform": {"type": "autoencoder", "iterate_batch": True, "config": {
            "encoder": {"type": "oobleck", "requires_grad": False,
                        "config": {"in_channels": 2, "latent_dim": 8, **VAE}},
            "decoder": {"type": "oobleck", "config": {"out_channels": 2, "latent_dim": 4, "final_tanh": False, **VAE}},
            "bottleneck": {"type": "vae"}, "latent_dim": 4, "downsampling_ratio": 8, "io_channels": 2}},
        "conditioning": {"configs": [
            {"id": "prompt", "type": "t5", "config": {"t5_model_name": "t5-base", "max_length": 8}},
            {"id": "seconds_start", "type": "number", "config": {"min_val": 0, "max_val": 512}},
            {"id": "seconds_total", "type": "number", "config": {"min_val": 0, "max_val": 512}}], "cond_dim": 32},
        "diffusion": {"cross_attention_cond_ids": ["prompt", "seconds_start", "seconds_total"],
                      "global_cond_ids": ["seconds_start", "seconds_total"], "type": "dit",
                      "config": {"io_channels": 4, "embed_dim": 64, "depth": 1, "num_heads": 2, "cond_token_dim": 32,
                                 "global_cond_dim": 64, "project_cond_tokens": False,
                                 "transformer_type": "continuous_transformer"}},
        "io_channels": 4},
}


def small_layout() -> dict:
    """Stable Audio Open Small's layout: rectified flow, qk LayerNorm, only seconds_total."""
    cfg = copy.deepcopy(SAO_1)
    model = cfg["model"]
    model["conditioning"]["configs"] = [model["conditioning"]["configs"][0],
                                        {"id": "seconds_total", "type": "number", "config": {"min_val": 0,
                                                                                             "max_val": 256}}]
    model["diffusion"].update({"cross_attention_cond_ids": ["prompt", "seconds_total"],
                               "global_cond_ids": ["seconds_total"], "diffusion_objective": "rf_denoiser",
                               "distribution_shift_options": {"min_length": 32, "max_length": 256}})
    model["diffusion"]["config"].update({"global_cond_dim": 32, "project_cond_tokens": True,
                                         "attn_kwargs": {"qk_norm": "ln"}})
    return cfg


def t5_folder(path):
    from test_t5_tokenizer import tiny_tokenizer

    path.mkdir()
    tiny_tokenizer().save_pretrained(path)
    torch.manual_seed(0)
    transformers.T5EncoderModel(transformers.T5Config(**T5_CONFIG)).save_pretrained(path)
    return path


def published_state(config: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights under the published names (what a released model.safetensors holds)."""
    torch.manual_seed(seed)
    model = config["model"]
    dit = SAODiT(**SAODiT.upstream_kwargs({**model["diffusion"]["config"],
                                           "diffusion_objective": model["diffusion"].get("diffusion_objective",
                                                                                         "v")}))
    state = {f"model.model.{k}": v + 0.02 * torch.randn_like(v) for k, v in dit.state_dict().items()}
    cond_dim = model["conditioning"]["cond_dim"]
    for entry in model["conditioning"]["configs"]:
        if entry["type"] == "number":
            number = NumberConditioner(cond_dim, **entry["config"])
            state.update({f"conditioner.conditioners.{entry['id']}.{k}": v for k, v in number.state_dict().items()})
        else:  # T5 (16-d) to the 32-d cond_dim: upstream's proj_out Linear
            proj = torch.nn.Linear(T5_CONFIG["d_model"], cond_dim)
            state.update({f"conditioner.conditioners.{entry['id']}.proj_out.{k}": v
                          for k, v in proj.state_dict().items()})
    vae = OobleckCodec(latent_dim=4, base_channels=4, c_mults=[1, 2], strides=[2, 4])
    state.update({f"pretransform.model.{k}": v for k, v in vae.state_dict().items()})
    return {k: v.contiguous() for k, v in state.items()}


def published_folder(root, config: dict, ckpt: bool = False):
    root.mkdir()
    (root / "model_config.json").write_text(json.dumps(config))
    state = published_state(config)
    if ckpt:
        torch.save({"state_dict": state}, root / "model.ckpt")
    else:
        save_file(state, str(root / "model.safetensors"))
    return root


@pytest.fixture(scope="module")
def t5(tmp_path_factory):
    return t5_folder(tmp_path_factory.mktemp("t5") / "t5-base")


def run(args, capsys):
    status = generate_main([str(a) for a in args])
    return status, capsys.readouterr().err


def test_the_config_is_read_off_the_files(tmp_path, t5):
    folder = published_folder(tmp_path / "sao", SAO_1)
    files = find_files(folder, t5)
    cfg = published_config(files)
    assert cfg["max_frames"] == 512 and cfg["default_seconds"] == pytest.approx(4096 / 44100, abs=1e-3)
    assert cfg["codec"]["type"] == "oobleck" and cfg["codec"]["latent_dim"] == 4
    assert cfg["codec"]["weights"] == str(folder / "model.safetensors")
    assert cfg["conditions"]["prompt"] == {"conditioner": {"type": "t5_text", "model_path": str(t5), "output_dim": 32,
                                                          "max_length": 8, "key": "prompt"},
                                           "input": "cross_attn", "drop": "prompt"}
    assert cfg["conditions"]["seconds_total"]["input"] == ["cross_attn", "global"]
    assert cfg["conditions"]["seconds_total"]["drop_at"] == ["cross_attn"]
    assert cfg["conditions"]["seconds_total"]["conditioner"]["derive"] == "total"
    assert cfg["objective"]["type"] == "v_diffusion" and cfg["sampler"]["type"] == "v_diffusion"
    assert cfg["sampler"]["cfg_scale"] == 7.0 and cfg["sampler"]["uncond_drop"] == ["prompt"]
    small = published_config(find_files(published_folder(tmp_path / "small", small_layout()), t5))
    assert small["backbone"]["qk_norm"] == "ln" and small["objective"]["type"] == "rectified_flow"
    assert small["objective"]["dist_shift"] == {"min_length": 32, "max_length": 256}
    assert small["sampler"]["method"] == "pingpong" and set(small["conditions"]) == {"prompt", "seconds_total"}


def test_missing_files_are_named(tmp_path, t5):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PretrainedError, match="holds no Stable Audio model_config.json"):
        find_files(empty)
    (empty / "model_config.json").write_text(json.dumps(SAO_1))
    with pytest.raises(PretrainedError, match="no model.safetensors or model.ckpt"):
        find_files(empty)
    save_file({"x": torch.zeros(1)}, str(empty / "model.safetensors"))
    with pytest.raises(PretrainedError, match="--t5 DIR"):
        published_config(find_files(empty))  # no T5 folder inside, none given
    with pytest.raises(PretrainedError, match="is not a T5 folder"):
        find_files(empty, tmp_path)


@pytest.mark.parametrize("layout,ckpt", [("sao_1.0", False), ("small", True)])
def test_generate_from_the_published_layout(tmp_path, t5, capsys, layout, ckpt):
    config = SAO_1 if layout == "sao_1.0" else small_layout()
    folder = published_folder(tmp_path / "published", config, ckpt=ckpt)
    out = tmp_path / "out"
    status, err = run(["stable_audio", "--pretrained", folder, "--t5", t5, "--prompt", "kick", "--seconds-total",
                       "0.05", "--steps", "2", "--seed", "3", "--quiet", "--title", "Tiny", "--out", out], capsys)
    assert status == 0, err
    wav, sr = sf.read(str(out / "Tiny.wav"), dtype="float32")
    frames = int(0.05 * 44100 / 8)
    assert sr == 44100 and wav.shape == (frames * 8, 2) and torch.isfinite(torch.from_numpy(wav)).all()
    manifest = json.loads((out / "Tiny.json").read_text())
    assert manifest["checkpoint"]["weights"] == "published"
    assert manifest["checkpoint"]["folders"]["t5"] == str(t5.resolve())
    assert manifest["config"]["conditions"]["prompt"]["conditioner"]["type"] == "t5_text"
    assert manifest["style"] == {"audio": None, "text": "kick"} and manifest["seconds_total"] == 0.05


def test_the_t5_folder_inside_is_found_and_the_recipe_picked(tmp_path, t5, capsys):
    import shutil

    folder = published_folder(tmp_path / "published", SAO_1)
    shutil.copytree(t5, folder / "t5-base")
    status, err = run(["--pretrained", folder, "--prompt", "kick", "--seconds-total", "0.05", "--steps", "1",
                       "--quiet", "--out", tmp_path / "x.wav"], capsys)
    assert status == 0, err
    assert (tmp_path / "x.wav").is_file()


@pytest.mark.parametrize("change,named", [
    ("missing", "model.model.transformer.layers.0.ff.ff.0.proj.bias"),
    ("shape", "conditioner.conditioners.seconds_total.embedder.embedding.1.bias")])
def test_a_mismatch_is_named_by_its_published_key(tmp_path, t5, capsys, change, named):
    folder = published_folder(tmp_path / "published", SAO_1)
    state = load_file(str(folder / "model.safetensors"))
    if change == "missing":
        assert named in state
        del state[named]
    else:
        state[named] = torch.zeros(state[named].shape[0] + 1)
    save_file(state, str(folder / "model.safetensors"))
    status, err = run(["stable_audio", "--pretrained", folder, "--t5", t5, "--prompt", "kick", "--seconds-total",
                       "0.05", "--steps", "1", "--quiet", "--out", tmp_path / "x.wav"], capsys)
    assert status != 0 and named in err
    assert not (tmp_path / "x.wav").exists()
