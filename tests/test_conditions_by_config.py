"""Conditions routed by configuration (docs/architecture.md, "Conditions").

(a) a new global condition (a genre) added to DiffRhythm by YAML only: a registered conditioner and a
    `conditions:` entry; extract, train a few steps and generate through the CLIs; the conditioned output
    follows the value, the dropped output does not;
(b) a condition bound to an input the backbone lacks fails when the recipe is built, naming both;
(c) a condition's conditioner swapped by one override (style_features -> style_tags).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from omegaconf import OmegaConf
from tiny_recipes import MEL_8K, song_batch, song_conditions, tiny_song

from toolkit.conditions.spec import ConditionConfigError
from toolkit.config import apply_overrides
from toolkit.models.factory import build_recipe
from toolkit.protocols import StepContext

GENRE = {"conditioner": {"type": "style_tags", "vocabulary": None, "extra_tags": ["rock", "jazz"]},
         "source": "genres", "request": "genre", "input": "global", "drop": "genre"}


def write_songs(folder, n=6):
    """Songs whose timbre follows their genre (rock: low tone, jazz: high tone), each with an LRC line."""
    folder.mkdir()
    entries = []
    for i in range(n):
        genre = ("rock", "jazz")[i % 2]
        t = np.arange(16000) / 8000
        wav = 0.3 * np.sin(2 * math.pi * (150 if genre == "rock" else 900) * t)
        path = folder / f"s{i}.wav"
        sf.write(str(path), np.stack([wav, wav], 1).astype(np.float32), 8000)
        entries.append({"id": f"s{i}", "path": str(path), "lyrics": "[00:00.10]hello there\n", "tags": ["folk"],
                        "genres": [genre]})
    manifests = folder / "manifests"
    manifests.mkdir()
    (manifests / "train.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries[:4]))
    (manifests / "valid.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries[4:]))
    return manifests


def test_a_global_condition_added_by_yaml_only(tmp_path):
    from toolkit.bin import extract, generate, train

    config = tiny_song(conditions={**song_conditions(), "genre": GENRE},
                       data={"type": "latent_windows", "max_frames": 32, "valid": {"split": "valid"}},
                       train={"batch_size": 2, "max_steps": 8, "lr": 3e-3, "warmup_steps": 1, "save_every": 8,
                              "valid_every": 8, "log_every": 4, "progress": False, "tensorboard": False,
                              "ema": {"enabled": False}})
    conf = tmp_path / "genre.yaml"
    conf.write_text(yaml.safe_dump(config))
    manifests = write_songs(tmp_path / "songs")
    features = tmp_path / "features"
    assert extract.main(["--config", str(conf), "--manifest-dir", str(manifests), "--out", str(features)]) == 0
    cached = torch.load(features / "s0.pt", weights_only=True)["conditions"]
    assert set(cached) == {"lyrics", "style", "start_time", "genre"} and cached["genre"].sum() == 1
    exp = tmp_path / "exp"
    assert train.main(["--config", str(conf), "--exp", str(exp), "--features", str(features)]) == 0
    ckpt = exp / "checkpoints" / "last.pt"
    state = torch.load(ckpt, weights_only=True)["model_state_dict"]
    assert "transformer.global_embed.0.weight" in state and "conditions.genre.embedding" in state

    def song(genre, *more):
        out = tmp_path / "out" / genre
        argv = ["--ckpt", str(ckpt), "--lrc", str(tmp_path / "s.lrc"), "--style-text", "folk", "--length", "0.5",
                "--steps", "2", "--seed", "3", "--condition", f"genre=[{genre}]", "--quiet", "--out", str(out), *more]
        assert generate.main(argv) == 0
        (path,) = out.glob("*_dropped.wav" if more else "song.wav")
        return sf.read(str(path))[0]

    (tmp_path / "s.lrc").write_text("[00:00.10]hello there\n")
    rock, jazz = song("rock"), song("jazz")
    assert rock.shape == jazz.shape and not np.allclose(rock, jazz, atol=1e-6), "the genre changes the song"
    rock_dropped, jazz_dropped = song("rock", "--drop-conditions"), song("jazz", "--drop-conditions")
    assert np.array_equal(rock_dropped, jazz_dropped), "dropped, the genre is the null value whatever it was"


def test_binding_to_an_input_the_backbone_lacks_fails_at_build_time():
    cfg = tiny_song(conditions={**song_conditions(), "genre": {**GENRE, "input": "cross_attn"}})
    with pytest.raises(ConditionConfigError, match=r"condition 'genre' binds to input 'cross_attn', which backbone "
                                                   r"dit_diffrhythm does not have; its inputs: lyrics \(lyric_tokens\)"
                                                   r".*global \(global, optional\)"):
        build_recipe(cfg)
    full = tiny_song(conditions={**song_conditions(), "length": {"conditioner": {"type": "scalar_time",
                                                                                 "kind": "duration"},
                                                                 "input": "duration"}})
    with pytest.raises(ConditionConfigError, match="input 'duration', which this DiffRhythmDiT does not have"):
        build_recipe(full)  # the duration embedding exists only in the 6144-frame (v1.2 full) DiT
    lacking = tiny_song(conditions={k: v for k, v in song_conditions().items() if k != "style"})
    with pytest.raises(ConditionConfigError, match=r"needs a condition bound to input\(s\) \['style'\]"):
        build_recipe(lacking)
    conditions = song_conditions()
    del conditions["start_time"]
    conditions["lyrics"]["input"] = "start_time"
    wrong_kind = tiny_song(conditions=conditions)
    with pytest.raises(ConditionConfigError, match="gives frame_ids values"):
        build_recipe(wrong_kind)


def test_swapping_a_conditioner_is_one_override():
    base = OmegaConf.create(tiny_song(conditions=song_conditions(style="style_features")))
    features = build_recipe(base)
    assert type(features.conditions["style"]).__name__ == "FeatureStyle"
    assert features.conditions.specs["style"].source == "path"  # it reads the song's audio
    tags = build_recipe(apply_overrides(base, ["conditions.style.conditioner=style_tags"]))
    assert type(tags.conditions["style"]).__name__ == "TagStyle"
    assert tags.conditions.specs["style"].source == "tags", "the source follows the conditioner"
    batch = song_batch(tags, b=2, t=20)
    assert torch.isfinite(tags.training_step(batch, StepContext())["loss"])


def test_published_layouts_keep_their_keys():
    """No generic input is built unless bound: the DiT's keys are the published ones."""
    recipe = build_recipe(tiny_song())
    assert not any("global_embed" in k for k in recipe.state_dict())
    with_genre = build_recipe(tiny_song(conditions={**song_conditions(), "genre": GENRE}))
    assert with_genre.transformer.inputs()["global"].kind == "global"
    width = with_genre.transformer.global_embed[0].in_features
    assert width == with_genre.conditions["genre"].output_dim == 512


def test_a_routed_backbone_copies_and_keeps_delegating():
    """copy.deepcopy (a study quantising a copy, say) probes dunders before __init__ has run: no recursion."""
    import copy

    routed = build_recipe(tiny_song()).routed
    twin = copy.deepcopy(routed)
    assert twin.backbone is not routed.backbone and twin.latent_dim == routed.latent_dim
    with pytest.raises(AttributeError):
        twin.no_such_attribute  # noqa: B018 - the backbone's own AttributeError


def test_codec_geometry_without_weights():
    from toolkit.models.requests import codec_geometry

    geo = codec_geometry({"type": "oobleck", "scripted_path": "/nowhere/vae_model.pt"})  # the file is not read
    assert geo == {"sample_rate": 44100, "channels": 2, "hop_length": 2048, "latent_dim": 64,
                   "frame_rate": 44100 / 2048}
    assert codec_geometry(MEL_8K)["frame_rate"] == 8000 / 128
