"""The CLI's default path with the real pieces: toolkit.models.factory.build_recipe (DiffRhythm, tiny) and
the registered `latent_windows` dataset over a features folder; train, resume, LoRA export."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from tiny_recipes import song_features, tiny_song

from toolkit.bin import train as train_cli
from toolkit.checkpoints import load_checkpoint
from toolkit.models.factory import build_recipe
from toolkit.protocols import StepContext
from toolkit.training.weights import init_from

TINY = tiny_song(
    backbone={"type": "dit_diffrhythm", "dim": 32, "depth": 1, "ff_mult": 2, "conv_layers": 1, "num_heads": 2},
    data={"type": "latent_windows", "max_frames": 48, "seed": 0},
    train={"batch_size": 4, "max_steps": 2, "lr": 1e-3, "warmup_steps": 1, "save_every": 2, "valid_every": 2,
           "valid_size": 2, "log_every": 1, "progress": False, "tensorboard": False,
           "ema": {"beta": 0.9, "update_after_step": 1, "update_every": 1}})


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
        song = song_features(recipe, f"s{i}", torch.randn(30 + 5 * i, recipe.codec.latent_dim, generator=g),
                             [(0.1, [10, 11]), (0.5, [12])], "folk, guitar")
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


def test_fixed_valid_times_and_always_dropped_groups(setup, tmp_path):
    """`valid_times` evaluates every validation window at each fixed flow time (same noise), and
    `valid_drop_always` drops a group in both figures; the pair still differs only by lyrics and style."""
    from toolkit.training.trainer import Trainer

    root, _, features = setup
    cfg = {**TINY, "train": {**TINY["train"], "valid_times": [0.0, 0.5], "valid_drop_always": ["audio"],
                             "valid_windows": 2}}
    torch.manual_seed(1)
    recipe = build_recipe({k: v for k, v in cfg.items() if k not in ("data", "train")})
    dataset = train_cli.build_dataset(cfg["data"], features, 0, recipe.conditions)
    with torch.no_grad():  # the DiT's output layer starts at zero: move every weight so time and drops matter
        for p in recipe.transformer.parameters():
            p.add_(0.05 * torch.randn_like(p))
    trainer = Trainer(recipe, dataset, tmp_path / "exp", cfg)
    trainer._setup()
    assert sum(int(b["lens"].numel()) for b in trainer.valid_batches) == 2 * 2  # 2 items x 2 windows
    figures = trainer.validate()

    def expected(drop: bool) -> float:
        total = 0.0
        for batch in trainer.valid_batches:
            for t in (0.0, 0.5):
                ctx = StepContext(step=-1, seed=0, num_valid_global=trainer.valid_frames,
                                  drop_override={"lyrics": drop, "style": drop, "audio": True}, time_override=t)
                total += float(recipe.training_step(batch, ctx)["loss"])
        return total / 2

    recipe.eval()
    with torch.no_grad():
        assert figures["valid_loss"] == pytest.approx(expected(False), rel=1e-6)
        assert figures["valid_loss_dropped"] == pytest.approx(expected(True), rel=1e-6)
        assert figures["valid_loss"] != figures["valid_loss_dropped"]
        # the fixed time really is used: another time gives another loss
        batch = trainer.valid_batches[0]
        at = [float(recipe.training_step(batch, StepContext(-1, 0, time_override=t))["loss"]) for t in (0.0, 0.0, 0.9)]
    assert at[0] == at[1] != at[2]


@pytest.mark.parametrize("override, message", [
    ({"valid_times": [1.0]}, "flow times in \\[0, 1\\)"),
    ({"valid_drop_always": ["style"]}, "cannot be in both"),
    ({"valid_windows": 0}, "valid_windows must be at least 1"),
])
def test_validation_settings_are_checked(override, message):
    from toolkit.config import ConfigError
    from toolkit.training.config import TrainConfig

    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_config({**TINY["train"], **override}).validate()


@pytest.mark.slow
def test_a_model_trained_on_style_dependent_songs_uses_its_style(tmp_path):
    """The whole path the demo relies on, in small: songs whose spectrum follows their style tags are
    learnt, and the fixed validation at the start of sampling (t = 0, no audio prompt) shows the
    model using the style: its loss is far below the same loss with the style dropped."""
    from toolkit.training.trainer import Trainer

    torch.manual_seed(0)
    recipe = build_recipe({k: v for k, v in TINY.items() if k not in ("data", "train")})
    features = tmp_path / "features"
    features.mkdir()
    g = torch.Generator().manual_seed(3)
    dim = recipe.codec.latent_dim
    styles = {"folk, guitar": torch.linspace(-1.5, 1.5, dim), "metal, drums": -torch.linspace(-1.5, 1.5, dim)}
    entries = {"train": [], "valid": []}
    for i in range(10):
        tags = list(styles)[i % 2]
        song = song_features(recipe, f"s{i}", styles[tags] + 0.3 * torch.randn(60, dim, generator=g), [], tags)
        torch.save(song, features / f"s{i}.pt")
        entries["valid" if i >= 8 else "train"].append({"id": f"s{i}", "path": f"/nowhere/s{i}.wav"})
    for split, items in entries.items():
        (features / f"{split}.jsonl").write_text("".join(json.dumps(e) + "\n" for e in items))
    cfg = {**TINY, "train": {**TINY["train"], "max_steps": 120, "valid_every": 120, "save_every": 120,
                             "lr": 3e-3, "warmup_steps": 10, "valid_times": [0.0], "valid_drop_always": ["audio"],
                             "valid_drop": ["style"], "valid_windows": 2}}
    dataset = train_cli.build_dataset(cfg["data"], features, 0, recipe.conditions)
    valid = train_cli.build_dataset({**cfg["data"], "split": "valid"}, features, 0, recipe.conditions)
    summary = Trainer(recipe, dataset, tmp_path / "exp", cfg, valid_dataset=valid).fit()
    assert summary["final_valid_loss"] < 0.8 * summary["initial_valid_loss"]
    assert summary["final_valid_loss"] < 0.75 * summary["final_valid_loss_dropped"], summary
