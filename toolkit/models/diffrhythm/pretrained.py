"""The published DiffRhythm model from a folder of its files as downloaded: find them, size them, configure.

A `--pretrained DIR` folder holds (docs/generate.md):
  * a DiT `cfm_model.pt`  (ASLP-lab/DiffRhythm-1_2, ASLP-lab/DiffRhythm-1_2-full, or the v1.0 repos);
    several may sit in sub-folders (e.g. DIR/DiffRhythm-1_2/ and DIR/DiffRhythm-1_2-full/);
  * the TorchScript VAE `vae_model.pt`  (ASLP-lab/DiffRhythm-vae);
  * a MuQ-MuLan folder  (OpenMuQ/MuQ-MuLan-large: config.json + weights, with its towers
    MuQ-large-msd-iter/ and xlm-roberta-base/ inside or anywhere under DIR).
Files are searched for under DIR at any depth, so a Hugging Face cache folder (upstream's
`./pretrained`, `models--ASLP-lab--DiffRhythm-1_2/snapshots/<rev>/cfm_model.pt`) works as it is.

Sizes are read off the files, never assumed: the DiT's width, depth, MLP ratio, lyric vocabulary,
ConvNeXt layers and latent size from its state-dict shapes, the VAE's latent size and hop from the
tensor shapes stored in the TorchScript archive (read without loading the weights). The only thing
weights cannot tell is base (2048 frames, 95 s) vs DiffRhythm v1.0 full (6144 frames, 285 s): their
keys are identical, so `variant` must say it (v1.2 full is recognised by its duration embedding).
Attention heads are not stored either: 32, as upstream hard-wires (override: backbone.num_heads=N).
"""

from __future__ import annotations

import io
import json
import pickle
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..requests import RequestError
from .checkpoints import DURATION_PREFIX, VARIANTS, read_state_dict

DIT_FILE = "cfm_model.pt"
VAE_FILE = "vae_model.pt"
BASE_MAX_FRAMES = VARIANTS["base"]["max_frames"]
# User-facing variant names -> checkpoints.py variants. "full" is DiffRhythm v1.0 full (its keys equal
# base's); v1.2 full carries a duration embedding and is recognised by it.
VARIANT_NAMES = {"base": "base", "full": "full-v1.0", "full-v1.0": "full-v1.0", "v1.2-full": "full"}
HUB = {
    "dit": "ASLP-lab/DiffRhythm-1_2 (base, up to 95 s) or ASLP-lab/DiffRhythm-1_2-full (up to 285 s)",
    "vae": "ASLP-lab/DiffRhythm-vae",
    "mulan": "OpenMuQ/MuQ-MuLan-large (with its towers OpenMuQ/MuQ-large-msd-iter and FacebookAI/xlm-roberta-base)",
}
# Published defaults of upstream infer.py: 32-point grid = 31 Euler updates, guidance 4.
SAMPLER = {"type": "flow", "steps": 31, "cfg_strength": 4.0}
RELEASED_VAE = {"sample_rate": 44100, "channels": 2, "latent_dim": 64, "base_channels": 128,
                "c_mults": [1, 2, 4, 8, 16], "strides": [2, 4, 4, 8, 8]}


class PretrainedError(RequestError):
    """A --pretrained folder that lacks files or holds files of another model."""


@dataclass
class PretrainedFiles:
    root: Path
    dit: Path
    vae: Path
    mulan: Path
    audio_tower: Path
    text_tower: Path


# --------------------------------------------------------------------------------------------- finding files

def _find(root: Path, name: str) -> list[Path]:
    return sorted(p for p in root.rglob(name) if p.is_file())


def _mulan_folders(root: Path) -> list[Path]:
    found = []
    for cfg in sorted(root.rglob("config.json")):
        try:
            data = json.loads(cfg.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        data = data.get("config", data) if isinstance(data, dict) else {}
        if isinstance(data, dict) and "mulan" in data and "audio_model" in data:
            found.append(cfg.parent)
    return found


def _tower(mulan: Path, root: Path, default: str, pattern: str) -> Path | None:
    if (mulan / default / "config.json").is_file():
        return mulan / default
    for cfg in sorted(root.rglob("config.json")):
        if re.search(pattern, str(cfg.parent), re.I) and cfg.parent != mulan:
            return cfg.parent
    return None


def _is_full_path(path: Path, root: Path) -> bool:
    return "full" in str(path.relative_to(root)).lower()


def pick_dit(candidates: list[Path], root: Path, variant: str | None, seconds: float | None) -> Path:
    """One cfm_model.pt among several: by --variant, else by length (over 95 s -> a "full" folder)."""
    if len(candidates) == 1:
        return candidates[0]
    if variant is not None:
        want_full = variant != "base"
        why = f"--variant {variant}"
    else:
        want_full = seconds is not None and seconds > BASE_MAX_FRAMES * 2048 / 44100
        why = f"a {seconds:g} s song" if seconds is not None else "the default length"
    chosen = [p for p in candidates if _is_full_path(p, root) == want_full]
    if len(chosen) != 1:
        listing = ", ".join(str(p) for p in candidates)
        raise PretrainedError(f"{root} holds several DiT checkpoints ({listing}) and {why} does not pick one: "
                              "keep one per folder named like the hub repo (DiffRhythm-1_2, DiffRhythm-1_2-full)")
    return chosen[0]


def locate(root: str | Path, variant: str | None = None, seconds: float | None = None) -> PretrainedFiles:
    """The published files under `root`; a missing one is an error naming it and where it is published."""
    root = Path(root)
    if not root.is_dir():
        raise PretrainedError(f"--pretrained {root} is not a folder; download the published files into one "
                              f"(see docs/generate.md)")
    dits, vaes, mulans = _find(root, DIT_FILE), _find(root, VAE_FILE), _mulan_folders(root)
    missing = []
    if not dits:
        missing.append(f"{DIT_FILE} (the DiT; Hugging Face hub {HUB['dit']})")
    if not vaes:
        missing.append(f"{VAE_FILE} (the VAE; Hugging Face hub {HUB['vae']})")
    audio = text = None
    if not mulans:
        missing.append(f"a MuQ-MuLan-large folder with config.json and weights (the style model; Hugging Face hub "
                       f"{HUB['mulan']})")
    else:
        mulan = mulans[0]
        if not any((mulan / w).is_file() for w in ("pytorch_model.bin", "model.safetensors")):
            missing.append(f"the MuQ-MuLan weights pytorch_model.bin in {mulan} (Hugging Face hub {HUB['mulan']})")
        audio = _tower(mulan, root, "MuQ-large-msd-iter", r"muq-large-msd-iter")
        text = _tower(mulan, root, "xlm-roberta-base", r"xlm-roberta-base")
        if audio is None:
            missing.append(f"the MuQ audio tower folder MuQ-large-msd-iter/ in {mulan} (Hugging Face hub "
                           "OpenMuQ/MuQ-large-msd-iter)")
        if text is None:
            missing.append(f"the text tower folder xlm-roberta-base/ in {mulan} (Hugging Face hub "
                           "FacebookAI/xlm-roberta-base)")
    if missing:
        raise PretrainedError(f"--pretrained {root} is missing: " + "; ".join(missing)
                              + ". Download them with huggingface-cli as docs/generate.md shows")
    if len(vaes) > 1:
        raise PretrainedError(f"{root} holds several VAEs ({', '.join(map(str, vaes))}); keep one")
    dit = pick_dit(dits, root, variant, seconds)
    return PretrainedFiles(root, dit, vaes[0], mulans[0], audio, text)


# --------------------------------------------------------------------------------------------- sizes

def dit_size(state: Mapping[str, torch.Tensor], source: str = "the DiT") -> dict[str, int]:
    """DiffRhythmDiT constructor sizes read off a (prefix-stripped) state dict."""
    needed = ("input_embed.proj.weight", "proj_out.weight", "text_embed.text_embed.weight",
              "transformer_blocks.0.mlp.gate_proj.weight")
    absent = [k for k in needed if k not in state]
    if absent:
        shown = ", ".join(sorted(state)[:4])
        raise PretrainedError(f"{source} is not a DiffRhythm DiT checkpoint: it lacks {', '.join(absent)} "
                              f"(its keys start {shown}, ...); download cfm_model.pt from {HUB['dit']}")
    dim = state["input_embed.proj.weight"].shape[0]
    latent_dim = state["proj_out.weight"].shape[0]
    vocab, text_dim = state["text_embed.text_embed.weight"].shape
    depth = len({m.group(1) for k in state if (m := re.match(r"transformer_blocks\.(\d+)\.", k))})
    conv = len({m.group(1) for k in state if (m := re.match(r"text_embed\.text_blocks\.(\d+)\.", k))})
    cond_dim = state["time_embed.time_mlp.2.weight"].shape[0] if "time_embed.time_mlp.2.weight" in state else 512
    style_dim = state["input_embed.proj.weight"].shape[1] - 2 * latent_dim - text_dim - cond_dim
    return {"dim": int(dim), "depth": depth, "ff_mult": int(state["transformer_blocks.0.mlp.gate_proj.weight"].shape[0]
                                                              // dim),
            "text_dim": int(text_dim), "conv_layers": conv, "text_num_embeds": int(vocab) - 1,
            "style_dim": int(style_dim), "latent_dim": int(latent_dim)}


def resolve_variant(state: Mapping[str, torch.Tensor], variant: str | None, source: str) -> str:
    """The checkpoints.py variant of a DiT file; `variant` is the user's base | full | v1.2-full."""
    if variant is not None and variant not in VARIANT_NAMES:
        raise PretrainedError(f"unknown --variant {variant}; choose base, full (DiffRhythm v1.0 full) or v1.2-full")
    if any(k.startswith(DURATION_PREFIX) for k in state):
        if variant == "base":
            raise PretrainedError(f"{source} is a DiffRhythm v1.2 full model (it has the song-duration embedding), "
                                  "not base: drop --variant or use --variant v1.2-full")
        return "full"
    if variant is None:
        raise PretrainedError(f"{source} is either DiffRhythm base (2048 frames, 95 s) or v1.0 full (6144 frames, "
                              "285 s): their weights look the same, so say which with --variant base or --variant full")
    if variant == "v1.2-full":
        raise PretrainedError(f"{source} has no song-duration embedding, so it is not DiffRhythm v1.2 full; "
                              "use --variant base or --variant full (v1.0 full)")
    return VARIANT_NAMES[variant]


class _Stub:
    def __init__(self, *args: Any, **kwargs: Any):
        pass

    def __setstate__(self, state: Any) -> None:
        self.__dict__["state"] = state


class _ShapeUnpickler(pickle.Unpickler):
    """Reads a TorchScript archive's data.pkl into stubs; tensors become meta tensors of their shape."""

    def find_class(self, module: str, name: str):
        if module == "torch._utils" and name.startswith("_rebuild_tensor"):
            return lambda storage, offset, size, *rest: torch.empty(tuple(size), device="meta")
        if module == "torch._utils" and name == "_rebuild_parameter":
            return lambda data, *rest: data
        if module == "collections" and name == "OrderedDict":
            import collections

            return collections.OrderedDict
        return type(name, (_Stub,), {})

    def persistent_load(self, pid: Any) -> None:
        return None


def scripted_shapes(path: str | Path) -> dict[str, torch.Tensor]:
    """{key: meta tensor} of a TorchScript file's parameters, read from the archive without loading weights."""
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1)
        root = _ShapeUnpickler(io.BytesIO(archive.read(name))).load()
    out: dict[str, torch.Tensor] = {}

    def walk(obj: Any, prefix: str) -> None:
        state = getattr(obj, "state", None)
        if isinstance(state, dict):
            for key, value in state.items():
                if isinstance(value, torch.Tensor):
                    out[prefix + key] = value
                elif isinstance(value, _Stub):
                    walk(value, f"{prefix}{key}.")

    walk(root, "")
    return out


def vae_geometry(path: str | Path) -> dict[str, Any]:
    """OobleckCodec geometry kwargs of a TorchScript VAE; the released geometry if the file cannot tell."""
    from ...codecs.oobleck_model import infer_oobleck_config

    try:
        found = infer_oobleck_config(scripted_shapes(path))
    except zipfile.BadZipFile as err:
        raise PretrainedError(f"{path} is not a TorchScript VAE ({err}); download vae_model.pt from "
                              f"{HUB['vae']}") from err
    except (KeyError, StopIteration, pickle.UnpicklingError, AttributeError, TypeError, ValueError, RuntimeError):
        return dict(RELEASED_VAE)
    return {"sample_rate": 44100, "channels": found["channels"], "latent_dim": found["latent_dim"],
            "base_channels": found["base_channels"], "c_mults": list(found["c_mults"]),
            "strides": list(found["strides"])}


# --------------------------------------------------------------------------------------------- the config

def pretrained_config(root: str | Path, variant: str | None = None, seconds: float | None = None,
                      chunked: bool = True) -> tuple[dict[str, Any], PretrainedFiles, str]:
    """(config of the published model, its files, the checkpoints.py variant); nothing heavy is loaded."""
    files = locate(root, variant, seconds)
    state = read_state_dict(files.dit)  # memory-mapped: shapes only are touched
    dit_variant = resolve_variant(state, variant, str(files.dit))
    size = dit_size(state, str(files.dit))
    vae = vae_geometry(files.vae)
    if size["latent_dim"] != vae["latent_dim"]:
        raise PretrainedError(f"the DiT {files.dit} works on {size['latent_dim']}-d latents but the VAE {files.vae} "
                              f"makes {vae['latent_dim']}-d ones: they are not from the same model")
    size.pop("latent_dim")  # the recipe hands the codec's latent size to the backbone
    style = {"type": "style_mulan", "path": str(files.mulan), "audio_tower": str(files.audio_tower),
             "text_tower": str(files.text_tower)}
    cfg = {
        "recipe": "diffrhythm",
        "max_frames": VARIANTS[dit_variant]["max_frames"],
        # the TorchScript file converted into the native module: the fast decode (and bf16) run on it, parity-
        # tested against the file run as it is (codec.scripted_path=... runs it unconverted)
        "codec": {"type": "oobleck", "weights": str(files.vae), "chunked": bool(chunked), **vae},
        "backbone": {"type": "dit_diffrhythm", **size, "num_heads": 32,
                     "duration_embed": VARIANTS[dit_variant]["duration_embed"]},
        "conditions": published_conditions(style, VARIANTS[dit_variant]["duration_embed"]),
        "sampler": dict(SAMPLER),
        "generate": {"pretrained": str(files.root), "dit": str(files.dit), "variant": dit_variant},
    }
    return cfg, files, dit_variant


def published_conditions(style: Mapping[str, Any], duration: bool) -> dict[str, Any]:
    """The conditions of the published models: lyrics, MuQ-MuLan style (guidance against upstream's negative
    style embedding), start time, and the song duration for v1.2 full."""
    conditions = {
        "lyrics": {"conditioner": {"type": "lyrics_lrc"}, "drop": "lyrics"},
        "style": {"conditioner": dict(style), "drop": "style", "uncond": "negative"},
        "start_time": {"conditioner": {"type": "scalar_time", "kind": "start_time"}},
    }
    if duration:
        conditions["duration"] = {"conditioner": {"type": "scalar_time", "kind": "duration"}}
    return conditions


def load_dit_weights(recipe: torch.nn.Module, path: str | Path) -> None:
    """Copy a published DiT's weights into `recipe.transformer`, strictly (fp16 files are cast on the way)."""
    from .checkpoints import load_state_dict_strict

    state = read_state_dict(path)
    load_state_dict_strict(recipe.transformer, state, source=str(path))


def _tensors(module: torch.nn.Module):
    yield from module.parameters()
    yield from module.buffers()


def build_published_recipe(cfg: Mapping[str, Any], dit_path: str | Path):
    """The recipe with the published DiT loaded, without first initialising 1.1 B random weights.

    The recipe is built under the meta device (the lazily loaded MuQ-MuLan stays real; the VAE, which
    loads its weights, is rebuilt for real), the DiT is materialised empty and filled from the file. If anything
    else ended up on
    the meta device, the recipe is built the ordinary way instead.
    """
    from ..factory import build_recipe

    with torch.device("meta"):
        recipe = build_recipe(cfg)
    if any(t.is_meta for t in _tensors(recipe.codec)):  # a codec that loads its weights is built for real
        from ...registry import CODECS

        recipe.set_codec(CODECS.build(cfg["codec"]))
    transformer = recipe.transformer
    rest = [t for name, m in recipe.named_children() if m is not transformer for t in _tensors(m)]
    if any(t.is_meta for t in rest):
        recipe = build_recipe(cfg)
    else:
        recipe.transformer = transformer.to_empty(device="cpu")
        recipe.transformer.reset_buffers()
    load_dit_weights(recipe, dit_path)
    return recipe
