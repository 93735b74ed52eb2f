"""The CLI's default path with the real pieces: toolkit.models.factory.build_recipe (DiffRhythm, tiny) and
the registered `latent_windows` dataset over a features folder; train, resume, LoRA export."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from toolkit.bin import train as train_cli
from toolkit.models.factory import build_recipe
from toolkit.training.checkpoint import load_checkpoint
from toolkit.training.weights import init_from

TINY = {
    "recipe": "diffrhythm",
    "max_frames": 64,
    "codec": {"type": "mel", "sample_rate": 8000, "channels": 2, "n_fft": 256, "hop_length": 128, "n_mels": 16,
              "griffin_lim_iters": 4},
    "lyrics": {"type": "lyrics_lrc", "language": "en"},
    "style": "style_tags",
    "backbone": {"type": "dit_diffrhythm", "dim": 32, "depth": 1, "ff_mult": 2, "conv_layers": 1, "num_heads": 2},
    "sampler": {"type": "flow", "steps": 3, "cfg_strength": 2.0},
    "data": {"type": "latent_windows", "max_frames": 48, "seed": 0},
    "train": {"batch_size": 4, "max_steps": 2, "lr": 1e-3, "warmup_steps": 1, "save_every": 2, "valid_every": 2,
              "valid_size": 2, "log_every": 1, "progress": False, "tensorboard": False,
              "ema": {"beta": 0.9, "update_after_step": 1, "update_every": 1}},
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe")
    torch.manual_seed(0)
    recipe = build_recipe({k: v for k, v in TINY.items() if k not in ("data", "train")})
    features = root / "features"
    features.mkdir()
    g = torch.Generator().manual_seed(0)
    entries = []
    for i in range(8):
        song = {"id": f"s{i}", "latent": torch.randn(30 + 5 * i, recipe.codec.latent_dim, generator=g),
                "frame_rate": float(recipe.codec.frame_rate), "line_times": [0.1, 0.5],
                "line_tokens": [[10, 11], [12]], "style": recipe.style.prepare("folk, guitar"), "tags": {}}
        torch.save(song, features / f"s{i}.pt")
        entries.append({"id": f"s{i}", "path": f"/nowhere/s{i}.wav"})
    (features / "train.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    return root, config, features


def test_cli_trains_resumes_and_exports_the_real_recipe(setup, capsys):
    root, config, features = setup
    exp = root / "exp"
    args = ["--config", str(config), "--exp", str(exp), "--features", str(features)]
    assert train_cli.main(args) == 0
    assert train_cli.main(args + ["train.max_steps=3", "train.save_every=3"]) == 0
    out = capsys.readouterr().out
    assert "resuming from" in out and "final valid loss (step 3)" in out
    ckpt = load_checkpoint(exp / "checkpoints" / "last.pt")
    assert ckpt["step"] == 3 and ckpt["config"]["recipe"] == "diffrhythm"
    rebuilt = build_recipe(ckpt["config"])  # a checkpoint rebuilds its own model
    init_from(rebuilt, exp / "checkpoints" / "last.pt")

    lora_exp = root / "lora"
    assert train_cli.main(["--config", str(config), "--exp", str(lora_exp), "--features", str(features),
                           "train.lora.rank=2", f"train.init_from={exp / 'checkpoints' / 'last.pt'}"]) == 0
    merged = root / "merged.pt"
    assert train_cli.main(["export-lora", "--checkpoint", str(lora_exp / "checkpoints" / "last.pt"),
                           "--out", str(merged)]) == 0
    plain = build_recipe(load_checkpoint(merged)["config"])
    init_from(plain, merged)
