"""The F5-TTS recipe: codec (log-mel + Vocos by default) + character tokens + dit_f5 + shared CFM and sampler.

Shared with DiffRhythm: the `cfm` objective, the `flow` sampler, the trainer, EMA and checkpoint format,
the codecs and the building blocks of the backbone. F5's choices are configurations of those:

  objective: uniform time, loss on the masked span, audio drop 0.3, audio+text drop 0.2 (one decision
             per batch, as upstream), the valid-frame mask handed to the backbone (F5_OBJECTIVE);
  sampler:   Euler, 32 updates, EPSS grid (used for 5/6/7/10/12/16 steps), sway -1, cfg 2, the
             unconditional half drops audio and text (F5_SAMPLER).

The codec is frozen and kept outside the module tree, so `state_dict()` is `transformer.*` exactly as
upstream's CFM, and a published checkpoint loads into `transformer` with no key map.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch

from ...objectives.cfm import override_draws
from ...protocols import Codec
from ..base import CodecRecipe
from ...registry import BACKBONES, CODECS, CONDITIONERS, OBJECTIVES, RECIPES, SAMPLERS, split_node
from .inference import effective_durations, estimate_frames, item_noise, sampling_inputs

F5_CODEC = {"type": "mel", "latent_mean": 0.0, "latent_std": 1.0}  # raw log-mels, as F5 trains on
F5_OBJECTIVE = {"type": "cfm", "time_distribution": "uniform", "loss_region": "span", "span_fraction": [0.7, 1.0],
                "drop_probs": {"audio": 0.3}, "joint_drop_prob": 0.2, "joint_drop_groups": ["audio", "text"],
                "drop_per": "batch", "frame_mask_key": "mask"}
F5_SAMPLER = {"type": "flow", "steps": 32, "method": "euler", "time_grid": "epss", "sway_coef": -1.0,
              "cfg_strength": 2.0, "uncond_drop": ["audio", "text"]}
SENTENCE_END = re.compile(r"(?<=[;:,.!?])\s+|(?<=[；：，。！？])")


class RequestError(ValueError):
    """A generation request that cannot be served as given."""


@dataclass
class SpeechRequest:
    """What to say (`text`), in whose voice (`ref_audio` + its transcript `ref_text`), and how."""

    text: str
    ref_audio: str | None = None
    ref_text: str = ""
    seed: int = 0
    steps: int | None = None
    cfg: float | None = None
    sway: float | None = None
    speed: float = 1.0
    seconds: float | None = None      # total length of the new speech (one chunk only); None = estimate
    drop_conditions: bool = False     # the unconditional model alone (text and prompt dropped, no guidance)

    def check(self) -> None:
        if not self.text or not self.text.strip():
            raise RequestError("give the text to speak")
        if self.ref_audio and not self.ref_text.strip():
            raise RequestError("a reference clip needs its transcript (ref_text)")
        if self.speed <= 0:
            raise RequestError(f"speed must be positive, got {self.speed}")


@dataclass
class SpeechResult:
    audio: torch.Tensor          # [C, N]
    sample_rate: int
    chunks: list[str]
    info: dict[str, Any] = field(default_factory=dict)


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


def with_defaults(node: Any, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """A component node filled with F5's defaults when it names the same type (`sampler: flow` -> F5's) or
    names none (`sampler.steps=16` on a config without a sampler section)."""
    if isinstance(node, Mapping) or hasattr(node, "items"):
        from omegaconf import DictConfig, OmegaConf

        plain = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
        node = plain if "type" in plain else {"type": defaults["type"], **plain}
    name, kwargs = split_node(node, "component")
    if name != defaults["type"]:
        return {"type": name, **kwargs}
    return {**defaults, **kwargs}


class _NoStyle:
    """F5 has no style condition; feature extraction stores an empty tensor in its place."""

    def prepare(self, value: Any, **_: Any) -> torch.Tensor:
        return torch.zeros(0)


def build_frontend(cfg: Mapping[str, Any]) -> tuple[Codec, Any, Any]:
    """(codec, text tokens, no-style) as the recipe wires them (feature extraction uses it)."""
    codec = CODECS.build(with_defaults(cfg.get("codec", "mel"), F5_CODEC))
    codec.requires_grad_(False).eval()
    return codec, CONDITIONERS.build(cfg.get("text", "char_tokens")), _NoStyle()


@RECIPES.register("f5tts")
class F5TTS(CodecRecipe):
    """F5-TTS: speech from text in the voice of a reference clip (DiT + CFM over mel frames, Vocos)."""

    build_frontend = staticmethod(build_frontend)

    def __init__(self, codec: Any = "mel", backbone: Any = "dit_f5", text: Any = "char_tokens",
                 objective: Any = "cfm", sampler: Any = "flow", max_frames: int = 4096, target_rms: float = 0.1,
                 cross_fade_seconds: float = 0.15, max_ref_seconds: float = 12.0, chunk_seconds: float = 22.0,
                 frames_per_byte: float | None = None, pretrained: str | None = None):
        super().__init__()
        codec_module, self.text, _ = build_frontend({"codec": codec, "text": text})
        self.set_codec(codec_module)
        self.frame_rate = codec_module.frame_rate
        self.max_frames = int(max_frames)
        backbone_node = with_defaults(backbone, {"type": "dit_f5"})
        self.transformer = BACKBONES.build(backbone_node, latent_dim=codec_module.latent_dim,
                                           **self._text_size(backbone_node))
        self.objective = OBJECTIVES.build(with_defaults(objective, F5_OBJECTIVE))
        self.sampler = SAMPLERS.build(with_defaults(sampler, F5_SAMPLER))
        self.target_rms, self.cross_fade_seconds = float(target_rms), float(cross_fade_seconds)
        self.max_ref_seconds, self.chunk_seconds = float(max_ref_seconds), float(chunk_seconds)
        # Speaking rate for prompt-free generation: ~15 characters per second of speech.
        self.frames_per_byte = float(frames_per_byte) if frames_per_byte else self.frame_rate / 15.0
        if pretrained:
            from .checkpoints import load_f5_checkpoint_into

            load_f5_checkpoint_into(self.transformer, pretrained)

    def _text_size(self, node: Mapping[str, Any]) -> dict[str, int]:
        """The backbone's vocabulary size follows from the text conditioner (one place, no repetition)."""
        if "text_num_embeds" in node:
            if int(node["text_num_embeds"]) != self.text.vocab_size:
                raise ValueError(f"backbone.text_num_embeds={node['text_num_embeds']} but the vocabulary has "
                                 f"{self.text.vocab_size} tokens: drop the setting (it follows from text.vocab)")
            return {}
        return {"text_num_embeds": self.text.vocab_size}

    # ------------------------------------------------------------------------------------ training
    def training_step(self, batch: Mapping[str, Any], *, step: int = 0, seed: int | None = None,
                      num_valid_global: int | None = None, world_size: int = 1,
                      drop_override: Mapping[str, bool] | None = None,
                      time_override: float | None = None) -> dict[str, torch.Tensor]:
        """The CFM loss of one batch {"latent" [B,T,D], "lens" [B], "text" [B,n] (pad -1)}; scaled so DDP's
        gradient average equals the global-batch mean (normalised by the global valid-frame count)."""
        if seed is not None:
            self.objective.seed = seed
        draws = override_draws(drop_override, time_override)
        out = self.objective(self.transformer, batch["latent"], {"text": batch["text"]}, batch["lens"],
                             step=step, sample_index=batch.get("sample_index"),
                             num_valid_global=num_valid_global, draws=draws)
        return {"loss": out["loss"] * world_size, "loss_value": out["loss"].detach()}

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
                 decode: bool = True) -> SpeechResult:
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
        options = {k: v for k, v in (("steps", request.steps), ("cfg_strength", request.cfg),
                                     ("sway_coef", request.sway)) if v is not None}
        if request.drop_conditions:
            options["cfg_strength"] = 0.0
        ref_frames = prompt.shape[0]
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
            if int(durations.max()) > self.max_frames:
                raise RequestError(f"a chunk needs {int(durations.max())} frames but the model takes at most "
                                   f"{self.max_frames}: use a shorter reference clip or shorter sentences")
            noise = item_noise(durations, latent_dim, request.seed + i).to(device=device, dtype=dtype)
            cond, generate_mask, frame_mask = sampling_inputs(prompt[None], torch.tensor([ref_frames]), durations)
            conditions = {"text": ids.to(device)}
            if frame_mask is not None:
                conditions["mask"] = frame_mask
            if request.drop_conditions:
                conditions["text"] = torch.full_like(conditions["text"], -1)
                cond = torch.zeros_like(cond)
            out = self.sampler.sample(self.transformer, noise, cond, conditions, mask=generate_mask,
                                      callback=progress, **options)
            new = out[0, ref_frames:int(durations[0])]
            latents.append(new.float().cpu())
            frames_used.append(int(new.shape[0]))
            if decode:
                pieces.append(self.decode(new[None])[0] / gain)
        overlap = int(self.cross_fade_seconds * self.codec.sample_rate)
        audio = cross_fade(pieces, overlap) if pieces else torch.empty(0)
        info = {"frames": frames_used, "frame_rate": self.frame_rate, "ref_frames": ref_frames,
                "seconds": (audio.shape[-1] / self.codec.sample_rate) if pieces else sum(frames_used) / self.frame_rate,
                "condition": "dropped" if request.drop_conditions else "full", "latents": latents}
        return SpeechResult(audio=audio, sample_rate=self.codec.sample_rate, chunks=chunks, info=info)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.codec.decode(latents.float().to(next(iter(self.codec.parameters()), latents).device)).cpu()
