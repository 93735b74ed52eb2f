"""What the style conditioners share: the output contract, style inputs, clip selection, the negative style.

Every style conditioner (style_mulan, style_features, style_tags) returns [B, 512] vectors from `forward`,
so swapping them is one config override (`conditions.style.conditioner=style_tags`).
`null()` is the zero vector (what training writes for a dropped style); `negative()` is the vector the
unconditional branch of classifier-free guidance uses at inference (upstream DiffRhythm uses a fixed
negative style embedding there, not zeros).
"""

from __future__ import annotations

import os
from abc import abstractmethod
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..audio import middle_start
from ..protocols import OUT_VECTOR, Conditioner

STYLE_DIM = 512
# Audio formats a style value may name; a string with one of these suffixes is always a path, so a
# mistyped path fails as a missing file instead of being embedded as a text prompt.
AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".aif", ".aiff", ".wma"}
# A stored style embedding ([512] or [1, 512]): upstream's negative_style / vocal.npy, dataset style.pt.
EMBEDDING_SUFFIXES = {".npy", ".pt"}
NEGATIVE_STYLE_ASSET = "negative_style.npy"


class StyleError(ValueError):
    """A style value that a style conditioner cannot turn into an embedding."""


def asset_path(name: str) -> Path:
    """Path of a file shipped in toolkit/assets."""
    return Path(str(resources.files("toolkit") / "assets" / name))


def default_negative_style_path() -> Path:
    """The shipped negative style (upstream DiffRhythm infer/example/vocal.npy, MuQ-MuLan space)."""
    return asset_path(NEGATIVE_STYLE_ASSET)


def load_style_embedding(path: str | os.PathLike, dim: int = STYLE_DIM) -> torch.Tensor:
    """A stored embedding file (.npy, or .pt holding a tensor) of shape [dim] or [1, dim] -> float32 [dim]."""
    path = Path(path)
    if not path.is_file():
        raise StyleError(f"style embedding file not found: {path}")
    if path.suffix == ".npy":
        value = torch.from_numpy(np.load(path, allow_pickle=False).astype(np.float32))
    elif path.suffix == ".pt":
        value = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(value, torch.Tensor):
            raise StyleError(f"{path}: expected a tensor of shape [{dim}] or [1, {dim}], found {type(value).__name__}")
    else:
        raise StyleError(f"{path}: a style embedding file must be .npy or .pt")
    return _as_embedding(value, dim, str(path))


def _as_embedding(value: torch.Tensor, dim: int, origin: str) -> torch.Tensor:
    value = value.detach().float().cpu()
    if value.dim() == 2 and value.shape[0] == 1:
        value = value[0]
    if value.shape != (dim,):
        raise StyleError(f"{origin}: a style embedding must have shape [{dim}] or [1, {dim}], not {list(value.shape)}")
    if not torch.isfinite(value).all():
        raise StyleError(f"{origin}: the style embedding holds NaN or infinite values")
    return value.contiguous()


def unit(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """L2-normalise along the last axis."""
    return F.normalize(x, dim=-1, eps=eps)


# ----------------------------------------------------------------------------------------------------
# Style inputs


def parse_style_value(value: Any) -> tuple[str, Any]:
    """A raw style value -> (kind, payload), kind in {"audio", "waveform", "text", "embedding"}.

    - `{"audio": path}`, `{"text": str}`, `{"embedding": path_or_tensor}`: explicit;
    - `(wav, sample_rate)`: a waveform ([N] or [C, N], tensor or array);
    - a str/path ending in .npy/.pt: a stored embedding; ending in an audio suffix, or naming an
      existing file: audio; any other string: a text prompt;
    - a bare tensor/array: a stored embedding ([512] or [1, 512]).
    """
    if isinstance(value, Mapping):
        keys = set(value) & {"audio", "text", "embedding"}
        if len(keys) != 1:
            raise StyleError("a style mapping needs exactly one of 'audio', 'text', 'embedding' "
                             f"(got keys {sorted(value)})")
        kind = keys.pop()
        payload = value[kind]
        if kind == "audio" and not isinstance(payload, (str, os.PathLike)):
            return "waveform", (payload, value.get("sample_rate"))
        return kind, payload
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], (int, np.integer)):
        return "waveform", value
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return "embedding", value
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
        suffix = Path(value).suffix.lower()
        return ("embedding" if suffix in EMBEDDING_SUFFIXES else "audio"), value
    if isinstance(value, str):
        suffix = Path(value).suffix.lower()
        if suffix in EMBEDDING_SUFFIXES:
            return "embedding", value
        if suffix in AUDIO_SUFFIXES or os.path.isfile(value):
            return "audio", value
        return "text", value
    raise StyleError(
        f"cannot use a {type(value).__name__} as a style: give an audio path, a text prompt, (waveform, sample_rate) "
        f"or a stored embedding (.npy/.pt)")


def embedding_from(payload: Any, dim: int = STYLE_DIM) -> torch.Tensor:
    if isinstance(payload, (str, os.PathLike)):
        return load_style_embedding(payload, dim)
    if isinstance(payload, np.ndarray):
        payload = torch.from_numpy(np.asarray(payload, dtype=np.float32))
    if isinstance(payload, torch.Tensor):
        return _as_embedding(payload, dim, "style embedding")
    raise StyleError(f"cannot read a style embedding from a {type(payload).__name__}")


# ----------------------------------------------------------------------------------------------------
# Clip selection (the upstream rule: a clip from the middle of the song)


def loop_to_length(wav: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Repeat a [N] clip end to start until it is `num_samples` long (then cut)."""
    n = wav.shape[-1]
    if n >= num_samples:
        return wav[..., :num_samples]
    reps = -(-num_samples // n)
    return wav.repeat(reps)[:num_samples]


def load_middle_clip(path: str | os.PathLike, sample_rate: int, clip_seconds: float,
                     min_seconds: float) -> tuple[torch.Tensor, float]:
    """Mono [N] float32 clip from the middle of an audio file, and the file's duration (seconds).

    Files at least `clip_seconds` long give exactly `clip_seconds` starting at `middle_start`; shorter
    files are returned whole (the caller decides whether to loop them); files shorter than
    `min_seconds` and silent clips raise StyleError. Missing / corrupt files raise toolkit.audio.AudioError.
    """
    from ..audio import audio_duration, load_audio

    duration = audio_duration(path)
    if duration < min_seconds:
        raise StyleError(f"{path}: the style audio is {duration:.3f} s long; at least {min_seconds:g} s is needed")
    if duration >= clip_seconds:
        start = middle_start(duration, clip_seconds)
        wav, _ = load_audio(path, sample_rate=sample_rate, channels=1, offset=start, duration=clip_seconds)
    else:
        wav, _ = load_audio(path, sample_rate=sample_rate, channels=1)
    wav = wav[0]
    _check_not_silent(wav, str(path))
    return wav, duration


def middle_clip_of(wav: Any, sr: int, sample_rate: int, clip_seconds: float, min_seconds: float) -> torch.Tensor:
    """The same rule for a waveform given in memory ([N] or [C, N]) -> mono [N] at `sample_rate`."""
    from ..audio import resample

    wav = torch.as_tensor(np.asarray(wav) if not isinstance(wav, torch.Tensor) else wav).float()
    if wav.dim() == 1:
        wav = wav[None]
    if wav.dim() != 2 or wav.shape[-1] == 0:
        raise StyleError(f"a style waveform must be [N] or [C, N] and non-empty, not {list(wav.shape)}")
    if sr is None:
        raise StyleError("a style waveform needs its sample rate: pass (wav, sample_rate)")
    wav = wav.mean(0)
    duration = wav.shape[-1] / sr
    if duration < min_seconds:
        raise StyleError(f"the style waveform is {duration:.3f} s long; at least {min_seconds:g} s is needed")
    if duration >= clip_seconds:
        start = int(round(middle_start(duration, clip_seconds) * sr))
        wav = wav[start:start + int(round(clip_seconds * sr))]
    wav = resample(wav[None], int(sr), sample_rate)[0]
    _check_not_silent(wav, "style waveform")
    return wav


def _check_not_silent(wav: torch.Tensor, origin: str) -> None:
    from ..audio import SILENCE_DB, is_silent

    if is_silent(wav):
        raise StyleError(f"{origin}: the style clip is silent (below {SILENCE_DB:g} dBFS); "
                         "a style embedding of silence says nothing about the music")


# ----------------------------------------------------------------------------------------------------
# The shared base


class StyleConditioner(Conditioner):
    """Base of the style conditioners: forward -> [B, 512] vectors, zeros as null.

    `negative`: what `negative()` returns for guidance, given as any value `prepare` accepts (an
    embedding file, audio, a text prompt or tags, depending on the conditioner), or None for zeros.
    """

    output_kind = OUT_VECTOR
    default_source = "path"  # the song's own audio (style_tags: its tags)
    output_dim = dim = STYLE_DIM

    def __init__(self, *, negative: Any = None):
        super().__init__()
        self.negative_source = os.fspath(negative) if isinstance(negative, os.PathLike) else negative
        self._negative: torch.Tensor | None = None

    @abstractmethod
    def prepare(self, value: Any, *, num_frames: int | None = None) -> torch.Tensor: ...

    def extract(self, value: Any, span: Any) -> torch.Tensor:
        """A manifest field: the song's audio path, or its tags (a list) as a text prompt."""
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            value = {"text": ", ".join(value)}
        elif isinstance(value, (str, os.PathLike)):
            value = {"audio": os.fspath(value)}
        return self.prepare(value).float()

    def null(self, batch_size: int, num_frames: int | None = None) -> torch.Tensor:
        """Zeros [B, 512]: a dropped style (what training drops to)."""
        return torch.zeros(batch_size, self.dim, device=self._device(), dtype=self._dtype())

    def negative(self, batch_size: int, num_frames: int | None = None) -> torch.Tensor:
        """[B, 512] style for the unconditional branch of guidance (zeros when `negative` is None)."""
        if self.negative_source is None:
            return self.null(batch_size, num_frames)
        if self._negative is None:
            # Prepared once (deterministic); forward runs every call because it may be learned.
            self._negative = self.prepare(self.negative_source)
        prepared = self._negative.to(self._device())
        out = self.forward(prepared[None].expand(batch_size, *prepared.shape))
        return out.to(self._dtype())

    def _device(self) -> torch.device:
        for tensor in self.parameters():
            return tensor.device
        return torch.device("cpu")

    def _dtype(self) -> torch.dtype:
        for tensor in self.parameters():
            return tensor.dtype if tensor.is_floating_point() else torch.float32
        return torch.float32
