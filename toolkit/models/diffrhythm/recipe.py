"""The DiffRhythm recipe: full songs from time-stamped lyrics and a style prompt, edits and continuations.

Everything shared (parts, training step, sampling, decoding, output level) is toolkit.models.base's
FlowRecipe; what is DiffRhythm's own is here: how long a song is, which frames an edit regenerates, the
reference song's latent, and what a SongRequest gives its conditions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from ...audio import load_audio, peak_normalize
from ...registry import RECIPES
from ..base import FlowRecipe, GenerationResult, options_from
from ..requests import Option, RequestError
from .planning import edit_mask, plan_frames
from .request import SongRequest
from .validation import SongValidator

REFERENCE_PEAK_DB = -6.0  # upstream normalises the reference song to -6 dBFS before encoding it
SAMPLER_OPTIONS = (("steps", "steps"), ("cfg", "cfg_strength"), ("sway", "sway_coef"), ("solver", "method"))


def condition_values(request: SongRequest) -> dict[str, Any]:
    """What a request gives its conditions, by request key (a config's `request:` names these)."""
    style = ({"audio": request.style_audio} if request.style_audio else
             {"text": request.style_text} if request.style_text else None)
    lyrics = None if request.instrumental else (request.lrc or request.lyrics)
    return {**request.conditions, "lyrics": lyrics, "style": style}


@RECIPES.register("diffrhythm")
class DiffRhythm(FlowRecipe):
    """DiffRhythm: full songs from time-stamped lyrics and a style prompt (DiT + CFM over codec latents)."""

    request_type = SongRequest
    output_name = "song"
    validator_type = SongValidator
    pretrained_options = (Option(
        field="variant", kind="choice", flag="--variant", group="model", choices=("base", "full", "v1.2-full"),
        help="which published DiT cfm_model.pt is when its keys cannot tell: base (95 s) or full (DiffRhythm v1.0 "
             "full, 285 s); v1.2-full is recognised by its keys"),)

    @classmethod
    def is_pretrained_folder(cls, folder: Path) -> bool:
        from .pretrained import DIT_FILE

        return any(folder.rglob(DIT_FILE))

    @classmethod
    def pretrained_config(cls, folder: Path, options: Mapping[str, Any], first_request: Any = None
                          ) -> tuple[dict[str, Any], dict[str, Any]]:
        from .pretrained import pretrained_config

        seconds = getattr(first_request, "length", None)
        cfg, files, variant = pretrained_config(folder, options.get("variant"), seconds)
        return cfg, {"path": files.dit, "files": {"vae": files.vae}, "folders": {"mulan": files.mulan},
                     "variant": variant}

    @classmethod
    def load_pretrained(cls, cfg: Any, source: Mapping[str, Any]) -> DiffRhythm:
        from .pretrained import build_published_recipe

        return build_published_recipe(cfg, source["path"])

    def __init__(self, codec: Any, backbone: Any, conditions: Any, objective: Any = "cfm", sampler: Any = "flow",
                 max_frames: int = 2048, default_seconds: float | None = None, level: str | None = None,
                 peak_db: float = -1.0):
        super().__init__(codec, backbone, conditions, objective, sampler, max_frames, level, peak_db)
        self.default_seconds = default_seconds

    def reference_latent(self, request: SongRequest) -> tuple[torch.Tensor | None, float | None]:
        """(the reference song's latent [T, D], the gain it was encoded with) or (None, None)."""
        if not request.ref_song:
            return None, None
        wav, _ = load_audio(request.ref_song, self.codec.sample_rate, self.codec.channels)
        peak = float(wav.abs().max())
        if peak <= 0:
            raise RequestError(f"the reference song {request.ref_song} is silent")
        gain = 10.0 ** (REFERENCE_PEAK_DB / 20.0) / peak
        with torch.inference_mode():
            latent = self.codec.encode(peak_normalize(wav, REFERENCE_PEAK_DB)[None].to(self.device))[0]
        return latent.to(self.dtype), gain

    @torch.inference_mode()
    def generate(self, request: SongRequest, progress: Callable[..., None] | None = None,
                 decode: bool = True) -> GenerationResult:
        request.check()
        ref, gain = self.reference_latent(request)
        ref_frames = None if ref is None else ref.shape[0]
        frames = plan_frames(request, self.frame_rate, self.max_frames, self.default_seconds, ref_frames)
        mask = edit_mask(request, self.frame_rate, frames, ref_frames)
        span = self.span(frames)
        dropped = request.drop_conditions
        prepared = self.request_values(condition_values(request), span, dropped=dropped)
        cond = None
        if ref is not None:
            cond = torch.zeros(frames, self.codec.latent_dim, dtype=ref.dtype)
            n = min(frames, ref_frames)
            cond[:n] = ref[:n].cpu()
        seed = 0 if request.seed is None else request.seed
        latents = self.sample(prepared, frames, batch=request.batch, seed=seed, cond=cond, mask=mask,
                              options=options_from(request, SAMPLER_OPTIONS), dropped=dropped, progress=progress)
        latents = latents.float().cpu()
        result = GenerationResult(audio=[], sample_rate=self.codec.sample_rate, latents=list(latents),
                                  request=request,
                                  info={"frames": frames, "frame_rate": self.frame_rate, "seconds": span.seconds,
                                        "condition": "dropped" if dropped else "full"})
        if decode:
            for i in range(request.batch):
                result.audio.append(self.finish_item(latents[i:i + 1], gain, result))
        result.info["reference_gain"] = gain
        return result

    def finish_item(self, latent: torch.Tensor, reference_gain: float | None, result: GenerationResult
                    ) -> torch.Tensor:
        """Decode one item [1, T, D] and set its level (an edit keeps its reference's level)."""
        audio, note = self.finish(self.decode(latent)[0], reference_gain)
        result.info["level"] = note
        return audio
