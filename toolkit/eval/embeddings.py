"""Song embeddings for the distribution distances and style adherence.

`--embedding` choices:
- `descriptors` (default): weight-free evaluation descriptors (`toolkit.eval.descriptors`) that share no
  feature with the `style_features` conditioner, standardised with the reference set. Audio only.
- `features`: the `style_features` conditioner's own space (librosa features of the middle clip -> a
  deterministic 512-d unit vector). When the model was conditioned with it, a figure in this space is
  self-consistency (does the song reproduce its conditioning vector?), not an independent judgement.
- `mulan:PATH`: the `style_mulan` conditioner with local MuQ-MuLan weights in PATH (audio and text); the
  conditioner of the published DiffRhythm, so self-consistency for those models.
- `clap:PATH`: a CLAP model (transformers `ClapModel`) from a local folder PATH (audio and text).

Every embedder returns float64 numpy vectors, so the distances do not care where they came from; an
embedder whose raw numbers need a common scale maps them into its comparison space with `space()`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..optional import require


class EmbeddingError(ValueError):
    """An --embedding choice that cannot be used."""


class Embedder:
    """Embeds audio files and (when the model can) text prompts into one space."""

    name = "embedder"
    supports_text = False
    # What the embedding is computed from (None: a learned model, not a list of features).
    features: tuple[str, ...] | None = None
    # Weights of a learned model: figures in its space come from a model trained on other data.
    learned = False

    def embed_audio(self, path: str | os.PathLike, seconds: float | None = None) -> np.ndarray:
        """The embedding of an audio file; with `seconds`, of its first `seconds` only (the window a
        generated song covers, so references are described on the same length)."""
        raise NotImplementedError

    def embed_text(self, text: str) -> np.ndarray | None:
        return None

    def space(self, references: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """The map from raw embeddings into the space cosines and distances are taken in, fitted on the
        reference set's raw embeddings [m, d]. The identity here."""
        return lambda x: np.asarray(x, dtype=np.float64)

    def embed_style(self, style: Any) -> np.ndarray | None:
        """A style prompt as the generation manifest records it ({"audio": path|None, "text": str|None},
        a path or a text) -> embedding, or None when there is nothing this embedder can embed.
        Audio wins over text when both are given (the generator conditions on the audio then).
        """
        if style is None:
            return None
        if isinstance(style, dict):
            audio, text = style.get("audio"), style.get("text")
        elif isinstance(style, (str, os.PathLike)) and Path(style).is_file():
            audio, text = style, None
        else:
            audio, text = None, str(style)
        if audio:
            return self.embed_audio(audio)
        if text and self.supports_text:
            return self.embed_text(text)
        return None


class DescriptorEmbedder(Embedder):
    """The weight-free evaluation descriptors (toolkit.eval.descriptors), standardised on the references."""

    name = "descriptors"

    def __init__(self, max_seconds: float | None = None):
        from . import descriptors

        self.features = descriptors.FEATURES
        self.max_seconds = max_seconds or descriptors.DEFAULT_MAX_SECONDS

    def embed_audio(self, path: str | os.PathLike, seconds: float | None = None) -> np.ndarray:
        from .descriptors import ANALYSIS_RATE, describe, load_window

        return describe(load_window(path, ANALYSIS_RATE, seconds, self.max_seconds), ANALYSIS_RATE)

    def space(self, references: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        from .descriptors import standardiser

        return standardiser(references)


class ConditionerEmbedder(Embedder):
    """Uses a registered style conditioner's deterministic `prepare` (features, MuQ-MuLan)."""

    def __init__(self, node: Any, name: str, supports_text: bool, learned: bool = False):
        from ..registry import CONDITIONERS

        self.conditioner = CONDITIONERS.build(node)
        self.name = name
        self.supports_text = supports_text
        self.learned = learned
        self.features = getattr(type(self.conditioner), "FEATURES", None)

    def _embed(self, value: Any) -> np.ndarray:
        import torch

        with torch.no_grad():
            try:
                return self.conditioner.prepare(value).detach().double().cpu().numpy().ravel()
            except ValueError as err:  # the conditioner refuses this input (too short, silent, ...)
                raise EmbeddingError(str(err)) from err

    def embed_audio(self, path: str | os.PathLike, seconds: float | None = None) -> np.ndarray:
        if seconds is None:
            return self._embed({"audio": os.fspath(path)})
        from ..audio import load_audio

        wav, sr = load_audio(path, duration=float(seconds))
        return self._embed((wav, int(sr)))  # the conditioner takes its clip from this window

    def embed_text(self, text: str) -> np.ndarray | None:
        return self._embed({"text": text}) if self.supports_text else None


class ClapEmbedder(Embedder):
    """CLAP audio/text embeddings from a local transformers checkpoint folder (no download)."""

    supports_text = True

    def __init__(self, path: str | os.PathLike, clip_seconds: float = 10.0):
        transformers = require("transformers", "muq", "CLAP embeddings")
        path = Path(path)
        if not (path / "config.json").is_file():
            raise EmbeddingError(f"clap:{path}: no config.json there; give the folder of a transformers CLAP "
                                 "checkpoint (e.g. laion/clap-htsat-unfused saved with save_pretrained)")
        self.model = transformers.ClapModel.from_pretrained(str(path), local_files_only=True).eval()
        self.processor = transformers.ClapProcessor.from_pretrained(str(path), local_files_only=True)
        self.sample_rate = int(self.processor.feature_extractor.sampling_rate)
        self.clip_seconds = clip_seconds
        self.name = f"clap:{path}"
        self.learned = True

    def embed_audio(self, path: str | os.PathLike, seconds: float | None = None) -> np.ndarray:
        import torch

        from ..audio import audio_duration, load_audio, middle_start

        duration = audio_duration(path) if seconds is None else min(audio_duration(path), float(seconds))
        wav, _ = load_audio(path, sample_rate=self.sample_rate, channels=1,
                            offset=middle_start(duration, self.clip_seconds), duration=min(duration, self.clip_seconds))
        inputs = self.processor(audio=wav[0].numpy(), sampling_rate=self.sample_rate, return_tensors="pt")
        with torch.no_grad():
            emb = self.model.get_audio_features(**inputs)
        return _unit(emb[0].double().numpy())

    def embed_text(self, text: str) -> np.ndarray:
        import torch

        inputs = self.processor(text=[text], return_tensors="pt", padding=True)
        with torch.no_grad():
            emb = self.model.get_text_features(**inputs)
        return _unit(emb[0].double().numpy())


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x)
    return x / norm if norm > 0 else x


# The weight-free space that shares no feature with the style_features conditioner, so it judges rather than echoes.
DEFAULT_EMBEDDING = "descriptors"


def build_embedder(spec: str) -> Embedder:
    """`descriptors`, `features`, `mulan:PATH` or `clap:PATH` -> an Embedder."""
    kind, _, path = spec.partition(":")
    if kind == "descriptors":
        return DescriptorEmbedder()
    if kind == "features":
        return ConditionerEmbedder("style_features", "features", supports_text=False)
    if kind in ("mulan", "clap") and not path:
        raise EmbeddingError(f"--embedding {kind} needs the local weights folder: --embedding {kind}:PATH")
    if kind == "mulan":
        return ConditionerEmbedder({"type": "style_mulan", "path": path}, f"mulan:{path}", supports_text=True,
                                   learned=True)
    if kind == "clap":
        return ClapEmbedder(path)
    raise EmbeddingError(f"unknown --embedding '{spec}'; choose descriptors, features, mulan:PATH or clap:PATH")
