"""Tiny DiffRhythm DiTs and a toy backbone for the objective and sampler tests."""

from __future__ import annotations

import torch

from toolkit.backbones.dit_diffrhythm import DiffRhythmDiT
from toolkit.protocols import Backbone

LATENT = 8


def tiny_dit(seed: int = 0, max_frames: int = 2048) -> DiffRhythmDiT:
    """dim 64, depth 2, 4 heads, 8 latent channels; every weight random (no zero-initialised path)."""
    torch.manual_seed(seed)
    model = DiffRhythmDiT(64, 2, 2, latent_dim=LATENT, text_dim=512, conv_layers=1, num_heads=4,
                          max_frames=max_frames)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(0, 1.0 / max(p.shape[-1], 1) ** 0.5)
            if name.endswith("norm.weight") or name.endswith("layernorm.weight"):
                p.add_(1.0)
    return model.eval()


def tiny_conditions(batch: int, frames: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    lyrics = torch.randint(1, 364, (batch, frames), generator=g)
    lyrics[:, frames // 2:] = 0
    return {"lyrics": lyrics, "style": torch.nn.functional.normalize(torch.randn(batch, 512, generator=g), dim=-1),
            "start_time": torch.zeros(batch)}


class ToyBackbone(Backbone):
    """velocity = time (broadcast) + 0 * x; counts calls and records what it was given."""

    latent_dim = LATENT

    def __init__(self):
        super().__init__()
        self.calls = []
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, cond, conditions, time, drop=None):
        self.calls.append({"batch": x.shape[0], "time": time, "drop": drop, "cond": cond})
        time = torch.as_tensor(time, dtype=x.dtype).expand(x.shape[0])
        return time[:, None, None].expand_as(x) + 0 * x
