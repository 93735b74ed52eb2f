"""Loading published-format DiffRhythm checkpoints: formats, variants, strict mismatch reports."""

from __future__ import annotations

import pickle

import pytest
import torch
from safetensors.torch import save_file

from toolkit.backbones.dit_diffrhythm import DiffRhythmDiT
from toolkit.checkpoints import CheckpointError
from toolkit.models.diffrhythm.checkpoints import (
    detect_variant,
    load_diffrhythm_checkpoint,
    load_state_dict_strict,
    read_state_dict,
    released_config,
)
from toolkit.weights import WeightsMismatchError

SMALL = dict(dim=64, depth=2, ff_mult=2, text_dim=512, conv_layers=1, latent_dim=8, num_heads=4)


def small_model(variant: str = "base", seed: int = 0) -> DiffRhythmDiT:
    torch.manual_seed(seed)
    model = DiffRhythmDiT(**{**released_config(variant), **SMALL})
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.05)  # no zero tensors, so a wrong source is visible
    return model


def assert_same_weights(model: torch.nn.Module, state: dict, dtype=torch.float16) -> None:
    loaded = model.state_dict()
    assert set(loaded) == set(state)
    for k, v in state.items():
        assert torch.equal(loaded[k], v.to(dtype).to(loaded[k].dtype)), k


def test_published_cfm_model_pt(tmp_path):
    source = small_model("base")
    path = tmp_path / "cfm_model.pt"
    torch.save({"model_state_dict": {f"transformer.{k}": v.half() for k, v in source.state_dict().items()}}, path)
    model = load_diffrhythm_checkpoint(path, "base", config=SMALL)
    assert model.max_frames == 2048 and not model.has_duration and not model.training
    assert next(model.parameters()).dtype == torch.float32
    assert_same_weights(model, source.state_dict())
    assert model.text_embed.freqs_cis.shape == (2048, 512)  # non-persistent buffers were rebuilt
    assert torch.isfinite(model.rotary.inv_freq).all()


def test_trainer_checkpoint_uses_ema_and_skips_bookkeeping(tmp_path):
    online, ema = small_model("full", seed=1), small_model("full", seed=2)
    ema_state = {f"ema_model.transformer.{k}": v for k, v in ema.state_dict().items()}
    ema_state.update({"initted": torch.tensor(True), "step": torch.tensor(100)})
    path = tmp_path / "model_5000.pt"
    torch.save({"model_state_dict": {f"transformer.{k}": v for k, v in online.state_dict().items()},
                "ema_model_state_dict": ema_state, "step": 5000}, path)
    model = load_diffrhythm_checkpoint(path, use_ema=True, config=SMALL)  # v1.2 full recognised by its keys
    assert model.has_duration and model.max_frames == 6144
    assert_same_weights(model, ema.state_dict(), dtype=torch.float32)
    model = load_diffrhythm_checkpoint(path, use_ema=False, config=SMALL)
    assert_same_weights(model, online.state_dict(), dtype=torch.float32)


def test_safetensors(tmp_path):
    source = small_model("base")
    path = tmp_path / "model.safetensors"
    save_file({f"transformer.{k}": v.contiguous() for k, v in source.state_dict().items()}, str(path))
    model = load_diffrhythm_checkpoint(path, "full-v1.0", config=SMALL)
    assert model.max_frames == 6144 and not model.has_duration
    assert_same_weights(model, source.state_dict(), dtype=torch.float32)


def test_variant_detection():
    base = {f"{k}": v for k, v in small_model("base").state_dict().items()}
    full = small_model("full").state_dict()
    assert detect_variant(full) == "full"
    assert detect_variant(base, "base") == "base"
    assert detect_variant(base, "full-v1.0") == "full-v1.0"
    with pytest.raises(ValueError, match="variant= explicitly"):
        detect_variant(base)  # base and v1.0 full have the same keys: never guess
    with pytest.raises(ValueError, match="full-v1.0"):
        detect_variant(base, "full")
    with pytest.raises(ValueError, match="duration"):
        detect_variant(full, "base")


def test_mismatch_report_lists_missing_unexpected_and_wrong_shape():
    model = small_model("base")
    state = dict(model.state_dict())
    del state["proj_out.bias"]
    state["duration_time_embed.time_mlp.0.weight"] = torch.zeros(512, 256)
    state["norm_out.linear.weight"] = torch.zeros(3, 3)
    with pytest.raises(WeightsMismatchError) as info:
        load_state_dict_strict(model, state, source="ckpt.pt")
    message = str(info.value)
    assert "ckpt.pt" in message
    assert "missing keys" in message and "proj_out.bias" in message
    assert "unexpected keys" in message and "duration_time_embed.time_mlp.0.weight" in message
    assert "wrong-shape keys" in message and "norm_out.linear.weight: (3, 3) vs (128, 512)" in message
    assert info.value.missing == ["proj_out.bias"]
    # nothing was loaded: a failed load leaves the model as it was
    assert not torch.equal(model.state_dict()["norm_out.linear.weight"], torch.zeros(128, 512))


def test_file_with_mismatch_raises(tmp_path):
    source = small_model("full")  # has duration keys
    path = tmp_path / "cfm_model.pt"
    torch.save({"model_state_dict": {f"transformer.{k}": v for k, v in source.state_dict().items()}}, path)
    with pytest.raises(WeightsMismatchError, match="wrong-shape"):
        load_diffrhythm_checkpoint(path, "full", config={**SMALL, "dim": 96})


def test_loading_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pt"

    class Payload:
        def __reduce__(self):
            return (print, ("executed",))

    with open(path, "wb") as f:
        pickle.dump({"model_state_dict": Payload()}, f, protocol=2)
    with pytest.raises(CheckpointError, match="Weights only load failed"):
        read_state_dict(path)


def test_missing_file_and_missing_entry(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_state_dict(tmp_path / "nope.pt")
    path = tmp_path / "cfm_model.pt"
    torch.save({"model_state_dict": {"transformer.proj_out.bias": torch.zeros(8)}}, path)
    with pytest.raises(CheckpointError, match="ema_model_state_dict"):
        read_state_dict(path, use_ema=True)


def test_load_into_an_existing_backbone(tmp_path):
    from toolkit.models.diffrhythm.checkpoints import load_checkpoint_into

    source = small_model("base", seed=4)
    path = tmp_path / "cfm_model.pt"
    torch.save({"model_state_dict": {f"transformer.{k}": v.half() for k, v in source.state_dict().items()}}, path)
    target = small_model("base", seed=5)
    assert load_checkpoint_into(target, path) is target
    assert_same_weights(target, source.state_dict())
    with pytest.raises(WeightsMismatchError, match="duration_time_embed"):
        load_checkpoint_into(small_model("full"), path)  # a base file into a v1.2 full model
