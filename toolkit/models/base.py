"""The recipe skeleton every codec-latent flow recipe shares: codec + conditions + backbone + objective + sampler.

`FlowRecipe` builds the parts from a config (the codec first, so its geometry reaches the conditioners and
the backbone), binds the `conditions:` section to the backbone's declared inputs, and checks that the
objective's and the sampler's drop groups exist. Written once here: the training step, sampling (per-item
seeded noise, guidance negatives, request options, progress), decoding and the output level. A recipe
keeps what is its own: its request type, how long the output is, which frames are generated (editing),
and what its requests turn into condition values.

The codec is frozen and kept outside the module tree, so `state_dict()` holds exactly what trains: the
backbone at `transformer.*` (upstream checkpoints use that name, so published weights load with no key
map) and learned conditioners at `conditions.<name>.*`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from ..audio import fit_level
from ..conditions import ConditionSet, Span
from ..conditions.spec import field_value
from ..objectives.cfm import override_draws
from ..objectives.samplers import integration_dtype
from ..protocols import Codec, Recipe, SamplerSnapshots, StepContext
from ..registry import BACKBONES, CODECS, OBJECTIVES, SAMPLERS
from .requests import Option, RequestValidator

LEVEL_POLICIES = ("peak", "keep")


@dataclass
class GenerationResult:
    """What a recipe generated: one [C, N] waveform per batch item (at `sample_rate`), their latents, and
    what the writer and the manifest need (`info`: frames, seconds, condition, level notes; `warnings`;
    `tags`: text fields that travel with the audio; `lrc`: the lyric lines actually placed, as LRC)."""

    audio: list[torch.Tensor]
    sample_rate: int
    latents: list[torch.Tensor]
    request: Any
    info: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    lrc: str | None = None


class CodecRecipe(Recipe):
    """A recipe whose codec is frozen: not a submodule, so `state_dict()` holds only what trains."""

    codec: Codec

    def set_codec(self, codec: Codec) -> None:
        codec.requires_grad_(False).eval()
        object.__setattr__(self, "codec", codec)

    def to_device(self, device: str | torch.device, dtype: torch.dtype = torch.float32):
        """Move the trainable part (in `dtype`; the backbone's FP32_WITH_BF16 parts stay fp32 under bf16) and the
        codec (float32, as upstream decodes) to `device`."""
        self.to(device=device)
        for child in self.children():  # the backbone casts itself (its fp32 parts never pass through bf16)
            if child is self.transformer:
                child.to_compute_dtype(dtype)
            else:
                child.to(dtype)
        self.codec.to(device=device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.transformer.parameters()).dtype


class FlowRecipe(CodecRecipe):
    """codec + conditions + backbone + flow objective + sampler, assembled from config nodes.

    Args:
        codec, backbone, objective, sampler: registry nodes.
        conditions: the `conditions:` section (toolkit.conditions.spec).
        max_frames: the model's frame window (training windows, longest output).
        level: output level: "peak" (peak-normalised to peak_db) or "keep" (the model's own level, lowered
            only where it would clip); an edit or continuation always keeps its reference's level.
        peak_db: the peak of "peak" outputs and the ceiling of every output.
    """

    request_type: ClassVar[type]
    default_level: ClassVar[str] = "peak"
    # What front ends (toolkit-generate, request files, the web app) ask of a recipe class:
    validator_type: ClassVar[type] = RequestValidator           # checks requests without the model
    output_name: ClassVar[str] = "output"                       # file stem of an output without a title
    pretrained_options: ClassVar[tuple[Option, ...]] = ()       # options of its published-folder loading
    # Where a resumable sampler keeps its state during generate(): set by a front end around a job
    # (toolkit.generation.runner), so that an interrupted song resumes instead of starting again.
    snapshots: SamplerSnapshots | None = None

    @classmethod
    def is_pretrained_folder(cls, folder: Path) -> bool:
        """Whether `folder` holds this recipe's published files (toolkit-generate --pretrained picks by it)."""
        return False

    @classmethod
    def pretrained_config(cls, folder: Path, options: Mapping[str, Any], first_request: Any = None
                          ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the config of the published model in `folder`, its source: {"path": main weights file, "files":
        {name: other files to record}, ...}) without loading weights."""
        raise NotImplementedError(f"{cls.__name__} has no published-folder loading")

    @classmethod
    def load_pretrained(cls, cfg: Any, source: Mapping[str, Any]) -> FlowRecipe:
        """The recipe of `pretrained_config`, with the published weights loaded strictly."""
        raise NotImplementedError(f"{cls.__name__} has no published-folder loading")

    def __init__(self, codec: Any, backbone: Any, conditions: Any, objective: Any = "cfm", sampler: Any = "flow",
                 max_frames: int = 2048, level: str | None = None, peak_db: float = -1.0):
        super().__init__()
        codec_module = CODECS.build(codec)
        self.set_codec(codec_module)
        self.max_frames = int(max_frames)
        self.frame_rate = codec_module.frame_rate
        self.conditions = ConditionSet.for_codec(conditions, codec_module, self.max_frames)
        input_dims = self.conditions.bind(backbone)
        extra = {"input_dims": input_dims} if input_dims else {}
        extra.update(self.backbone_arguments(backbone))
        context = {"max_frames": self.max_frames, "input_kinds": self.conditions.bound_kinds()}
        self.transformer = BACKBONES.build(backbone, context=context, latent_dim=codec_module.latent_dim, **extra)
        self.conditions.check_built(self.transformer)
        self.objective = OBJECTIVES.build(objective)
        self.conditions.check_groups(self.objective.drop_groups, "the objective's drop_probs / joint_drop_groups")
        self.sampler = SAMPLERS.build(sampler)
        self.conditions.check_groups(self.sampler.uncond_drop, "sampler.uncond_drop")
        level = level or self.default_level
        if level not in LEVEL_POLICIES:
            raise ValueError(f"level must be one of {LEVEL_POLICIES}, not {level!r}")
        self.level, self.peak_db = level, float(peak_db)

    # The sampler's guidance argument and its value that turns guidance off (the `flow` sampler's
    # cfg_strength; a recipe on another sampler names its own, e.g. cfg_scale = 1).
    guidance_option, unguided_value = "cfg_strength", 0.0

    def unguided_options(self) -> dict[str, Any]:
        """Sampler options that turn guidance off."""
        return {self.guidance_option: self.unguided_value}

    def guidance(self, request: Any) -> float | None:
        """The guidance scale a request is generated with, in the sampler's convention (`guidance_option`)."""
        if getattr(request, "drop_conditions", False):
            return self.unguided_value
        value = getattr(request, "cfg", None)
        return value if value is not None else getattr(self.sampler, self.guidance_option, None)

    def backbone_arguments(self, node: Any) -> dict[str, Any]:
        """Backbone arguments that follow from the built conditions (a recipe's own; none by default)."""
        return {}

    @property
    def routed(self):
        """The backbone as the objective and the sampler call it (conditions by name, drops by group)."""
        return self.conditions.routed(self.transformer)

    def span(self, frames: int) -> Span:
        return Span.whole(frames, self.frame_rate, self.max_frames)

    # ------------------------------------------------------------------------------------ training
    def training_step(self, batch: Mapping[str, Any], ctx: StepContext | None = None) -> dict[str, torch.Tensor]:
        """The objective's loss of one batch {"latent", "lens", "sample_index", "conditions"}; scaled so DDP's
        gradient average equals the global-batch mean."""
        ctx = ctx or StepContext()
        if ctx.seed is not None:
            self.objective.seed = ctx.seed
        values = self.conditions(batch["conditions"])
        out = self.objective(self.routed, batch["latent"], values, batch["lens"], step=ctx.step,
                             sample_index=batch.get("sample_index"), num_valid_global=ctx.num_valid_global,
                             draws=override_draws(ctx.drop_override, ctx.time_override),
                             **self.teacher_inputs(batch))
        return {"loss": out["loss"] * ctx.world_size, "loss_value": out["loss"].detach()}

    def teacher_recipe(self) -> FlowRecipe | None:
        """The frozen teacher of a distillation objective (its `teacher` weights), loaded at first use and shared
        by the recipes of this architecture (toolkit.models.teacher); None for an objective without one."""
        path = getattr(self.objective, "teacher", None)
        if not path:
            return None
        from .teacher import frozen_teacher

        return frozen_teacher(self, path, self.objective.teacher_use_ema)

    def teacher_inputs(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """What a distillation objective needs beside the student's inputs: the teacher (routed), its condition
        values of the batch and the negatives guidance's unconditional half sees; {} without a teacher."""
        teacher = self.teacher_recipe()
        if teacher is None:
            return {}
        latent = batch["latent"]
        with torch.no_grad():
            values = teacher.conditions(batch["conditions"])
            negative = teacher.conditions.negatives(latent.shape[0], latent.shape[1])
        return {"teacher": teacher.routed, "teacher_conditions": values,
                "negative_conditions": {k: _to(v, latent.device, latent.dtype) for k, v in negative.items()}}

    # ---------------------------------------------------------------------------------- generation
    def dropped_conditions(self) -> list[str]:
        """The conditions the unconditional model goes without: those with a drop group (that applies at every
        input they bind to)."""
        return [name for name, spec in self.conditions.specs.items()
                if spec.drop is not None and set(spec.drop_at) == set(spec.inputs)]

    def partly_dropped_groups(self) -> list[str]:
        """Drop groups of conditions dropped at some of their inputs only (`drop_at`): the unconditional model
        keeps their values and drops them where training does."""
        return sorted({spec.drop for spec in self.conditions.specs.values()
                       if spec.drop is not None and set(spec.drop_at) != set(spec.inputs)})

    def request_values(self, values: Mapping[str, Any], span: Span, dropped: bool = False) -> dict[str, Any]:
        """Request values by the conditions' `request` keys -> prepared values by condition name; with
        `dropped`, the conditions that have a drop group are left out (sampling gives them their null value,
        what training drops to)."""
        skip = set(self.dropped_conditions()) if dropped else set()
        return {name: self.conditions[name].from_request(field_value(values, spec.request), span)
                for name, spec in self.conditions.specs.items() if name not in skip}

    def sample(self, prepared: Mapping[str, Any], frames: int, *, batch: int, seed: int,
               cond: torch.Tensor | None = None, mask: torch.Tensor | None = None, options: Mapping[str, Any] = (),
               dropped: bool = False, extra: Mapping[str, torch.Tensor] | None = None,
               progress: Callable[..., None] | None = None, negative: Mapping[str, Any] | None = None
               ) -> torch.Tensor:
        """Latents [batch, frames, D] for one request: item i from noise seeded `seed + i`.

        prepared: un-batched prepared values by condition name; cond: [frames, D] reference latent (zeros
        where generated; None = nothing given); mask: [frames] bool, True where generated; options: sampler
        arguments the request sets (steps, cfg_strength, ...); dropped: no guidance (the unconditional
        model); extra: more backbone entries for every item (a frame mask); negative: un-batched prepared values
        by condition name that guidance's unconditional half sees instead (a request's negative prompt).
        """
        device, dtype = self.device, integration_dtype(self.dtype)
        latent_dim = self.codec.latent_dim
        null = self.dropped_conditions() if dropped else []
        batched = {name: self.conditions[name].collate([value] * batch) for name, value in prepared.items()}
        values = self.conditions(batched, null=null, batch=batch, frames=frames)
        values = {k: _to(v, device, dtype) for k, v in values.items()}
        values.update({k: v.to(device) for k, v in (extra or {}).items()})
        given = {name: self.conditions[name].collate([value] * batch) for name, value in (negative or {}).items()}
        negative = {**self.conditions.negatives(batch, frames), **self.conditions.outputs(given)}
        negative = {k: _to(v, device, dtype) for k, v in negative.items()}
        cond = torch.zeros(frames, latent_dim) if cond is None else cond
        cond = cond.to(device=device, dtype=dtype)[None].expand(batch, -1, -1)
        if mask is not None:
            mask = mask.to(device)[None].expand(batch, -1)
        noise = torch.stack([torch.randn(frames, latent_dim, generator=torch.Generator().manual_seed(seed + i))
                             for i in range(batch)]).to(device=device, dtype=dtype)
        options = dict(options)
        if dropped:
            options.update(self.unguided_options())  # the unconditional model alone
        routed = self.conditions.routed(self.transformer, self.partly_dropped_groups()) if dropped else self.routed
        if self.snapshots is not None and self.sampler.resumable:
            options["snapshots"] = self.snapshots
        return self.sampler.sample(routed, noise, cond, values, mask=mask, negative_conditions=negative,
                                   callback=progress, **options)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """[B, T, D] latents -> [B, C, N] float32 audio on the CPU (the codec decodes in float32)."""
        device = next(iter(self.codec.parameters()), latents).device
        return self.codec.decode(latents.float().to(device)).cpu()

    def finish(self, audio: torch.Tensor, reference_gain: float | None = None) -> tuple[torch.Tensor, str]:
        """The output level (see the class docstring): -> (audio, a note on what was done)."""
        if reference_gain is not None:  # an edit: the kept part at the reference's level
            return fit_level(audio, gain=1.0 / reference_gain, ceiling_db=self.peak_db)
        if self.level == "peak":
            return fit_level(audio, peak_db=self.peak_db)
        return fit_level(audio, gain=1.0, ceiling_db=self.peak_db)


def _to(value: torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return value.to(device=device, dtype=dtype) if value.is_floating_point() else value.to(device)


def options_from(request: Any, names: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Sampler options a request sets: [(request field, sampler argument)] for the fields not None."""
    return {arg: getattr(request, name) for name, arg in names if getattr(request, name, None) is not None}
