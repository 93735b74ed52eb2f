"""Fine-tuning from a published-format checkpoint, LoRA through peft (keys, resume, EMA, the run's adapter folder),
the merged export, and the mismatch report."""

from __future__ import annotations

import shutil

import pytest
import torch
from peft.tuners.tuners_utils import BaseTunerLayer
from test_trainer_toy import REPO, ToyFrames, ToyRecipe, build_recipe, write_config

from toolkit.adapters import apply_adapters
from toolkit.bin import train as train_cli
from toolkit.checkpoints import load_checkpoint, read_weights
from toolkit.config import load_config
from toolkit.protocols import StepContext
from toolkit.training.lora import apply_lora
from toolkit.training.trainer import Trainer
from toolkit.training.weights import init_from, strict_load
from toolkit.weights import WeightsMismatchError

FAST = ["train.max_steps=4", "train.save_every=4", "train.valid_every=4", "train.log_every=1", "train.lr=0.05",
        "train.warmup_steps=0"]


@pytest.fixture()
def published(tmp_path):
    """A released-style cfm_model.pt: {"model_state_dict": fp16 tensors}, of a differently seeded model."""
    torch.manual_seed(1234)
    source = ToyRecipe()
    path = tmp_path / "cfm_model.pt"
    torch.save({"model_state_dict": {k: v.half() for k, v in source.state_dict().items()}}, path)
    return path


def _train(tmp_path, name, overrides):
    cfg = load_config(write_config(tmp_path), FAST + overrides)
    torch.manual_seed(0)
    recipe = build_recipe(cfg)
    exp = tmp_path / name
    Trainer(recipe, ToyFrames(), exp, cfg).fit()
    return recipe, load_checkpoint(exp / "checkpoints" / "last.pt"), exp


def test_init_from_published_checkpoint_loads_fp16_weights_strictly(tmp_path, published):
    recipe = ToyRecipe()
    init_from(recipe, published)
    stored = torch.load(published, weights_only=True)["model_state_dict"]
    for key, value in recipe.state_dict().items():
        assert value.dtype == torch.float32 and torch.equal(value, stored[key].float())


def test_lora_trains_only_adapters_and_merged_export_matches(tmp_path, published, capsys):
    recipe, ckpt, exp = _train(tmp_path, "lora", [f"train.init_from={published}", "train.lora.rank=2",
                                                  "train.lora.alpha=4", "train.lora.targets=[q_proj,o_proj]"])
    assert "trainable parameters: 92 of 368" in capsys.readouterr().out
    assert isinstance(recipe.transformer.q_proj, BaseTunerLayer)  # peft's LoRA layer
    assert type(recipe.transformer.time_proj) is torch.nn.Linear
    trained = [n for n, p in recipe.named_parameters() if p.requires_grad]
    assert sorted(trained) == ["transformer.o_proj.lora_A.default.weight", "transformer.o_proj.lora_B.default.weight",
                               "transformer.q_proj.lora_A.default.weight", "transformer.q_proj.lora_B.default.weight"]
    base = torch.load(published, weights_only=True)["model_state_dict"]
    state = ckpt["model_state_dict"]
    # the checkpoint keeps the base model's key names (no peft `base_layer.`), plus the adapters under peft's names
    assert sorted(set(state) - set(base)) == ["transformer.o_proj.lora_A.weight", "transformer.o_proj.lora_B.weight",
                                              "transformer.q_proj.lora_A.weight", "transformer.q_proj.lora_B.weight"]
    for key, value in base.items():  # the base weights did not move
        assert torch.equal(state[key], value.float()), key
    assert state["transformer.q_proj.lora_B.weight"].abs().max() > 0  # the adapters did
    assert "ema_model.transformer.q_proj.lora_A.weight" in ckpt["ema_model_state_dict"]
    assert (exp / "adapter" / "adapter_config.json").is_file()  # the run's adapter as a peft folder

    merged_path = tmp_path / "merged.pt"
    assert train_cli.main(["export-lora", "--checkpoint", str(exp / "checkpoints" / "last.pt"),
                           "--out", str(merged_path)]) == 0
    merged = load_checkpoint(merged_path)
    assert "lora" not in merged["config"]["train"] and not any("lora" in k for k in merged["model_state_dict"])

    adapted = ToyRecipe()  # the LoRA model rebuilt from its checkpoint: base keys load strictly with the adapters
    apply_lora(adapted, 2, 4, ["q_proj", "o_proj"])
    strict_load(adapted, read_weights(exp / "checkpoints" / "last.pt", use_ema=True))
    plain = ToyRecipe()
    init_from(plain, merged_path)  # a plain model: strict load of the merged weights
    unmerged = ToyRecipe()  # the published base with the run's adapter folder applied, unmerged
    init_from(unmerged, published)
    apply_adapters(unmerged, [str(exp / "adapter")])
    ds = ToyFrames()
    batch = ds.collate([ds[(i, 0, i)] for i in range(6)])
    with torch.no_grad():
        x = torch.randn(6, 5, 10)
        t = torch.rand(6, 5, 1)
        for model in (adapted, unmerged):
            torch.testing.assert_close(plain.transformer(x, t), model.transformer(x, t), rtol=0, atol=1e-5)
            torch.testing.assert_close(plain.training_step(batch, StepContext(0, 0))["loss"],
                                       model.training_step(batch, StepContext(0, 0))["loss"], rtol=0, atol=1e-5)
        # the adapters matter: the base weights alone give other outputs
        base_only = ToyRecipe()
        init_from(base_only, published)
        assert (base_only.transformer(x, t) - plain.transformer(x, t)).abs().max() > 1e-3


def test_lora_resume_is_exact_and_the_ema_shares_the_frozen_base(tmp_path, published):
    lora = [f"train.init_from={published}", "train.lora.rank=2", "train.lora.targets=[q_proj,o_proj]",
            "train.save_every=2", "train.lora.dropout=0.1"]
    _, whole, exp = _train(tmp_path, "lora", lora)
    # as if killed after the step-2 checkpoint: last.pt back at step 2, then the same command again
    checkpoints = exp / "checkpoints"
    shutil.copyfile(checkpoints / "step_00000002.pt", checkpoints / "last.pt")
    (checkpoints / "step_00000004.pt").unlink()
    cfg = load_config(write_config(tmp_path), FAST + lora)
    torch.manual_seed(0)
    trainer = Trainer(build_recipe(cfg), ToyFrames(), exp, cfg)
    trainer.fit()
    resumed = load_checkpoint(checkpoints / "last.pt")
    assert resumed["step"] == whole["step"] == 4
    for part in ("model_state_dict", "ema_model_state_dict"):
        assert resumed[part].keys() == whole[part].keys()
        for key, value in whole[part].items():
            assert torch.equal(resumed[part][key], value), (part, key)
    # the EMA copy holds its own adapters but shares the frozen base weights with the online model
    online, ema = trainer.recipe.transformer, trainer.ema.ema_model.transformer
    assert ema.q_proj.base_layer.weight is online.q_proj.base_layer.weight
    assert ema.time_proj.weight is online.time_proj.weight
    assert ema.q_proj.lora_A["default"].weight is not online.q_proj.lora_A["default"].weight


def test_full_finetune_starts_from_the_published_weights(tmp_path, published):
    # one update at the first warm-up factor (1e-8 x lr): the weights stay where training started
    recipe, ckpt, _ = _train(tmp_path, "full", [f"train.init_from={published}", "train.max_steps=1",
                                                "train.save_every=1", "train.warmup_steps=10"])
    torch.manual_seed(0)
    fresh = ToyRecipe().state_dict()  # what the recipe held before init_from
    base = torch.load(published, weights_only=True)["model_state_dict"]
    for key, value in base.items():
        torch.testing.assert_close(ckpt["model_state_dict"][key], value.float(), rtol=0, atol=1e-6)
        assert (fresh[key] - value.float()).abs().max() > 1e-2
    assert all(p.requires_grad for p in recipe.parameters())


def test_wrong_keys_give_a_readable_report(tmp_path, published, capsys):
    state = torch.load(published, weights_only=True)["model_state_dict"]
    state["transformer.q_proj.wieght"] = state.pop("transformer.q_proj.weight")
    state["transformer.o_proj.weight"] = torch.zeros(7, 16, dtype=torch.float16)
    bad = tmp_path / "bad.pt"
    torch.save({"model_state_dict": state}, bad)
    with pytest.raises(WeightsMismatchError) as err:
        init_from(ToyRecipe(), bad)
    text = str(err.value)
    assert "missing keys (in the model, not in the file) (1):\n    transformer.q_proj.weight" in text
    assert "unexpected keys (in the file, not in the model) (1):\n    transformer.q_proj.wieght" in text
    assert "transformer.o_proj.weight: (7, 16) vs (4, 16)" in text

    # through the CLI: exit status 2 and the report instead of a traceback
    config = write_config(tmp_path)
    code = train_cli.main(["--config", str(config), "--exp", str(tmp_path / "exp"), f"train.init_from={bad}"],
                          build_recipe=build_recipe)
    assert code == 2
    printed = capsys.readouterr().err
    assert printed.startswith("toolkit-train: error: train.init_from=") and "transformer.q_proj.wieght" in printed


def test_lora_checkpoint_into_a_plain_model_hints_at_export(tmp_path):
    adapted = ToyRecipe()
    apply_lora(adapted, 2, None, ["q_proj"])
    with pytest.raises(WeightsMismatchError, match="export-lora"):
        strict_load(ToyRecipe(), adapted.state_dict())
    with pytest.raises(ValueError, match="match no linear layer"):
        apply_lora(ToyRecipe(), 2, None, ["nope_proj"])


def test_released_lora_config_fits_the_released_dit():
    from toolkit.config import to_plain
    from toolkit.models.diffrhythm.checkpoints import build_released_backbone
    from toolkit.registry import BACKBONES
    from toolkit.training.config import TrainConfig
    from toolkit.training.lora import resolve_targets

    cfg = to_plain(load_config(REPO / "egs/diffrhythm/conf/finetune_lora_released.yaml"))
    with torch.device("meta"):
        dit = BACKBONES.build(cfg["backbone"], latent_dim=cfg["codec"]["latent_dim"], max_frames=cfg["max_frames"])
    released = build_released_backbone("base", device="meta")
    assert {k: v.shape for k, v in dit.state_dict().items()} == {k: v.shape for k, v in released.state_dict().items()}
    holder = torch.nn.Module()
    holder.transformer = dit
    lora = TrainConfig.from_config(cfg["train"]).lora
    names = resolve_targets(holder, lora.targets)
    assert len(names) == 16 * 7  # attention and MLP projections of every block
    layers = [holder.get_submodule(n) for n in names]
    assert sum(lora.rank * (m.in_features + m.out_features) for m in layers) == 12_058_624  # as the config says
