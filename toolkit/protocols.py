"""The interfaces that components of each kind implement; the registry checks them.

Shapes: audio is [batch, channels, samples]; latents are [batch, frames, latent_dim];
frame-aligned conditions are [batch, frames, ...]; global conditions are [batch, dim].
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import torch
from torch import nn

FRAME_ALIGNED = "frame_aligned"
GLOBAL = "global"

# Kinds of backbone input. The generic ones any backbone may offer (audiocraft's fuser modes,
# stable-audio-tools' *_cond_ids): a global vector added to the time/conditioning embedding,
# cross-attention tokens with a mask, tokens prepended to the sequence, frame-aligned features
# concatenated to the input. A backbone may add kinds of its own (DiffRhythm's lyric fusion).
INPUT_GLOBAL = "global"
INPUT_CROSS_ATTN = "cross_attn"
INPUT_PREPEND = "prepend"
INPUT_CONCAT = "input_concat"
GENERIC_INPUT_KINDS = (INPUT_GLOBAL, INPUT_CROSS_ATTN, INPUT_PREPEND, INPUT_CONCAT)


@dataclass(frozen=True)
class InputSpec:
    """One input a backbone reads from its `conditions` mapping (the key is the input's name).

    kind: a generic kind above or the backbone's own (e.g. "lyric_tokens", "time_scalar").
    dim: feature width the input expects (None: set at build time from what is bound to it).
    optional: the input adds parameters only when a condition is bound to it (published checkpoints,
        which bind nothing there, keep their exact keys).
    multi: several conditions may bind to it; they are concatenated in config order (features for
        global / input_concat, tokens for cross_attn / prepend).
    mask: the key of its companion [B, N] bool mask in `conditions` (token kinds), if any.
    """

    kind: str
    dim: int | None = None
    optional: bool = False
    multi: bool = False
    mask: str | None = None
    doc: str = ""


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

    `conditions` maps input names (see `inputs`) to tensors. `drop` maps an input name, or "audio"
    for the audio prompt `cond`, to a [B] bool mask; a missing entry is not dropped.
    `inputs()` declares what the backbone reads, so a recipe binding a condition to an input the
    backbone lacks fails when it is built, not in the middle of training.
    """

    latent_dim: int
    INPUTS: ClassVar[Mapping[str, InputSpec]] = {}

    def inputs(self) -> Mapping[str, InputSpec]:
        """The inputs of this instance (a class may enable optional ones per configuration)."""
        return self.INPUTS

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
