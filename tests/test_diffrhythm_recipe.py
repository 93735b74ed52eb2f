"""One training step and one generation round of the DiffRhythm recipe with a tiny config."""

import math

import pytest
import torch

from toolkit.models.diffrhythm.request import RequestError, SongRequest
from toolkit.models.factory import build_recipe

TINY = {
    "recipe": "diffrhythm",
    "max_frames": 64,
    "codec": {"type": "mel", "sample_rate": 8000, "channels": 2, "n_fft": 256, "hop_length": 128, "n_mels": 16,
              "griffin_lim_iters": 4},
    "lyrics": {"type": "lyrics_lrc", "language": "en"},
    "style": "style_tags",
    "backbone": {"type": "dit_diffrhythm", "dim": 32, "depth": 2, "ff_mult": 2, "conv_layers": 1, "num_heads": 2},
    "sampler": {"type": "flow", "steps": 3, "cfg_strength": 2.0},
}


@pytest.fixture(scope="module")
def recipe():
    torch.manual_seed(0)
    return build_recipe(TINY)


def tiny_batch(recipe, b=3, t=40):
    g = torch.Generator().manual_seed(1)
    return {
        "latent": torch.randn(b, t, recipe.codec.latent_dim, generator=g),
        "lens": torch.tensor([t, t - 7, t - 20]),
        "lyrics": torch.randint(0, 364, (b, t), generator=g),
        "style": torch.stack([recipe.style.prepare("folk, guitar")] * b),
        "start_time": torch.zeros(b),
        "sample_index": torch.arange(b),
    }


def test_backbone_follows_the_codec(recipe):
    assert recipe.transformer.latent_dim == recipe.codec.latent_dim == 32
    assert all(k.startswith(("transformer.", "style.")) for k in recipe.state_dict())
    assert not any(k.startswith("codec") for k in recipe.state_dict()), "the frozen codec is not checkpointed"


def test_training_step_gives_a_finite_loss_and_gradients(recipe):
    out = recipe.training_step(tiny_batch(recipe), step=0, seed=0)
    assert out["loss"].ndim == 0 and math.isfinite(out["loss"].item())
    out["loss"].backward()
    grads = [p.grad for p in recipe.transformer.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    recipe.zero_grad()


def test_same_key_same_loss_and_dropping_changes_it(recipe):
    batch = tiny_batch(recipe)
    with torch.no_grad():
        a = recipe.training_step(batch, step=5, seed=0)["loss"]
        b = recipe.training_step(batch, step=5, seed=0)["loss"]
        c = recipe.training_step(batch, step=6, seed=0)["loss"]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_generate_round(recipe):
    req = SongRequest(lrc="[00:00.10]hello world\n[00:00.40]sing along", style_text="folk, guitar",
                      length=0.6, seed=3, batch=2)
    out = recipe.generate(req)
    frames = int(0.6 * recipe.frame_rate)
    assert out.latents.shape == (2, frames, 32)
    assert out.audio.shape == (2, 2, frames * 128) and torch.isfinite(out.audio).all()
    assert not torch.equal(out.latents[0], out.latents[1]), "batch items get their own noise"
    again = recipe.generate(req)
    assert torch.equal(again.latents, out.latents), "a seed reproduces the output"


def test_editing_keeps_the_reference_outside_the_segments(recipe, tmp_path):
    from toolkit.audio import save_audio

    wav = 0.3 * torch.randn(2, 8000)
    save_audio(tmp_path / "ref.wav", wav, 8000)
    req = SongRequest(instrumental=True, style_text="folk", ref_song=str(tmp_path / "ref.wav"),
                      segments=[(0.2, 0.5)], length=0.9, seed=0)
    out = recipe.generate(req, decode=False)
    ref = recipe.reference_latent(req)
    keep = ~recipe.edit_mask(req, out.latents.shape[1], ref.shape[0])
    assert keep.sum() > 0 and torch.equal(out.latents[0][keep], ref[: out.latents.shape[1]][keep].float())


def test_requests_are_checked_before_work(recipe):
    with pytest.raises(RequestError, match="at most"):
        recipe.generate(SongRequest(instrumental=True, style_text="folk", length=60.0))
    with pytest.raises(RequestError, match="either time-stamped lyrics"):
        SongRequest(lrc="[00:01.00]a", lyrics="a").check()
    with pytest.raises(RequestError, match="reference song"):
        SongRequest(segments=[(0, 1)]).check()
