"""MuQ-MuLan style embeddings (upstream DiffRhythm's style prompt), loaded from local folders only.

Upstream calls `MuQMuLan.from_pretrained("OpenMuQ/MuQ-MuLan-large")`, which downloads three hub repos:
the MuLan checkpoint itself, and, while muq builds the model, the audio tower `OpenMuQ/MuQ-large-msd-iter`
and the text tower `xlm-roberta-base` (both named in the MuLan config.json). Here nothing downloads:
muq takes the tower names from its config (`audio_model.name`, `text_model.name`) and hands them to
`MuQ.from_pretrained` / `XLMRobertaModel.from_pretrained` / `AutoTokenizer.from_pretrained`, which all
accept a local folder. So we read the MuLan config.json, point those two fields at local folders, build
`MuQMuLan(config)` through muq's public constructor and load the MuLan weights strictly ourselves
(muq's hub-mixin local-folder branch only looks for model.safetensors, while the published checkpoint is
pytorch_model.bin). muq picks the tower type from the *name* ('muq' in it -> MuQ, 'xlm-roberta' in it
-> XLM-R), so the folders must keep those words in their paths.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from ..optional import require
from ..registry import CONDITIONERS
from .style_common import (
    STYLE_DIM,
    StyleConditioner,
    StyleError,
    default_negative_style_path,
    embedding_from,
    load_middle_clip,
    loop_to_length,
    middle_clip_of,
    parse_style_value,
    unit,
)

SHIPPED_NEGATIVE = "shipped"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "sentencepiece.bpe.model")
AUDIO_TOWER_DIR = "MuQ-large-msd-iter"
TEXT_TOWER_DIR = "xlm-roberta-base"
# Non-persistent buffers that older transformers versions wrote into checkpoints; newer ones do not keep them.
IGNORABLE_UNEXPECTED_SUFFIXES = ("embeddings.position_ids",)

WHERE_PUBLISHED = (
    "MuQ-MuLan is published on the Hugging Face hub; with network access fetch it with\n"
    "  huggingface-cli download OpenMuQ/MuQ-MuLan-large --local-dir DIR\n"
    f"  huggingface-cli download OpenMuQ/MuQ-large-msd-iter --local-dir DIR/{AUDIO_TOWER_DIR}\n"
    f"  huggingface-cli download FacebookAI/xlm-roberta-base --local-dir DIR/{TEXT_TOWER_DIR}\n"
    "and set conditions.style.conditioner.path=DIR. The MuQ and MuQ-MuLan weights are licensed CC-BY-NC 4.0 "
    "(non-commercial; muq code "
    "MIT); xlm-roberta-base is MIT. See docs/style.md.")


class MuLanLoadError(FileNotFoundError):
    """The local MuQ-MuLan folders are missing, incomplete or do not match the model."""


@CONDITIONERS.register("style_mulan")
class MuLanStyle(StyleConditioner):
    """MuQ-MuLan-large style embedding (512-d, unit norm) of a 10 s middle clip or a text prompt; local weights only.

    path: folder with the MuQ-MuLan-large files (config.json + pytorch_model.bin or model.safetensors).
    audio_tower / text_tower: folders of MuQ-large-msd-iter and xlm-roberta-base (default: the
      sub-folders `MuQ-large-msd-iter` and `xlm-roberta-base` of `path`).
    negative: the guidance negative, "shipped" (upstream's negative style, toolkit/assets/negative_style.npy),
      any value `prepare` accepts (an .npy/.pt embedding, audio, a text prompt), or None for zeros.
    short_audio: clips shorter than the model's 10 s are looped end to start to 10 s ("loop") or embedded
      whole ("whole"); see docs/style.md. min_seconds: shorter audio is an error.
    The model loads on first use (or `load()`), so a recipe that only reads cached embeddings needs no weights.
    The MuLan model is kept outside this module's parameters: it never enters a recipe checkpoint.
    """

    loads_weights = True

    def __init__(self, path: str | os.PathLike | None = None, *, audio_tower: str | os.PathLike | None = None,
                 text_tower: str | os.PathLike | None = None, negative: Any = SHIPPED_NEGATIVE,
                 short_audio: str = "loop", min_seconds: float = 1.0, device: str = "cpu"):
        if negative == SHIPPED_NEGATIVE:
            negative = str(default_negative_style_path())
        super().__init__(negative=negative)
        if short_audio not in ("loop", "whole"):
            raise ValueError(f"style_mulan: short_audio must be 'loop' or 'whole', not {short_audio!r}")
        self.path = None if path is None else Path(path)
        self.audio_tower = None if audio_tower is None else Path(audio_tower)
        self.text_tower = None if text_tower is None else Path(text_tower)
        self.short_audio = short_audio
        self.min_seconds = float(min_seconds)
        self.device = torch.device(device)
        self.__dict__["_mulan"] = None  # plain attribute: not a submodule, not in state_dict

    # ------------------------------------------------------------------------------------------------
    # loading

    def load(self):
        """Build MuQ-MuLan from the local folders (once) and return it."""
        if self._mulan is None:
            self.__dict__["_mulan"] = self._build()
        return self._mulan

    def _folders(self) -> tuple[Path, Path, Path]:
        if self.path is None:
            raise MuLanLoadError(
                "style_mulan needs the folder of the MuQ-MuLan-large weights: set "
                "conditions.style.conditioner.path=DIR "
                "(or use conditions.style.conditioner=style_features, which needs no weights).\n" + WHERE_PUBLISHED)
        root = self.path
        audio = self.audio_tower or root / AUDIO_TOWER_DIR
        text = self.text_tower or root / TEXT_TOWER_DIR
        problems = []
        problems += _missing(root, "MuQ-MuLan-large (OpenMuQ/MuQ-MuLan-large)", ["config.json"], [WEIGHT_FILES])
        problems += _missing(audio, "audio tower (OpenMuQ/MuQ-large-msd-iter)", ["config.json", "model.safetensors"],
                             [])
        problems += _missing(text, "text tower (FacebookAI/xlm-roberta-base)", ["config.json"],
                             [WEIGHT_FILES, TOKENIZER_FILES])
        if problems:
            raise MuLanLoadError("style_mulan cannot load MuQ-MuLan from local folders:\n  " + "\n  ".join(problems)
                                 + "\n" + WHERE_PUBLISHED)
        # muq decides the tower type from the name it is given (see the module docstring).
        if "muq" not in str(audio).lower():
            raise MuLanLoadError(f"the audio tower folder {audio} must have 'muq' in its path (muq loads a MuQ "
                                 f"tower only for such names); rename it, e.g. to .../{AUDIO_TOWER_DIR}")
        if "xlm-roberta" not in str(text):
            raise MuLanLoadError(f"the text tower folder {text} must have 'xlm-roberta' in its path (muq accepts "
                                 f"only such names); rename it, e.g. to .../{TEXT_TOWER_DIR}")
        return root, audio, text

    def _build(self):
        root, audio, text = self._folders()
        muq = require("muq", "muq", "the style_mulan conditioner")
        config = json.loads((root / "config.json").read_text(encoding="utf-8"))
        config = config.get("config", config)  # hub-mixin configs may nest everything under "config"
        sections = ("mulan", "audio_model", "text_model", "audio_transformer", "text_transformer")
        absent = [s for s in sections if s not in config]
        if absent:
            raise MuLanLoadError(f"{root / 'config.json'} is not a MuQ-MuLan config: it lacks {', '.join(absent)}")
        config = {s: dict(config[s]) for s in sections}
        config["audio_model"]["name"] = str(audio)
        config["text_model"]["name"] = str(text)
        model = muq.MuQMuLan(config)  # the towers load from the local folders, then MuLan's weights replace them
        _load_strict(model, _read_weights(root), root)
        model.eval().requires_grad_(False)
        return model.to(self.device)

    # ------------------------------------------------------------------------------------------------
    # embedding

    def prepare(self, value: Any, *, num_frames: int | None = None) -> torch.Tensor:
        """An audio path, (wav, sr), a text prompt or a stored embedding -> float32 [512] (CPU)."""
        kind, payload = parse_style_value(value)
        if kind == "embedding":
            return embedding_from(payload, STYLE_DIM)
        if kind == "text":
            return self.embed_text(payload)
        model = self.load()
        sr, clip = int(model.sr), float(model.clip_secs)
        if kind == "audio":
            wav, _ = load_middle_clip(payload, sr, clip, self.min_seconds)
        else:
            wav = middle_clip_of(payload[0], payload[1], sr, clip, self.min_seconds)
        return self.embed_clip(wav)

    def embed_clip(self, wav: torch.Tensor) -> torch.Tensor:
        """Mono [N] at the model rate (<= one clip) -> [512]. Short clips follow `short_audio`."""
        model = self.load()
        clip_samples = int(round(model.sr * model.clip_secs))
        if wav.shape[-1] > clip_samples:
            raise StyleError(f"embed_clip takes at most one {model.clip_secs:g} s clip; use prepare() for longer audio")
        if self.short_audio == "loop":
            wav = loop_to_length(wav, clip_samples)
        with torch.no_grad():
            out = model(wavs=wav.float()[None].to(self.device))
        return unit(out[0].float().cpu()).clone()

    def embed_text(self, text: str) -> torch.Tensor:
        """A text prompt (e.g. "folk, acoustic guitar, harmonica, touching.") -> [512]."""
        if not isinstance(text, str) or not text.strip():
            raise StyleError("the style text prompt is empty; give a description such as 'pop, piano, happy' "
                             "(or drop the style)")
        model = self.load()
        tower = model.mulan_module.text
        limit = tower.model.config.max_position_embeddings - 2  # XLM-R positions start after the padding index
        n_tokens = len(tower.tokenizer(text)["input_ids"])
        if n_tokens > limit:
            raise StyleError(f"the style text prompt is {n_tokens} tokens long; the MuLan text tower takes at most "
                             f"{limit}")
        with torch.no_grad():
            out = model(texts=[text])
        return unit(out[0].float().cpu()).clone()

    def forward(self, prepared: torch.Tensor) -> torch.Tensor:
        if prepared.dim() != 2 or prepared.shape[-1] != STYLE_DIM:
            raise StyleError(f"style_mulan.forward takes prepared styles [B, {STYLE_DIM}], not {list(prepared.shape)}")
        return prepared

    def extra_repr(self) -> str:
        return f"path={self.path}, short_audio={self.short_audio}"


def _missing(folder: Path, what: str, required: list[str], one_of: list[tuple[str, ...]]) -> list[str]:
    if not folder.is_dir():
        files = ", ".join(required + [" or ".join(group) for group in one_of])
        return [f"{what}: folder {folder} does not exist (needs {files})"]
    out = [f"{what}: {folder / name} is missing" for name in required if not (folder / name).is_file()]
    for group in one_of:
        if not any((folder / name).is_file() for name in group):
            out.append(f"{what}: {folder} has none of {', '.join(group)}")
    return out


def _read_weights(root: Path) -> dict[str, torch.Tensor]:
    if (root / "model.safetensors").is_file():
        from safetensors.torch import load_file

        return load_file(str(root / "model.safetensors"), device="cpu")
    return torch.load(root / "pytorch_model.bin", map_location="cpu", weights_only=True)


def _load_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], root: Path) -> None:
    """Load every key or fail listing the missing, unexpected and wrong-shape ones."""
    from ..weights import WeightsMismatchError, load_strict

    state = {k: v for k, v in state.items() if not k.endswith(IGNORABLE_UNEXPECTED_SUFFIXES)}
    try:
        load_strict(model, state, source=f"the MuQ-MuLan weights in {root}",
                    hint="are the tower folders the ones the checkpoint was trained with?")
    except WeightsMismatchError as err:
        raise MuLanLoadError(str(err)) from None
