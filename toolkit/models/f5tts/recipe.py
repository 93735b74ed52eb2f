"""The F5-TTS recipe: speech from text in the voice of a reference clip (DiT + CFM over mel frames).

Shared with DiffRhythm: the codecs, the `cfm` objective, the `flow` sampler, the trainer, EMA and the checkpoint
format, the recipe skeleton (toolkit.models.base). F5's settings of those are a `_base_` preset its configs and
checkpoints show (toolkit/models/f5tts/presets/f5tts.yaml). F5's own: the request, chunking a long text at
sentence ends, the prompt clip and its transcript, durations from the text length, cross-fading the chunks.

The codec is frozen and kept outside the module tree, so `state_dict()` is `transformer.*` exactly as
upstream's CFM, and a published checkpoint loads into `transformer` with no key map.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ...registry import RECIPES
from ..base import FlowRecipe, GenerationResult, options_from
from ..requests import RequestError, option
from .inference import effective_durations, estimate_frames, sampling_inputs
from .validation import MAX_REF_SECONDS, SpeechValidator

SENTENCE_END = re.compile(r"(?<=[;:,.!?])\s+|(?<=[；：，。！？])")
SAMPLER_OPTIONS = (("steps", "steps"), ("cfg", "cfg_strength"), ("sway", "sway_coef"))


@dataclass
class SpeechRequest:
    """What to say (`text`), in whose voice (`ref_audio` + its transcript `ref_text`), and how."""

    text: str | None = field(default=None, metadata=option("what to say", metavar="TEXT"))
    ref_audio: str | None = field(default=None, metadata=option(
        f"reference clip (its voice is cloned; at most {MAX_REF_SECONDS:g} s are used)", kind="path", metavar="FILE"))
    ref_text: str = field(default="", metadata=option("transcript of the reference clip", metavar="TEXT"))
    seed: int | None = field(default=None, metadata=option(
        "random seed (default: a fresh one, written to the manifest)", kind="int"))
    steps: int | None = field(default=None, metadata=option(
        "ODE updates (F5 default 32; EPSS grid at 5/6/7/10/12/16)", kind="int"))
    cfg: float | None = field(default=None, metadata=option("guidance strength (default 2)", kind="float"))
    sway: float | None = field(default=None, metadata=option("sway sampling coefficient (default -1)", kind="float"))
    speed: float = field(default=1.0, metadata=option("speaking rate factor", kind="float"))
    seconds: float | None = field(default=None, metadata=option(
        "length of the new speech (default: from the text length)", kind="float"))
    title: str | None = field(default=None, metadata=option("title (tags and file name)", group="output"))
    drop_conditions: bool = field(default=False, metadata=option(
        "the unconditional model (no text, no prompt, no guidance)", kind="flag"))

    def check(self) -> SpeechRequest:
        if not self.text or not self.text.strip():
            raise RequestError("give the text to speak (--text)")
        if self.ref_audio and not Path(self.ref_audio).is_file():
            raise RequestError(f"reference clip not found: {self.ref_audio}")
        if self.ref_audio and not self.ref_text.strip():
            raise RequestError("a reference clip needs its transcript (ref_text)")
        if self.speed <= 0:
            raise RequestError(f"speed must be positive, got {self.speed}")
        if self.seconds is not None and not self.seconds > 0:
            raise RequestError(f"seconds must be positive, got {self.seconds}")
        if self.steps is not None and self.steps < 1:
            raise RequestError(f"steps must be at least 1, got {self.steps}")
        return self


def chunk_text(text: str, max_bytes: int) -> list[str]:
    """Split at sentence / clause ends into chunks of at most `max_bytes` UTF-8 bytes (a longer clause
    stays whole), as upstream's chunk_text: pieces ending in an ASCII character are joined with a space."""
    chunks, current = [], ""
    for sentence in SENTENCE_END.split(text):
        if not sentence:
            continue
        size = len(sentence.encode("utf-8"))
        if current and len(current.encode("utf-8")) + size > max_bytes:
            chunks.append(current.strip())
            current = ""
        current += sentence + (" " if sentence[-1:].isascii() else "")
    if current.strip():
        chunks.append(current.strip())
    return chunks


def cross_fade(pieces: list[torch.Tensor], overlap: int) -> torch.Tensor:
    """Join [C, N_i] waves with linear cross-fades of `overlap` samples (shorter pieces: shorter fades)."""
    out = pieces[0]
    for piece in pieces[1:]:
        n = min(overlap, out.shape[-1], piece.shape[-1])
        if n <= 0:
            out = torch.cat([out, piece], dim=-1)
            continue
        fade = torch.linspace(0, 1, n, dtype=piece.dtype)
        mixed = out[..., -n:] * (1 - fade) + piece[..., :n] * fade
        out = torch.cat([out[..., :-n], mixed, piece[..., n:]], dim=-1)
    return out


@RECIPES.register("f5tts")
class F5TTS(FlowRecipe):
    """F5-TTS: speech from text in the voice of a reference clip (DiT + CFM over mel frames, Vocos)."""

    request_type = SpeechRequest
    validator_type = SpeechValidator
    output_name = "speech"
    default_level = "keep"

    @classmethod
    def is_pretrained_folder(cls, folder: Path) -> bool:
        from .pretrained import looks_published

        return looks_published(folder)

    @classmethod
    def pretrained_config(cls, folder: Path, options: Mapping[str, Any], first_request: Any = None
                          ) -> tuple[dict[str, Any], dict[str, Any]]:
        from .pretrained import find_files, published_config

        files = find_files(folder)
        return published_config(files), {"path": files["checkpoint"], "files": {"vocab": files["vocab"]},
                                         "folders": {"vocos": files["vocos"]}}

    @classmethod
    def load_pretrained(cls, cfg: Any, source: Mapping[str, Any]) -> F5TTS:
        from ..factory import build_recipe
        from .checkpoints import load_f5_checkpoint_into

        recipe = build_recipe(cfg)
        load_f5_checkpoint_into(recipe.transformer, source["path"])
        return recipe

    def __init__(self, codec: Any, backbone: Any, conditions: Any, objective: Any = "cfm", sampler: Any = "flow",
                 max_frames: int = 4096, level: str | None = None, peak_db: float = -1.0, target_rms: float = 0.1,
                 cross_fade_seconds: float = 0.15, max_ref_seconds: float = MAX_REF_SECONDS,
                 chunk_seconds: float = 22.0, frames_per_byte: float | None = None):
        super().__init__(codec, backbone, conditions, objective, sampler, max_frames, level, peak_db)
        self.target_rms, self.cross_fade_seconds = float(target_rms), float(cross_fade_seconds)
        self.max_ref_seconds, self.chunk_seconds = float(max_ref_seconds), float(chunk_seconds)
        # Speaking rate for prompt-free generation: ~15 characters per second of speech.
        self.frames_per_byte = float(frames_per_byte) if frames_per_byte else self.frame_rate / 15.0

    @property
    def text(self):
        return self.conditions["text"]

    def backbone_arguments(self, node: Any) -> dict[str, Any]:
        """The backbone's vocabulary size follows from the text conditioner (one place, no repetition)."""
        vocab = self.conditions["text"].vocab_size
        given = node.get("text_num_embeds") if hasattr(node, "get") else None
        if given is not None:
            if int(given) != vocab:
                raise ValueError(f"backbone.text_num_embeds={given} but the vocabulary has {vocab} tokens: drop "
                                 "the setting (it follows from the text conditioner's vocab)")
            return {}
        return {"text_num_embeds": vocab}

    # ---------------------------------------------------------------------------------- generation
    def load_prompt(self, path: str) -> tuple[torch.Tensor, float]:
        """Reference clip -> (mono wav [1, N] at the codec rate, cut to max_ref_seconds, RMS raised to
        target_rms when quieter; the gain to undo on the output)."""
        from ...audio import load_audio

        wav, _ = load_audio(path, self.codec.sample_rate, self.codec.channels)
        wav = wav[..., : int(self.max_ref_seconds * self.codec.sample_rate)]
        rms = float(wav.square().mean().sqrt())
        gain = 1.0
        if 0 < rms < self.target_rms:
            gain = self.target_rms / rms
            wav = wav * gain
        return wav, gain

    def max_chunk_bytes(self, ref_text: str, ref_seconds: float, speed: float) -> int:
        """Upstream's rule: the reference's bytes per second times the seconds left in a ~22 s window."""
        if not ref_text or ref_seconds <= 0:
            return int(self.chunk_seconds * 15 * speed)
        return max(1, int(len(ref_text.encode("utf-8")) / ref_seconds * (self.chunk_seconds - ref_seconds) * speed))

    @staticmethod
    def terminated(ref_text: str) -> str:
        """The prompt transcript ends with '. ' (or '。') so the new text starts a sentence, as upstream."""
        text = ref_text.strip()
        if not text or text.endswith("。"):
            return text
        return text + (" " if text.endswith(".") else ". ")

    @torch.inference_mode()
    def generate(self, request: SpeechRequest, progress: Callable[..., None] | None = None,
                 decode: bool = True) -> GenerationResult:
        request.check()
        device, dtype = self.device, self.dtype
        latent_dim = self.codec.latent_dim
        if request.ref_audio:
            wav, gain = self.load_prompt(request.ref_audio)
            prompt = self.codec.encode(wav[None].to(device))[0].to(dtype)
            ref_seconds = wav.shape[-1] / self.codec.sample_rate
            ref_text = self.terminated(request.ref_text)
        else:
            prompt, gain, ref_seconds, ref_text = torch.zeros(0, latent_dim, device=device, dtype=dtype), 1.0, 0.0, ""
        chunks = chunk_text(request.text, self.max_chunk_bytes(ref_text, ref_seconds, request.speed))
        if request.seconds is not None and len(chunks) > 1:
            raise RequestError("a fixed length (seconds) applies to one chunk; shorten the text or drop the length")
        ref_frames = prompt.shape[0]
        seed = 0 if request.seed is None else request.seed
        dropped = request.drop_conditions
        pieces, latents, frames_used = [], [], []
        for i, chunk in enumerate(chunks):
            ids = self.text.prepare(ref_text + chunk)[None]
            if request.seconds is not None:
                total = ref_frames + int(request.seconds * self.frame_rate)
            elif ref_frames:
                total = estimate_frames(ref_frames, ref_text, chunk, request.speed)
            else:
                total = int(len(chunk.encode("utf-8")) * self.frames_per_byte / request.speed)
            durations = effective_durations(ids, torch.tensor([ref_frames]), total)
            frames = int(durations[0])
            if frames > self.max_frames:
                raise RequestError(f"a chunk needs {frames} frames but the model takes at most {self.max_frames}: "
                                   "use a shorter reference clip or shorter sentences")
            cond, generate_mask, frame_mask = sampling_inputs(prompt[None], torch.tensor([ref_frames]), durations)
            prepared = self.request_values({"text": ref_text + chunk}, self.span(frames), dropped=dropped)
            cond = torch.zeros_like(cond[0]) if dropped else cond[0]
            extra = {"mask": frame_mask} if frame_mask is not None else None
            out = self.sample(prepared, frames, batch=1, seed=seed + i, cond=cond, mask=generate_mask[0],
                              options=options_from(request, SAMPLER_OPTIONS), dropped=dropped, extra=extra,
                              progress=progress)
            new = out[0, ref_frames:frames]
            latents.append(new.float().cpu())
            frames_used.append(int(new.shape[0]))
            if decode:
                pieces.append(self.decode(new[None])[0] / gain)
        info = {"frames": frames_used, "frame_rate": self.frame_rate, "ref_frames": ref_frames, "chunks": chunks,
                "condition": "dropped" if dropped else "full"}
        audio = []
        if pieces:
            overlap = int(self.cross_fade_seconds * self.codec.sample_rate)
            joined, info["level"] = self.finish(cross_fade(pieces, overlap))
            audio = [joined]
            info["seconds"] = joined.shape[-1] / self.codec.sample_rate
        else:
            info["seconds"] = sum(frames_used) / self.frame_rate
        return GenerationResult(audio=audio, sample_rate=self.codec.sample_rate, latents=[torch.cat(latents)],
                                request=request, info=info)
