"""Tiny recipe configs, batches and feature files for tests (the same shapes the real stages produce)."""

from __future__ import annotations

import copy

import torch

MEL_8K = {"type": "mel", "sample_rate": 8000, "channels": 2, "n_fft": 256, "hop_length": 128, "n_mels": 16,
          "griffin_lim_iters": 4}


def song_conditions(style="style_tags", language="en") -> dict:
    """DiffRhythm's conditions: lyrics, style (tags by default: cheap and learned), start time; each reads its
    conditioner's default source (LRC, tags or audio, nothing for the start time)."""
    return {
        "lyrics": {"conditioner": {"type": "lyrics_lrc", "language": language}, "drop": "lyrics"},
        "style": {"conditioner": style, "drop": "style", "uncond": "dropped"},
        "start_time": {"conditioner": {"type": "scalar_time", "kind": "start_time"}},
    }


TINY_SONG = {
    "recipe": "diffrhythm",
    "max_frames": 64,
    "codec": MEL_8K,
    "conditions": song_conditions(),
    "backbone": {"type": "dit_diffrhythm", "dim": 32, "depth": 2, "ff_mult": 2, "conv_layers": 1, "num_heads": 2},
    "sampler": {"type": "flow", "steps": 3, "cfg_strength": 2.0},
}


def tiny_song(**changes) -> dict:
    """TINY_SONG with top-level sections replaced (a deep copy)."""
    cfg = copy.deepcopy(TINY_SONG)
    cfg.update(copy.deepcopy(changes))
    return cfg


def song_batch(recipe, b=3, t=40, style="folk, guitar", seed=1) -> dict:
    """A training batch as the dataset collates it: random latents and lyric tokens, one style for all."""
    g = torch.Generator().manual_seed(seed)
    lens = torch.tensor([max(1, t - 10 * i) for i in range(b)])
    return {
        "latent": torch.randn(b, t, recipe.codec.latent_dim, generator=g),
        "lens": lens,
        "conditions": {"lyrics": torch.randint(0, 364, (b, t), generator=g),
                       "style": torch.stack([recipe.conditions["style"].prepare(style)] * b),
                       "start_time": torch.zeros(b)},
        "sample_index": torch.arange(b),
    }


def song_features(recipe, song_id, latent, lines, style, frame_rate=None) -> dict:
    """A feature file as toolkit.bin.extract writes it for the song conditions above."""
    from toolkit.data.extract import FEATURE_FORMAT

    return {"format": FEATURE_FORMAT, "id": song_id, "latent": latent,
            "frame_rate": float(frame_rate or recipe.frame_rate),
            "conditions": {"lyrics": [(float(t), list(tok)) for t, tok in lines],
                           "style": recipe.conditions["style"].prepare(style), "start_time": None},
            "stamps": {}}
