"""Shared helpers of the toolkit-generate tests: a tiny DiffRhythm checkpoint in our format, inputs, a runner."""

from __future__ import annotations

import math

import numpy as np
import soundfile as sf
import torch
from tiny_recipes import song_conditions

from toolkit.checkpoints import FORMAT_VERSION

SR = 8000
TINY = {
    "recipe": "diffrhythm",
    "max_frames": 200,                      # 1.6 s at 125 frames/s
    "default_seconds": 0.8,
    "codec": {"type": "mel", "sample_rate": SR, "channels": 1, "n_fft": 256, "hop_length": 64, "n_mels": 16,
              "griffin_lim_iters": 4},
    "conditions": song_conditions(),
    "backbone": {"type": "dit_diffrhythm", "dim": 64, "depth": 2, "ff_mult": 2, "conv_layers": 1, "num_heads": 4},
    "sampler": {"type": "flow", "steps": 3, "cfg_strength": 2.0},
}
LRC = "[00:00.05]hello world\n[00:00.20]sing along now\n"


def make_checkpoint(path, config=None, seed=0):
    """A random tiny recipe saved as a toolkit trainer checkpoint (EMA copy included, as the trainer writes)."""
    from toolkit.models.factory import build_recipe

    torch.manual_seed(seed)
    cfg = dict(config or TINY)
    recipe = build_recipe(cfg)
    with torch.no_grad():  # no zero-initialised layers: every condition reaches the output
        for p in recipe.parameters():
            p.add_(0.05 * torch.randn_like(p))
    state = {k: v.clone() for k, v in recipe.state_dict().items()}
    ema = {f"ema_model.{k}": v for k, v in state.items()}
    ema.update(initted=torch.tensor(True), step=torch.tensor(10))
    payload = {"format_version": FORMAT_VERSION, "model_state_dict": state, "ema_model_state_dict": ema,
               "config": cfg, "step": 10, "toolkit_version": "test"}
    torch.save(payload, path)
    return path


def write_tone(path, seconds=3.0, sr=SR, amplitude=0.3, channels=1):
    t = np.arange(int(seconds * sr)) / sr
    wav = amplitude * np.sin(2 * math.pi * 220 * t) * (1 + 0.5 * np.sin(2 * math.pi * 2 * t))
    sf.write(str(path), np.stack([wav] * channels, 1).astype(np.float32), sr)
    return path


def run(argv, capsys=None):
    """toolkit-generate in-process -> (exit status, stderr)."""
    from toolkit.bin.generate import main

    try:
        status = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse
        status = exc.code
    err = capsys.readouterr().err if capsys is not None else ""
    return status, err
