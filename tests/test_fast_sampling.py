"""Fewer model evaluations at equal error: guidance on an interval of the flow, and the DiT's time-invariant
lyric features computed once per song (equal to recomputing them)."""

from __future__ import annotations

import pytest
import torch
from tiny_recipes import tiny_song

from toolkit.models.diffrhythm.request import SongRequest
from toolkit.models.factory import build_recipe


@pytest.fixture(scope="module")
def recipe():
    torch.manual_seed(0)
    r = build_recipe(tiny_song()).eval()
    with torch.no_grad():  # no zero-initialised layer: every condition reaches the output
        for p in r.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return r


REQUEST = dict(lrc="[00:00.05]hello world\n[00:00.30]sing along", style_text="folk, guitar", length=0.6, seed=2,
               steps=4)


def test_guidance_interval_skips_the_unconditional_pass_outside_it(recipe):
    full = recipe.generate(SongRequest(**REQUEST), decode=False)
    assert recipe.sampler.last_nfe == 2 * 4
    everywhere = recipe.sampler.guidance_interval
    try:
        recipe.sampler.guidance_interval = (0.0, 1.0)
        again = recipe.generate(SongRequest(**REQUEST), decode=False)
        assert torch.equal(again.latents[0], full.latents[0]), "[0, 1] is the default: guidance everywhere"
        recipe.sampler.guidance_interval = (0.3, 0.6)  # grid 0, .25, .5, .75: only t = 0.5 is guided
        part = recipe.generate(SongRequest(**REQUEST), decode=False)
        assert recipe.sampler.last_nfe == 2 + 1 + 1 + 1
        assert not torch.equal(part.latents[0], full.latents[0])
        recipe.sampler.guidance_interval = (0.9, 1.0)  # no evaluation inside: the conditional model alone
        none = recipe.generate(SongRequest(**REQUEST), decode=False)
        recipe.sampler.guidance_interval = everywhere
        plain = recipe.generate(SongRequest(**REQUEST, cfg=0.0), decode=False)
        assert recipe.sampler.last_nfe == 4 and torch.equal(none.latents[0], plain.latents[0])
    finally:
        recipe.sampler.guidance_interval = everywhere
    with pytest.raises(ValueError, match="guidance_interval must be"):
        recipe.sampler.sample(recipe.routed, None, torch.zeros(1, 4, 32), {}, guidance_interval=(0.5, 0.2))


def test_cached_lyric_features_equal_recomputing(recipe):
    dit = recipe.transformer
    b, t = 2, 20
    g = torch.Generator().manual_seed(0)
    x, cond = torch.randn(b, t, 32, generator=g), torch.zeros(b, t, 32)
    lyrics = torch.randint(1, 300, (b, t), generator=g)
    conditions = {"lyrics": lyrics, "style": torch.randn(b, 512, generator=g), "start_time": torch.zeros(b)}
    drop = {"lyrics": torch.tensor([False, True])}
    with torch.no_grad():
        first = dit(x, cond, conditions, torch.tensor(0.3), drop)
        cached_text = dit._lyric_cache[2]
        second = dit(x, cond, conditions, torch.tensor(0.3), drop)  # served from the cache
        assert dit._lyric_cache[2] is cached_text
        dit._lyric_cache = None
        recomputed = dit(x, cond, conditions, torch.tensor(0.3), drop)
        other = dit(x, cond, conditions, torch.tensor(0.3), {"lyrics": torch.tensor([True, False])})
        lyrics[0, 0] = 7  # changed in place: its version moves, the features are recomputed
        changed = dit(x, cond, conditions, torch.tensor(0.3), drop)
    assert torch.equal(first, second) and torch.equal(first, recomputed)
    assert not torch.equal(other, first) and not torch.equal(changed, first)
    with torch.enable_grad():
        dit(x, cond, conditions, torch.tensor(0.3), drop)
    assert dit._lyric_cache is None, "nothing is cached while gradients are tracked"
