"""What every recipe over a frozen codec shares: the codec kept out of the module tree, devices, dtypes."""

from __future__ import annotations

import torch

from ..protocols import Codec, Recipe


class CodecRecipe(Recipe):
    """A recipe whose codec is frozen: not a submodule, so `state_dict()` holds only what trains
    (the backbone at `transformer.*`, as upstream checkpoints name it, plus learned conditioners)."""

    codec: Codec

    def set_codec(self, codec: Codec) -> None:
        codec.requires_grad_(False).eval()
        object.__setattr__(self, "codec", codec)

    def to_device(self, device: str | torch.device, dtype: torch.dtype = torch.float32):
        """Move the trainable part (in `dtype`) and the codec (float32, as upstream decodes) to `device`."""
        self.to(device=device, dtype=dtype)
        self.codec.to(device=device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.transformer.parameters()).dtype
