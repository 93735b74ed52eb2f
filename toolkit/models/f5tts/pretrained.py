"""The published F5-TTS model from a folder of its files: find them, configure, load strictly.

A `--pretrained DIR` folder holds (docs/f5tts.md): an F5-TTS checkpoint (`model_1250000.safetensors` of
F5TTS_v1_Base, or a `.pt`), its `vocab.txt`, and a Vocos folder (config.yaml + pytorch_model.bin or
model.safetensors). Files are found at any depth. The config is F5's preset (presets/f5tts.yaml) with the
released backbone and these files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..requests import RequestError
from .checkpoints import RELEASED_CONFIG

WEIGHT_SUFFIXES = (".safetensors", ".pt")
VOCOS_WEIGHTS = ("pytorch_model.bin", "model.safetensors")


class PretrainedError(RequestError):
    """A --pretrained folder that lacks F5-TTS files."""


def find_files(folder: str | Path) -> dict[str, Path]:
    """The published files in a folder (any depth): the DiT checkpoint, vocab.txt, the Vocos folder."""
    root = Path(folder)
    if not root.is_dir():
        raise PretrainedError(f"--pretrained {root}: no such folder")
    vocos = [p.parent for p in root.rglob("config.yaml") if any((p.parent / w).is_file() for w in VOCOS_WEIGHTS)]
    ckpts = sorted(p for p in root.rglob("*") if p.suffix in WEIGHT_SUFFIXES
                   and not any(v in p.parents for v in vocos))
    vocabs = sorted(root.rglob("vocab.txt"))
    missing = [name for name, found in (("an F5-TTS checkpoint (*.safetensors or *.pt)", ckpts),
                                        ("vocab.txt", vocabs),
                                        ("a Vocos folder (config.yaml + pytorch_model.bin)", vocos)) if not found]
    if missing:
        raise PretrainedError(f"--pretrained {root} lacks {', '.join(missing)}: see docs/f5tts.md (offline layout)")
    return {"checkpoint": ckpts[-1], "vocab": vocabs[0], "vocos": vocos[0]}


def looks_published(folder: Path) -> bool:
    return any(folder.rglob("vocab.txt")) and any(p.suffix in WEIGHT_SUFFIXES for p in folder.rglob("*"))


def published_config(files: dict[str, Path]) -> dict[str, Any]:
    """F5's preset with the released backbone, the Vocos folder and the vocabulary."""
    from ...config import load_preset, to_plain

    cfg = to_plain(load_preset("models/f5tts/presets/f5tts.yaml"))
    cfg["max_frames"] = 4096
    cfg["codec"].update({"vocoder": "vocos", "vocoder_path": str(files["vocos"])})
    cfg["conditions"]["text"]["conditioner"] = {"type": "char_tokens", "vocab": str(files["vocab"]),
                                                "tokenizer": "pinyin"}
    cfg["backbone"] = {"type": "dit_f5", **{k: v for k, v in RELEASED_CONFIG.items()
                                            if k not in ("latent_dim", "text_num_embeds")}}
    return cfg
