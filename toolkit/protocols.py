"""The interfaces that components of each kind implement; the registry checks them.

Shapes: audio is [batch, channels, samples]; latents are [batch, frames, latent_dim];
frame-aligned conditions are [batch, frames, ...]; global conditions are [batch, dim].
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Mapping

import torch
from torch import nn

FRAME_ALIGNED = "frame_aligned"
GLOBAL = "global"


class Codec(nn.Module, ABC):
    """Audio <-> continuous latent frames.

    Subclasses set `sample_rate`, `channels`, `hop_length` (samples per latent frame) and `latent_dim`.
    """

    sample_rate: int
    channels: int
    hop_length: int
    latent_dim: int

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @abstractmethod
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """[B, C, N] audio at `sample_rate` -> [B, T, D] latents."""

    @abstractmethod
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """[B, T, D] latents -> [B, C, T * hop_length] audio."""


class Conditioner(nn.Module, ABC):
    """Turns one field of a request or a data item into the tensor a backbone consumes.

    `prepare` runs per item on raw values (text, a path, seconds) and is deterministic, so its result
    can be cached by feature extraction; `forward` maps a batch of prepared values to what the
    backbone reads (identity for fixed embeddings and token ids, learned for e.g. tags).
    `key` names the entry in the backbone's `conditions`; `placement` is FRAME_ALIGNED or GLOBAL.
    """

    key: str
    placement: str

    @abstractmethod
    def prepare(self, value: Any, *, num_frames: int | None = None) -> torch.Tensor:
        """One raw value -> one un-batched prepared tensor."""

    def forward(self, prepared: torch.Tensor) -> torch.Tensor:
        return prepared

    @abstractmethod
    def null(self, batch_size: int, num_frames: int | None = None) -> torch.Tensor:
        """The batched null / negative value used by classifier-free guidance, in `forward`'s output space."""


class Backbone(nn.Module, ABC):
    """Predicts the flow velocity. Dropping conditions happens inside, per batch item.

    `drop` maps a condition group ("audio", "lyrics", "style", ...) to a [B] bool mask; a missing group
    is not dropped.
    """

    latent_dim: int

    @abstractmethod
    def forward(
        self,
        x: torch.Tensor,
        cond: torch.Tensor,
        conditions: Mapping[str, torch.Tensor],
        time: torch.Tensor,
        drop: Mapping[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """x, cond: [B, T, D]; time: [B] in [0, 1] -> velocity [B, T, D]."""


class Objective(nn.Module, ABC):
    """A training loss over a backbone."""

    @abstractmethod
    def forward(self, backbone: Backbone, x1: torch.Tensor, conditions: Mapping[str, torch.Tensor],
                lens: torch.Tensor, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Returns at least {"loss": scalar}."""


class Sampler(ABC):
    """Integrates the backbone's velocity field from noise to data."""

    @abstractmethod
    def sample(self, backbone: Backbone, noise: torch.Tensor, cond: torch.Tensor,
               conditions: Mapping[str, torch.Tensor], **kwargs: Any) -> torch.Tensor:
        """noise, cond: [B, T, D] -> generated latents [B, T, D]."""


class Recipe(nn.Module, ABC):
    """Assembles codec, conditioners, backbone, objective and sampler from a config."""

    @abstractmethod
    def training_step(self, batch: Mapping[str, Any], **kwargs: Any) -> dict[str, torch.Tensor]:
        """One batch -> {"loss": scalar, ...}."""

    @abstractmethod
    def generate(self, request: Any) -> Any:
        """One generation request -> generated audio (and what produced it)."""


class Metric(ABC):
    """Scores generated audio, optionally against references."""

    @abstractmethod
    def compute(self, **inputs: Any) -> dict[str, float]:
        """Named figures."""


class Dataset(torch.utils.data.Dataset, ABC):
    """A training dataset whose items a recipe's collate turns into batches."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def __getitem__(self, index: int) -> Any: ...
