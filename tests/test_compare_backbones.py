"""DiffRhythm's song task on another backbone by configuration only: dit_f5 reads the lyric frame ids through its
text input and the style and start time through its optional global input (which F5's own configs leave off)."""

from __future__ import annotations

import pytest
import torch
from tiny_recipes import song_batch, tiny_song

from toolkit.models.factory import build_recipe
from toolkit.protocols import StepContext

F5_BACKBONE = {"type": "dit_f5", "dim": 32, "depth": 2, "heads": 2, "dim_head": 16, "ff_mult": 2, "text_dim": 16,
               "conv_layers": 1, "text_num_embeds": 363, "dropout": 0.0}


def song_on_f5() -> dict:
    cfg = tiny_song(backbone=dict(F5_BACKBONE))
    cfg["conditions"]["lyrics"]["input"] = "text"
    cfg["conditions"]["style"]["input"] = "global"
    cfg["conditions"]["start_time"]["input"] = "global"
    return cfg


def test_song_task_on_dit_f5_by_configuration():
    from toolkit.models.diffrhythm.request import SongRequest

    torch.manual_seed(0)
    recipe = build_recipe(song_on_f5())
    backbone = recipe.transformer
    assert backbone.text_on_frames and backbone.global_dim == 512 + 1  # style || start time
    assert recipe.conditions.bound == {"text": ["lyrics"], "global": ["style", "start_time"]}
    out = recipe.training_step(song_batch(recipe), StepContext(step=1))
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and backbone.global_embed[0].weight.grad is not None
    result = recipe.generate(SongRequest(lrc="[00:00.10]hello world\n", style_text="folk, guitar", length=0.5,
                                         seed=1))
    assert result.info["frames"] == 31 and torch.isfinite(result.audio[0]).all()


def test_frame_ids_reach_f5_as_its_own_ids():
    """Frame ids (0 = filler) give exactly what F5's convention (-1 = padding) gives for the same tokens, and F5's
    own configuration (no frame ids bound, no global input) keeps its published keys."""
    from toolkit.registry import BACKBONES

    torch.manual_seed(0)
    plain = BACKBONES.build(F5_BACKBONE, latent_dim=8)
    on_frames = BACKBONES.build(F5_BACKBONE, latent_dim=8, input_kinds={"text": ("frame_ids",)})
    on_frames.load_state_dict(plain.state_dict())
    with torch.no_grad():
        for p in plain.parameters():  # F5 zero-inits its output layers
            p.add_(0.05 * torch.randn_like(p))
    on_frames.load_state_dict(plain.state_dict())
    x, cond = torch.randn(2, 12, 8), torch.zeros(2, 12, 8)
    frames = torch.tensor([[0, 5, 6, 0, 0, 9, 0, 0, 0, 0, 0, 0], [3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]])
    time = torch.tensor([0.3, 0.7])
    assert torch.equal(on_frames(x, cond, {"text": frames}, time), plain(x, cond, {"text": frames - 1}, time))
    assert not torch.equal(plain(x, cond, {"text": frames}, time), plain(x, cond, {"text": frames - 1}, time))
    assert not any(k.startswith("global_embed") for k in plain.state_dict())


def test_a_kind_no_input_takes_fails_at_build():
    from toolkit.conditions.spec import ConditionConfigError

    cfg = song_on_f5()
    cfg["conditions"]["style"]["input"] = "text"
    with pytest.raises(ConditionConfigError, match="all bind to input 'text'"):
        build_recipe(cfg)
