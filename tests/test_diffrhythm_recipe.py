"""One training step and one generation round of the DiffRhythm recipe with a tiny config."""

import math

import pytest
import torch
from tiny_recipes import song_batch, tiny_song

from toolkit.models.diffrhythm.planning import edit_mask
from toolkit.models.diffrhythm.request import SongRequest
from toolkit.models.factory import build_recipe
from toolkit.models.requests import RequestError
from toolkit.protocols import StepContext

TINY = tiny_song()


@pytest.fixture(scope="module")
def recipe():
    torch.manual_seed(0)
    return build_recipe(TINY)


def tiny_batch(recipe, b=3, t=40):
    return song_batch(recipe, b, t)


def test_backbone_follows_the_codec(recipe):
    assert recipe.transformer.latent_dim == recipe.codec.latent_dim == 32
    assert all(k.startswith(("transformer.", "conditions.style.")) for k in recipe.state_dict())
    assert not any(k.startswith("codec") for k in recipe.state_dict()), "the frozen codec is not checkpointed"


def test_training_step_gives_a_finite_loss_and_gradients(recipe):
    out = recipe.training_step(tiny_batch(recipe), StepContext(step=0, seed=0))
    assert out["loss"].ndim == 0 and math.isfinite(out["loss"].item())
    out["loss"].backward()
    grads = [p.grad for p in recipe.transformer.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    recipe.zero_grad()


def test_same_key_same_loss_and_dropping_changes_it(recipe):
    batch = tiny_batch(recipe)
    with torch.no_grad():
        a = recipe.training_step(batch, StepContext(step=5, seed=0))["loss"]
        b = recipe.training_step(batch, StepContext(step=5, seed=0))["loss"]
        c = recipe.training_step(batch, StepContext(step=6, seed=0))["loss"]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_generate_round(recipe):
    req = SongRequest(lrc="[00:00.10]hello world\n[00:00.40]sing along", style_text="folk, guitar",
                      length=0.6, seed=3, batch=2)
    out = recipe.generate(req)
    frames = int(0.6 * recipe.frame_rate)
    assert len(out.latents) == 2 and out.latents[0].shape == (frames, 32)
    assert all(a.shape == (2, frames * 128) and torch.isfinite(a).all() for a in out.audio)
    assert not torch.equal(out.latents[0], out.latents[1]), "batch items get their own noise"
    again = recipe.generate(req)
    assert all(torch.equal(a, b) for a, b in zip(again.latents, out.latents, strict=True)), "a seed reproduces it"


def test_editing_keeps_the_reference_outside_the_segments(recipe, tmp_path):
    from toolkit.audio import save_audio

    wav = 0.3 * torch.randn(2, 8000)
    save_audio(tmp_path / "ref.wav", wav, 8000)
    req = SongRequest(instrumental=True, style_text="folk", ref_song=str(tmp_path / "ref.wav"),
                      segments=[(0.2, 0.5)], length=0.9, seed=0)
    out = recipe.generate(req, decode=False)
    ref, _ = recipe.reference_latent(req)
    frames = out.latents[0].shape[0]
    keep = ~edit_mask(req, recipe.frame_rate, frames, ref.shape[0])
    assert keep.sum() > 0 and torch.equal(out.latents[0][keep], ref[:frames][keep].float())


def test_requests_are_checked_before_work(recipe):
    with pytest.raises(RequestError, match="at most"):
        recipe.generate(SongRequest(instrumental=True, style_text="folk", length=60.0))
    with pytest.raises(RequestError, match="either time-stamped lyrics"):
        SongRequest(lrc="[00:01.00]a", lyrics="a").check()
    with pytest.raises(RequestError, match="reference song"):
        SongRequest(instrumental=True, segments=[(0, 1)]).check()
