"""The Stable Audio recipe: audio from a text prompt and its timing (Stable Audio Open's DiT over codec latents).

Everything shared (parts, training step, sampling, decoding, output level) is toolkit.models.base's FlowRecipe.
Shared with DiffRhythm and F5-TTS: the codecs, the trainer, the condition router, the request and serving
layers. Stable Audio Open's own parts are components (docs/components/stable_audio.md): the `dit_sao` backbone,
the `t5_text` / `number` conditioners, the `v_diffusion` / `rectified_flow` objectives and samplers. What is this
recipe's own is here: how long an output is ([seconds_start, seconds_total]), what a request gives its conditions
(prompt, negative prompt, timing), variations of an init clip, and the loading of a published folder.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from ...audio import load_audio
from ...registry import RECIPES
from ..base import FlowRecipe, GenerationResult, options_from
from ..requests import Option
from .planning import plan_frames, total_seconds
from .request import AudioRequest
from .validation import AudioValidator

SAMPLER_OPTIONS = (("steps", "steps"), ("cfg", "cfg_scale"), ("cfg_rescale", "scale_phi"), ("sampler", "method"))
DEFAULT_INIT_NOISE = 0.7  # a variation's noise level when the request gives none (t of the model's objective)


def condition_values(request: AudioRequest, total: float) -> dict[str, Any]:
    """What a request gives its conditions, by request key (a config's `request:` names these)."""
    return {**request.conditions, "prompt": request.prompt, "seconds_start": float(request.seconds_start),
            "seconds_total": float(total)}


@RECIPES.register("stable_audio")
class StableAudio(FlowRecipe):
    """Stable Audio Open: audio from a text prompt and timing (DiT + v-diffusion or rectified flow over latents)."""

    request_type = AudioRequest
    output_name = "audio"
    guidance_option, unguided_value = "cfg_scale", 1.0  # the SAO samplers' guidance scale: 1 is no guidance
    validator_type = AudioValidator
    pretrained_options = (Option(
        field="t5", kind="path", flag="--t5", group="published files", metavar="DIR",
        help="the T5 encoder's local folder (t5-base saved with save_pretrained: config.json, weights, tokenizer); "
             "default: a T5 folder inside --pretrained"),)

    @classmethod
    def is_pretrained_folder(cls, folder: Path) -> bool:
        from .pretrained import looks_published

        return looks_published(folder)

    @classmethod
    def pretrained_config(cls, folder: Path, options: Mapping[str, Any], first_request: Any = None
                          ) -> tuple[dict[str, Any], dict[str, Any]]:
        from .pretrained import find_files, published_config

        files = find_files(folder, options.get("t5"))
        return published_config(files), {"path": files.checkpoint, "files": {"model_config": files.config},
                                         "folders": {"t5": files.t5}}

    @classmethod
    def load_pretrained(cls, cfg: Any, source: Mapping[str, Any]) -> StableAudio:
        from .pretrained import build_published_recipe

        return build_published_recipe(cfg, source["path"])

    def __init__(self, codec: Any, backbone: Any, conditions: Any, objective: Any = "v_diffusion",
                 sampler: Any = "v_diffusion", max_frames: int = 1024, default_seconds: float | None = None,
                 level: str | None = None, peak_db: float = -1.0):
        super().__init__(codec, backbone, conditions, objective, sampler, max_frames, level, peak_db)
        self.default_seconds = default_seconds

    # ---------------------------------------------------------------------------------- generation
    def prompt_conditions(self) -> list[str]:
        """The conditions that read the request's prompt (the negative prompt goes to the same ones)."""
        return [name for name, spec in self.conditions.specs.items() if spec.request == "prompt"]

    def init_latent(self, path: str, frames: int) -> torch.Tensor:
        """The init clip's latent, cut or zero-padded to `frames` [T, D]."""
        wav, _ = load_audio(path, self.codec.sample_rate, self.codec.channels)
        wav = wav[..., : frames * self.codec.hop_length]
        with torch.inference_mode():
            latent = self.codec.encode(wav[None].to(self.device))[0].float().cpu()
        out = torch.zeros(frames, self.codec.latent_dim)
        out[: min(frames, latent.shape[0])] = latent[:frames]
        return out

    def variation_options(self, request: AudioRequest, frames: int, method: str | None) -> dict[str, Any]:
        """Sampler options of a variation: the init latents and where sampling starts (the noise level t)."""
        level = request.init_noise_level or DEFAULT_INIT_NOISE
        init = self.init_latent(request.init_audio, frames)[None].expand(request.batch, -1, -1)
        defaults = getattr(self.sampler, "defaults", {})
        method = method or defaults.get("method")
        if "sigma_min" not in defaults or method == "v-ddim":  # rectified flow and v-DDIM start at t itself
            return {"init": init.to(self.device, self.dtype), "sigma_max": float(level)}
        sigma = min(math.tan(level * math.pi / 2), float(defaults["sigma_max"]))  # k-diffusion sigma of t
        return {"init": init.to(self.device, self.dtype), "sigma_max": sigma,
                "sigma_min": min(float(defaults["sigma_min"]), sigma / 2)}

    @torch.inference_mode()
    def generate(self, request: AudioRequest, progress: Callable[..., None] | None = None,
                 decode: bool = True) -> GenerationResult:
        request.check()
        frames = plan_frames(request, self.frame_rate, self.max_frames, self.default_seconds)
        total = total_seconds(request, self.default_seconds, self.max_frames, self.frame_rate)
        span = self.span(frames)
        dropped = request.drop_conditions
        prepared = self.request_values(condition_values(request, total), span, dropped=dropped)
        negative = None
        if request.negative_prompt and not dropped:
            negative = {name: self.conditions[name].from_request(request.negative_prompt, span)
                        for name in self.prompt_conditions()}
        seed = 0 if request.seed is None else request.seed
        options = {**options_from(request, SAMPLER_OPTIONS), "seed": seed}
        if request.init_audio:
            options.update(self.variation_options(request, frames, request.sampler))
        steps = request.steps or getattr(self.sampler, "steps", None)

        def step(info: Mapping[str, Any]) -> None:  # the SAO samplers report a dict per step
            if progress is not None:
                progress(int(info["i"]), steps)

        latents = self.sample(prepared, frames, batch=request.batch, seed=seed, options=options, dropped=dropped,
                              progress=step, negative=negative)
        latents = latents.float().cpu()
        result = GenerationResult(audio=[], sample_rate=self.codec.sample_rate, latents=list(latents),
                                  request=request,
                                  info={"frames": frames, "frame_rate": self.frame_rate, "seconds": span.seconds,
                                        "seconds_start": float(request.seconds_start), "seconds_total": total,
                                        "condition": "dropped" if dropped else "full"})
        if decode:
            for i in range(request.batch):
                audio, result.info["level"] = self.finish(self.decode(latents[i:i + 1])[0])
                result.audio.append(audio)
        return result
