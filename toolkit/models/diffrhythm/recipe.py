"""The DiffRhythm recipe: codec + lyrics/style conditioners + DiT + CFM objective + flow sampler.

The codec is frozen and kept outside the module tree, so `state_dict()` holds exactly what trains
(`transformer.*` as upstream, plus learned conditioner weights if any) and a published `cfm_model.pt`
loads into `transformer` with no key map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch

from ...objectives.cfm import override_draws
from ...protocols import Codec
from ..base import CodecRecipe
from ...registry import BACKBONES, CODECS, CONDITIONERS, OBJECTIVES, SAMPLERS, RECIPES
from .request import RequestError, SongRequest


@dataclass
class SongResult:
    """Generated audio [batch, C, N] at `sample_rate`, the latents, and what produced them."""

    audio: torch.Tensor
    sample_rate: int
    latents: torch.Tensor
    request: SongRequest
    info: dict[str, Any] = field(default_factory=dict)


def build_frontend(codec: Any, lyrics: Any, style: Any, max_frames: int) -> tuple[Codec, Any, Any]:
    """The frozen codec and the conditioners, wired as the recipe wires them (feature extraction uses it)."""
    codec_module: Codec = CODECS.build(codec)
    codec_module.requires_grad_(False).eval()
    lyrics_module = CONDITIONERS.build(lyrics, frame_rate=codec_module.frame_rate, max_frames=int(max_frames))
    return codec_module, lyrics_module, CONDITIONERS.build(style)


@RECIPES.register("diffrhythm")
class DiffRhythm(CodecRecipe):
    """DiffRhythm: full songs from time-stamped lyrics and a style prompt (DiT + CFM over codec latents)."""

    def __init__(self, codec: Any, backbone: Any, lyrics: Any = "lyrics_lrc", style: Any = "style_features",
                 objective: Any = "cfm", sampler: Any = "flow", max_frames: int = 2048,
                 default_seconds: float | None = None, negative_style: str | None = "null"):
        super().__init__()
        codec_module, self.lyrics, self.style = build_frontend(codec, lyrics, style, max_frames)
        self.set_codec(codec_module)
        self.max_frames = int(max_frames)
        self.frame_rate = codec_module.frame_rate
        self.default_seconds = default_seconds
        self.transformer = BACKBONES.build(backbone, latent_dim=codec_module.latent_dim, max_frames=self.max_frames)
        self.objective = OBJECTIVES.build(objective)
        self.sampler = SAMPLERS.build(sampler)
        # "null": guidance against the dropped style (what training drops to); "negative": the style
        # conditioner's negative embedding (upstream's negative_style.npy for MuQ-MuLan).
        if negative_style not in ("null", "negative"):
            raise ValueError("negative_style must be 'null' (dropped style) or 'negative' (the conditioner's "
                             f"negative embedding), got {negative_style!r}")
        self.negative_style = negative_style

    # ------------------------------------------------------------------------------------ training
    def batch_conditions(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        conditions = {"lyrics": self.lyrics(batch["lyrics"]), "style": self.style(batch["style"])}
        if "start_time" in batch:
            conditions["start_time"] = batch["start_time"]
        if getattr(self.transformer, "has_duration", False):
            conditions["duration"] = batch["lens"].to(batch["latent"].dtype) / self.max_frames
        return conditions

    def training_step(self, batch: Mapping[str, Any], *, step: int = 0, seed: int | None = None,
                      num_valid_global: int | None = None, world_size: int = 1,
                      drop_override: Mapping[str, bool] | None = None,
                      time_override: float | None = None) -> dict[str, torch.Tensor]:
        """The CFM loss of one batch; scaled so DDP's gradient average equals the global-batch mean."""
        if seed is not None:
            self.objective.seed = seed
        draws = override_draws(drop_override, time_override)
        out = self.objective(self.transformer, batch["latent"], self.batch_conditions(batch), batch["lens"],
                             step=step, sample_index=batch.get("sample_index"),
                             num_valid_global=num_valid_global, draws=draws)
        return {"loss": out["loss"] * world_size, "loss_value": out["loss"].detach()}

    # ---------------------------------------------------------------------------------- generation
    def frames_for(self, seconds: float) -> int:
        return int(seconds * self.frame_rate)

    def plan_frames(self, request: SongRequest, ref_frames: int | None = None) -> int:
        """Number of latent frames to generate, checked against what the model supports."""
        if request.continue_seconds:
            frames = (ref_frames or 0) + self.frames_for(request.continue_seconds)
        elif request.length is not None:
            frames = self.frames_for(request.length)
        elif ref_frames is not None:
            frames = min(ref_frames, self.max_frames)
        else:
            seconds = self.default_seconds or self.max_frames / self.frame_rate
            frames = self.frames_for(seconds)
        longest = self.max_frames / self.frame_rate
        if frames > self.max_frames:
            raise RequestError(f"the song would be {frames / self.frame_rate:.1f} s but this model generates at most "
                               f"{longest:.1f} s ({self.max_frames} frames); ask for a shorter length")
        if frames < 1:
            raise RequestError("the requested length is shorter than one latent frame")
        return frames

    def prepare_style(self, request: SongRequest) -> torch.Tensor:
        if request.style_audio:
            value: Any = {"audio": request.style_audio}
        elif request.style_text:
            value = {"text": request.style_text}
        else:
            raise RequestError("give a style prompt: a reference clip (--style-audio) or a text (--style-text)")
        return self.style.prepare(value)

    def prepare_lyrics(self, request: SongRequest, num_frames: int) -> torch.Tensor:
        if request.instrumental or not (request.lrc or request.lyrics):
            return torch.zeros(num_frames, dtype=torch.long)
        return self.lyrics.prepare(request.lrc or request.lyrics, num_frames=num_frames)

    def reference_latent(self, request: SongRequest) -> torch.Tensor | None:
        if not request.ref_song:
            return None
        from ...audio import load_audio, peak_normalize

        wav, _ = load_audio(request.ref_song, self.codec.sample_rate, self.codec.channels)
        wav = peak_normalize(wav, -6.0)  # upstream normalises the reference to -6 dBFS before encoding
        with torch.inference_mode():
            return self.codec.encode(wav[None].to(self.device))[0].to(self.dtype)

    def edit_mask(self, request: SongRequest, num_frames: int, ref_frames: int | None) -> torch.Tensor:
        """[T] bool, True where frames are generated."""
        mask = torch.ones(num_frames, dtype=torch.bool)
        if request.segments:
            mask[:] = False
            for start, end in request.segments:
                s = 0 if start == -1 else self.frames_for(start)
                e = num_frames if end == -1 else self.frames_for(end)
                mask[s:min(e, num_frames)] = True
        elif request.continue_seconds:
            mask[:ref_frames] = False
        if ref_frames is not None and request.segments and ref_frames < num_frames:
            raise RequestError(f"the reference song is {ref_frames / self.frame_rate:.1f} s but the edited song is "
                               f"{num_frames / self.frame_rate:.1f} s: give a longer reference or a shorter length")
        return mask

    @torch.inference_mode()
    def generate(self, request: SongRequest, progress: Callable[..., None] | None = None,
                 decode: bool = True) -> SongResult:
        request.check()
        device, dtype = self.device, self.dtype
        ref = self.reference_latent(request)
        ref_frames = None if ref is None else ref.shape[0]
        frames = self.plan_frames(request, ref_frames)
        mask = self.edit_mask(request, frames, ref_frames)
        dropped = request.drop_conditions
        # Dropped conditions are what training drops to: filler lyrics (0) and the null style.
        lyrics = torch.zeros(frames, dtype=torch.long) if dropped else self.prepare_lyrics(request, frames)
        style = None if dropped else self.prepare_style(request)

        b = request.batch
        latent_dim = self.codec.latent_dim
        cond = torch.zeros(frames, latent_dim, dtype=dtype)
        if ref is not None:
            n = min(frames, ref_frames)
            cond[:n] = ref[:n].cpu()
        conditions = {
            "lyrics": self.lyrics(lyrics[None].expand(b, -1).to(device)),
            "style": (self.style.null(b).to(device=device, dtype=dtype) if style is None else
                      self.style(style[None].expand(b, *style.shape).to(device)).to(dtype)),
            "start_time": torch.zeros(b, device=device, dtype=dtype),
        }
        if getattr(self.transformer, "has_duration", False):
            conditions["duration"] = torch.full((b,), frames / self.max_frames, device=device, dtype=dtype)
        # The unconditional half drops lyrics and audio prompt (the sampler's uncond_drop) and swaps the style.
        neg = self.style.negative(1)[0] if self.negative_style == "negative" else self.style.null(1)[0]
        negative = {"style": neg.to(device=device, dtype=dtype)[None].expand(b, -1)}

        noise = torch.stack([
            torch.randn(frames, latent_dim, generator=torch.Generator().manual_seed(request.seed + i))
            for i in range(b)]).to(device=device, dtype=dtype)
        options = {k: v for k, v in (("steps", request.steps), ("cfg_strength", request.cfg),
                                     ("sway_coef", request.sway), ("method", request.solver)) if v is not None}
        if dropped:
            options["cfg_strength"] = 0.0  # the unconditional model alone: no guidance
        latents = self.sampler.sample(
            self.transformer, noise, cond[None].expand(b, -1, -1).to(device), conditions,
            mask=mask[None].expand(b, -1).to(device), negative_conditions=negative,
            callback=progress, **options)
        audio = self.decode(latents) if decode else torch.empty(0)
        info = {"frames": frames, "frame_rate": self.frame_rate, "seconds": frames / self.frame_rate,
                "condition": "dropped" if dropped else "full"}
        return SongResult(audio=audio, sample_rate=self.codec.sample_rate, latents=latents.float().cpu(),
                          request=request, info=info)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.codec.decode(latents.float().to(next(iter(self.codec.parameters()), latents).device)).cpu()
