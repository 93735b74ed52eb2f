"""The interfaces that components of each kind implement; the registry checks them.

Shapes: audio is [batch, channels, samples]; latents are [batch, frames, latent_dim];
frame-aligned conditions are [batch, frames, ...]; global conditions are [batch, dim].
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

# What a conditioner's `forward` gives, batched (its `output_kind`):
OUT_FRAME_IDS = "frame_ids"  # int [B, T] token ids on the latent frames (0 = filler)
OUT_IDS = "ids"              # int [B, n] token ids not aligned to frames (padded with -1)
OUT_VECTOR = "vector"        # float [B, D]
OUT_SCALAR = "scalar"        # float [B]
OUT_TOKENS = "tokens"        # float [B, N, D], with a bool [B, N] mask under "<name>/mask"
OUT_FRAMES = "frames"        # float [B, T, D] features on the latent frames
OUTPUT_KINDS = (OUT_FRAME_IDS, OUT_IDS, OUT_VECTOR, OUT_SCALAR, OUT_TOKENS, OUT_FRAMES)

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
    accepts: the conditioner output kinds (OUT_*) it takes.
    dim: feature width the input expects (None: set at build time from what is bound to it).
    required: a condition must be bound to it (the backbone cannot run without it).
    optional: the input adds parameters only when a condition is bound to it (published checkpoints,
        which bind nothing there, keep their exact keys); its width is given at build time through the
        backbone's `input_dims` argument.
    multi: several conditions may bind to it; they are concatenated in config order (features for
        global / input_concat, tokens for cross_attn / prepend).
    mask: the key of its companion [B, N] bool mask in `conditions` (token kinds), if any.

    Generic kinds are dropped by the router (a dropped item's value becomes zeros, the null embedding
    audiocraft and stable-audio-tools use); a backbone's own kinds receive their per-item drop mask
    under the input's name and drop inside (e.g. lyric tokens become filler before their convolutions).
    """

    kind: str
    accepts: tuple[str, ...] = ()
    dim: int | None = None
    required: bool = False
    optional: bool = False
    multi: bool = False
    mask: str | None = None
    doc: str = ""

    @property
    def generic(self) -> bool:
        return self.kind in GENERIC_INPUT_KINDS


# What each generic kind takes when a backbone does not narrow it.
GENERIC_ACCEPTS = {
    INPUT_GLOBAL: (OUT_VECTOR, OUT_SCALAR, OUT_TOKENS),
    INPUT_CROSS_ATTN: (OUT_TOKENS, OUT_VECTOR, OUT_SCALAR),
    INPUT_PREPEND: (OUT_TOKENS, OUT_VECTOR, OUT_SCALAR),
    INPUT_CONCAT: (OUT_FRAMES,),
}


def generic_input(kind: str, *, dim: int | None = None, optional: bool = True, mask: str | None = None,
                  doc: str = "") -> InputSpec:
    """An InputSpec of a generic kind (several conditions may bind to it)."""
    return InputSpec(kind=kind, accepts=GENERIC_ACCEPTS[kind], dim=dim, optional=optional, multi=True, mask=mask,
                     doc=doc)


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

    @classmethod
    def geometry(cls, **kwargs: Any) -> dict[str, Any]:
        """sample_rate, channels, hop_length, latent_dim and frame_rate of the codec these constructor
        arguments build, without loading weights (front ends check requests with it). The default builds
        the codec on the meta device; a codec whose constructor reads files overrides it."""
        with torch.device("meta"):
            codec = cls(**kwargs)
        return {"sample_rate": int(codec.sample_rate), "channels": int(codec.channels),
                "hop_length": int(codec.hop_length), "latent_dim": int(codec.latent_dim),
                "frame_rate": codec.sample_rate / codec.hop_length}

    def set_compute_dtype(self, dtype: str | torch.dtype) -> None:
        """The number format the codec computes in; a codec that only computes in fp32 refuses others."""
        if dtype not in ("fp32", "float32", torch.float32):
            raise ValueError(f"the {type(self).__name__} codec computes in fp32 only, not {dtype}")

    @abstractmethod
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """[B, C, N] audio at `sample_rate` -> [B, T, D] latents."""

    @abstractmethod
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """[B, T, D] latents -> [B, C, T * hop_length] audio."""


class Conditioner(nn.Module, ABC):
    """Turns one field of a request or a data item into what a backbone input consumes, and owns that
    value's data path.

    `prepare` runs per item on a raw value (text, a path, seconds) and is deterministic; `forward` maps a
    batch of prepared values to the backbone input (identity for fixed embeddings and token ids, learned for
    e.g. tags). The data path, each with a default that fits per-song values:
      extract(value, span)   -> what feature extraction caches for a whole song (default: prepare(value));
      limit_window(cached, span) -> the training window, possibly shortened (default: unchanged);
      crop(cached, span)     -> a training window's prepared value (default: the cached value);
      collate(values)        -> a batch of prepared values (default: stack);
      from_request(value, span) -> the prepared value for a generated song (default: prepare(value)).
    `span` (toolkit.conditions.Span) says which frames of which song. `output_kind` (OUT_*) and
    `output_dim` say what `forward` gives; `null` is the dropped value guidance and dropout use.
    """

    output_kind: ClassVar[str] = OUT_VECTOR
    output_dim: int | None = None
    loads_weights: ClassVar[bool] = False  # prepare() loads a model (front ends skip it when only checking)
    default_source: ClassVar[str | None] = ""  # the manifest field it reads when a condition names none
    # ("" = the condition's name; None = nothing: the value is derived from the frames)

    @abstractmethod
    def prepare(self, value: Any, *, num_frames: int | None = None) -> torch.Tensor:
        """One raw value -> one un-batched prepared tensor."""

    def forward(self, prepared: torch.Tensor) -> torch.Tensor:
        return prepared

    @abstractmethod
    def null(self, batch_size: int, num_frames: int | None = None) -> torch.Tensor:
        """The batched null / negative value used by classifier-free guidance, in `forward`'s output space."""

    def negative(self, batch_size: int, num_frames: int | None = None) -> torch.Tensor:
        """The value guidance's unconditional half sees for `uncond: negative` (default: null)."""
        return self.null(batch_size, num_frames)

    def extract(self, value: Any, span: Any) -> Any:
        return self.prepare(value)

    def limit_window(self, cached: Any, span: Any) -> Any:
        return span

    def crop(self, cached: Any, span: Any) -> Any:
        return cached

    def collate(self, values: Sequence[Any]) -> torch.Tensor:
        return torch.stack([torch.as_tensor(v) for v in values])

    def from_request(self, value: Any, span: Any) -> torch.Tensor:
        return self.prepare(value)


class Backbone(nn.Module, ABC):
    """Predicts the flow velocity. Dropping conditions happens inside, per batch item.

    `conditions` maps input names (see `inputs`) to tensors. `drop` maps an input name, or "audio"
    for the audio prompt `cond`, to a [B] bool mask; a missing entry is not dropped.
    `INPUTS` declares every input the class can have, `inputs()` those of this instance (optional ones
    exist when the constructor's `input_dims` sized them), so a recipe binding a condition to an input the
    backbone lacks fails when it is built, not in the middle of training.
    """

    latent_dim: int
    INPUTS: ClassVar[Mapping[str, InputSpec]] = {}
    # Submodules kept in fp32 when the rest computes in bf16: cheap parts where bf16 rounding shows in the
    # output (a class measures what this buys, e.g. docs/dit_cfm.md for dit_diffrhythm).
    FP32_WITH_BF16: ClassVar[tuple[str, ...]] = ()

    def inputs(self) -> Mapping[str, InputSpec]:
        """The inputs of this instance (a class may enable optional ones per configuration)."""
        return self.INPUTS

    def to_compute_dtype(self, dtype: torch.dtype) -> Backbone:
        """Cast for inference in `dtype`; under bf16 the submodules named in FP32_WITH_BF16 go to fp32 from the
        values they hold now (never through bf16, so fp32 or fp16 weights there stay exact)."""
        kept: set[int] = set()
        if dtype == torch.bfloat16:
            for name in self.FP32_WITH_BF16:
                part = getattr(self, name, None)
                if part is not None:
                    kept.update(id(t) for t in (*part.parameters(), *part.buffers()))

        def cast(t: torch.Tensor) -> torch.Tensor:
            if not t.is_floating_point():
                return t
            return t.float() if id(t) in kept else t.to(dtype)

        return self._apply(cast)

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
    """A training loss over a backbone. `drop_groups`: the condition groups it drops during training."""

    @property
    def drop_groups(self) -> tuple[str, ...]:
        return ()

    @abstractmethod
    def forward(self, backbone: Backbone, x1: torch.Tensor, conditions: Mapping[str, torch.Tensor],
                lens: torch.Tensor, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Returns at least {"loss": scalar}."""


class Sampler(ABC):
    """Integrates the backbone's velocity field from noise to data. `uncond_drop`: the condition groups
    guidance's unconditional half drops."""

    uncond_drop: tuple[str, ...] = ()
    resumable: bool = False  # sample() takes `snapshots` (SamplerSnapshots) and resumes from them

    @abstractmethod
    def sample(self, backbone: Backbone, noise: torch.Tensor, cond: torch.Tensor,
               conditions: Mapping[str, torch.Tensor], **kwargs: Any) -> torch.Tensor:
        """noise, cond: [B, T, D] -> generated latents [B, T, D]."""


class SamplerSnapshots(ABC):
    """Where a resumable sampler keeps its state between updates, so that an interrupted run resumes.

    `key` is the sampler's digest of everything its result depends on besides the model (noise, conditions,
    time grid, guidance, ...); the store adds what identifies the model and the request, and decides how often
    a `save` is worth writing."""

    @abstractmethod
    def load(self, key: str) -> tuple[int, torch.Tensor] | None:
        """(updates done, the state after them) saved under `key`, or None."""

    @abstractmethod
    def save(self, key: str, done: int, total: int, state: torch.Tensor) -> None:
        """The state after `done` of `total` updates (the store may skip writing it)."""


@dataclass
class StepContext:
    """What the trainer tells a recipe's training step besides the batch.

    step: optimiser step (keys the per-sample draws); seed: base seed of the draws; num_valid_global: the
    global batch's loss-region frame count (DDP normalisation); world_size: processes; drop_override /
    time_override: validation's forced drops ({group: bool}) and fixed flow time.
    """

    step: int = 0
    seed: int | None = None
    num_valid_global: int | None = None
    world_size: int = 1
    drop_override: Mapping[str, bool] | None = None
    time_override: float | None = None


class Recipe(nn.Module, ABC):
    """Assembles codec, conditioners, backbone, objective and sampler from a config (toolkit.models.base has
    the shared skeleton). Every recipe sets `conditions`: its toolkit.conditions.ConditionSet (the dataset
    crops each of them), or None when its data needs no conditioners."""

    conditions: Any

    @abstractmethod
    def training_step(self, batch: Mapping[str, Any], ctx: StepContext | None = None) -> dict[str, torch.Tensor]:
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
    """A training dataset for the shared trainer.

    Items are addressed by (index, step, position) keys (a plain index means (index, 0, index)) so what an
    item holds never depends on worker or process counts; `lengths` (frames per item) lets the trainer
    bucket batches; `collate` turns a list of items into a batch {"latent", "lens", "sample_index", ...}.
    """

    lengths: Sequence[int]

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def __getitem__(self, index: Any) -> Any: ...

    @abstractmethod
    def collate(self, items: Sequence[Any]) -> dict[str, Any]: ...
