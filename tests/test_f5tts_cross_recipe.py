"""The same overrides work across recipes: DiffRhythm over the mel codec decoded by a (tiny, local) Vocos,
the codec F5-TTS uses. (F5-TTS over Oobleck latents is in test_f5tts_recipe.py.)"""

from __future__ import annotations

import math

import pytest
import torch
import yaml
from tiny_recipes import song_batch, song_conditions

from toolkit.codecs.vocos import Vocos
from toolkit.models.diffrhythm.request import SongRequest
from toolkit.models.factory import build_recipe
from toolkit.protocols import StepContext

VOCOS_CONFIG = {
    "feature_extractor": {"class_path": "vocos.feature_extractors.MelSpectrogramFeatures",
                          "init_args": {"sample_rate": 24000, "n_fft": 256, "hop_length": 64, "n_mels": 16,
                                        "padding": "center"}},
    "backbone": {"class_path": "vocos.models.VocosBackbone",
                 "init_args": {"input_channels": 16, "dim": 16, "intermediate_dim": 32, "num_layers": 1}},
    "head": {"class_path": "vocos.heads.ISTFTHead",
             "init_args": {"dim": 16, "n_fft": 256, "hop_length": 64, "padding": "same"}},
}


@pytest.fixture()
def tiny_vocos(tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(VOCOS_CONFIG))
    torch.manual_seed(0)
    torch.save(Vocos.from_hparams(VOCOS_CONFIG).state_dict(), tmp_path / "pytorch_model.bin")
    return tmp_path


def test_diffrhythm_over_mel_and_vocos(tiny_vocos):
    torch.manual_seed(0)
    recipe = build_recipe({
        "recipe": "diffrhythm", "max_frames": 64,
        "codec": {"type": "mel", "vocoder": "vocos", "vocoder_path": str(tiny_vocos), "latent_mean": 0.0,
                  "latent_std": 1.0},
        "conditions": song_conditions(),
        "backbone": {"type": "dit_diffrhythm", "dim": 32, "depth": 2, "ff_mult": 2, "conv_layers": 1, "num_heads": 2},
        "sampler": {"type": "flow", "steps": 2, "cfg_strength": 2.0},
    })
    codec = recipe.codec
    assert codec.vocos is not None and codec.latent_dim == 16 and codec.frame_rate == 24000 / 64
    assert recipe.transformer.latent_dim == 16
    b, t = 2, 40
    batch = {**song_batch(recipe, b, t, style="folk"), "lens": torch.tensor([t, 30])}
    loss = recipe.training_step(batch, StepContext(step=0, seed=0))["loss"]
    assert math.isfinite(loss.item())
    recipe.eval()
    frames = int(0.1 * recipe.frame_rate)
    res = recipe.generate(SongRequest(lrc="[00:00.00]la la", style_text="folk", length=0.1, seed=1))
    assert res.latents[0].shape == (frames, 16)
    assert res.audio[0].shape == (1, frames * 64) and torch.isfinite(res.audio[0]).all()
    # the audio is the Vocos decoding of the latents (not Griffin-Lim), peak-normalised
    with torch.no_grad():
        direct = codec.vocos.decode(codec.latents_to_log_mel(res.latents[0][None])[:, 0])
    direct = direct * (10 ** (-1 / 20) / direct.abs().max())
    assert torch.allclose(res.audio[0], direct, atol=1e-5)
