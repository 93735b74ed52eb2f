"""DiffRhythm's TorchScript VAE (`vae_model.pt`) run as it is.

The file exposes encode_export(audio[B, C, N]) -> [B, 2D, N/hop] (mean||scale, NOT sampled) and
decode_export(latents[B, D, T]) -> [B, C, T*hop]. Its weights can instead be converted into the native
module: see `OobleckCodec(weights=...)` and `oobleck_model.native_oobleck_state`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .loading import is_torchscript_file, jit_load

REQUIRED_METHODS = ("encode_export", "decode_export")


class ScriptedVAE(nn.Module):
    """Wraps a TorchScript VAE with encode_export / decode_export (DiffRhythm's vae_model.pt)."""

    def __init__(self, path: str | Path):
        super().__init__()
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"TorchScript VAE {path} does not exist (DiffRhythm ships it as vae_model.pt "
                                    f"in the ASLP-lab/DiffRhythm-vae repository)")
        if not is_torchscript_file(path):
            raise ValueError(f"{path} is not a TorchScript archive; to load a plain state dict into the native "
                             f"Oobleck use `weights=` instead of `scripted_path=`")
        module = jit_load(path)
        missing = [m for m in REQUIRED_METHODS if not hasattr(module, m)]
        if missing:
            raise ValueError(f"TorchScript file {path} lacks {', '.join(missing)}: it is not a DiffRhythm-style "
                             f"VAE (expected methods {', '.join(REQUIRED_METHODS)})")
        module.eval()
        self.module = module
        self.path = path

    def encode_pre_bottleneck(self, audio: torch.Tensor) -> torch.Tensor:
        """[B, C, N] -> [B, 2D, N/hop] (mean||scale)."""
        return self.module.encode_export(audio)

    def decode_latents(self, z: torch.Tensor) -> torch.Tensor:
        """[B, D, T] -> [B, C, T*hop]."""
        return self.module.decode_export(z)

    def native_state_dict(self) -> dict[str, torch.Tensor]:
        """The file's weights in the native layout (weight_g / weight_v), whichever layout it stores."""
        from .oobleck_model import native_oobleck_state

        return native_oobleck_state({k: v.detach().clone() for k, v in self.module.state_dict().items()})
