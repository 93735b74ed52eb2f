"""The published Stable Audio Open models from a folder of their files: find them, configure, load strictly.

A `--pretrained DIR` folder holds what the hub repos stabilityai/stable-audio-open-1.0 and
stabilityai/stable-audio-open-small publish (docs/checkpoints.md):
  * `model_config.json`: stable-audio-tools' model config (model_type diffusion_cond: the pretransform,
    conditioning and DiT settings, sample rate and sample size);
  * `model.safetensors` (or `model.ckpt` with a `state_dict`): one file holding the DiT (`model.model.*`), the
    learned conditioners (`conditioner.conditioners.<id>.*`) and the Oobleck VAE (`pretransform.model.*`);
  * the T5 text encoder in its own folder (google-t5/t5-base saved with save_pretrained), inside DIR or given
    with `--t5 DIR`: the checkpoint has no T5 weights, as upstream loads them separately.
The config is read off model_config.json, never assumed; the file is split into pretransform (the `oobleck`
codec reads its keys), conditioners and DiT, each loaded strictly through
toolkit.backbones.sao_checkpoint.load_published, which names every key that does not fit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...backbones.sao_checkpoint import RELEASED, load_published
from ..requests import RequestError

CONFIG_FILE = "model_config.json"
WEIGHT_FILES = ("model.safetensors", "model.ckpt")
HUB = ("stabilityai/stable-audio-open-1.0 or stabilityai/stable-audio-open-small (model_config.json and "
       "model.safetensors), plus google-t5/t5-base for the text encoder")
GROUP = "prompt"   # the drop group of what guidance and training dropout drop: the cross-attention conditions
DROP_PROB = 0.1    # upstream's cfg_dropout_prob
TOKEN_INPUTS = {"cross_attention_cond_ids": "cross_attn", "prepend_cond_ids": "prepend"}
NUMBER_DERIVED = {"seconds_start": "start", "seconds_total": "total"}


class PretrainedError(RequestError):
    """A --pretrained folder that lacks files or holds files this recipe cannot run."""


@dataclass
class PublishedFiles:
    root: Path
    config: Path
    checkpoint: Path
    t5: Path | None


def _model_configs(root: Path) -> list[Path]:
    out = []
    for path in sorted(root.rglob(CONFIG_FILE)):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and str(data.get("model_type", "")).startswith("diffusion_cond"):
            out.append(path)
    return out


def _is_t5_folder(folder: Path) -> bool:
    try:
        data = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("model_type") == "t5"


def looks_published(folder: Path) -> bool:
    return any(any((c.parent / w).is_file() for w in WEIGHT_FILES) for c in _model_configs(Path(folder)))


def find_files(folder: str | Path, t5: str | Path | None = None) -> PublishedFiles:
    """The published files under `folder` (any depth); a missing one is an error naming it and its source."""
    root = Path(folder)
    if not root.is_dir():
        raise PretrainedError(f"--pretrained {root} is not a folder; put the published files in one "
                              "(docs/checkpoints.md)")
    configs = _model_configs(root)
    if not configs:
        raise PretrainedError(f"--pretrained {root} holds no Stable Audio {CONFIG_FILE} (model_type diffusion_cond); "
                              f"download {HUB}")
    if len(configs) > 1:
        raise PretrainedError(f"{root} holds several {CONFIG_FILE} files ({', '.join(map(str, configs))}): keep one "
                              "model per folder")
    config = configs[0]
    weights = [config.parent / w for w in WEIGHT_FILES if (config.parent / w).is_file()]
    if not weights:
        raise PretrainedError(f"{config.parent} has {CONFIG_FILE} but no {' or '.join(WEIGHT_FILES)} beside it; "
                              f"download {HUB}")
    if t5 is not None:
        t5_dir = Path(t5)
        if not _is_t5_folder(t5_dir):
            raise PretrainedError(f"--t5 {t5_dir} is not a T5 folder (config.json with model_type t5); save "
                                  "google-t5/t5-base there with save_pretrained")
    else:
        found = sorted({p.parent for p in root.rglob("config.json") if _is_t5_folder(p.parent)})
        t5_dir = found[0] if found else None
    return PublishedFiles(root, config, weights[0], t5_dir)


# --------------------------------------------------------------------------------------------- the config

def _conditioners(model: dict[str, Any], t5: Path | None) -> tuple[dict[str, dict[str, Any]], int]:
    conditioning = model.get("conditioning") or {}
    cond_dim = int(conditioning.get("cond_dim", 768))
    out = {}
    for entry in conditioning.get("configs") or []:
        cid, kind, config = entry["id"], entry.get("type"), dict(entry.get("config") or {})
        if kind == "t5":
            if t5 is None:
                raise PretrainedError(f"the model's '{cid}' condition is a T5 encoder ({config.get('t5_model_name')}) "
                                      "whose weights are not in the checkpoint: give its local folder with --t5 DIR "
                                      "(google-t5/t5-base saved with save_pretrained), or put it inside --pretrained")
            out[cid] = {"type": "t5_text", "model_path": str(t5), "output_dim": cond_dim,
                        "max_length": int(config.get("max_length", 128)), "key": cid}
            if config.get("project_out"):
                out[cid]["project_out"] = True
        elif kind == "number":
            out[cid] = {"type": "number", "output_dim": cond_dim, "min_val": config.get("min_val", 0),
                        "max_val": config.get("max_val", 1), "key": cid, "derive": NUMBER_DERIVED.get(cid)}
        else:
            raise PretrainedError(f"the model's '{cid}' condition is of type {kind!r}, which this recipe does not "
                                  "run (it runs t5 and number conditioners, as Stable Audio Open 1.0 and Small)")
    return out, cond_dim


def published_conditions(model: dict[str, Any], t5: Path | None) -> dict[str, Any]:
    """The `conditions:` section of a published model: each condition bound to the inputs its ids list it in
    (cross-attention, prepend, global), in their order; the token inputs' copies dropped together (group
    "prompt", upstream's cfg dropout and guidance), the global copies kept."""
    conditioners, _ = _conditioners(model, t5)
    diffusion = model.get("diffusion") or {}
    lists = {"cross_attn": list(diffusion.get("cross_attention_cond_ids") or []),
             "prepend": list(diffusion.get("prepend_cond_ids") or []),
             "global": list(diffusion.get("global_cond_ids") or [])}
    unknown = sorted({c for ids in lists.values() for c in ids} - set(conditioners))
    if unknown:
        raise PretrainedError(f"model_config.json binds condition(s) {unknown} that its conditioning section lacks")
    order = list(dict.fromkeys(c for ids in lists.values() for c in ids))
    for input_name, ids in lists.items():  # concatenation follows config order: each list must agree with it
        if ids != [c for c in order if c in ids]:
            raise PretrainedError(f"the {input_name} ids {ids} are in another order than the other inputs' "
                                  f"({order}); this recipe concatenates every input in one condition order")
    out: dict[str, Any] = {}
    for cid in order:
        inputs = [name for name, ids in lists.items() if cid in ids]
        token_inputs = [name for name in inputs if name in TOKEN_INPUTS.values()]
        entry: dict[str, Any] = {"conditioner": conditioners[cid], "input": inputs if len(inputs) > 1 else inputs[0]}
        if conditioners[cid]["type"] == "number" and conditioners[cid]["derive"]:
            entry["source"] = None  # derived from the window (training) or the request's timing
        if token_inputs:
            entry["drop"] = GROUP
            if len(token_inputs) < len(inputs):
                entry["drop_at"] = token_inputs
        out[cid] = entry
    return out


def published_config(files: PublishedFiles) -> dict[str, Any]:
    """The recipe config of the published model in `files` (nothing heavy is read)."""
    from ...backbones.dit_sao import SAODiT
    from ...codecs.oobleck import codec_kwargs_from_stable_audio_config

    data = json.loads(files.config.read_text(encoding="utf-8"))
    if data.get("model_type") != "diffusion_cond":
        raise PretrainedError(f"{files.config}: model_type {data.get('model_type')!r}; this recipe runs "
                              "'diffusion_cond' models (Stable Audio Open 1.0 and Small)")
    model = data.get("model") or {}
    sample_rate = int(data.get("sample_rate", 44100))
    pretransform = model.get("pretransform") or {}
    if pretransform.get("type") != "autoencoder":
        raise PretrainedError(f"{files.config}: the pretransform is {pretransform.get('type')!r}; this recipe runs "
                              "the Oobleck autoencoder of Stable Audio Open")
    try:
        codec = codec_kwargs_from_stable_audio_config({"sample_rate": sample_rate, "model": pretransform["config"]})
    except (KeyError, ValueError) as err:
        raise PretrainedError(f"{files.config}: its autoencoder does not fit the oobleck codec: {err}") from err
    diffusion = model.get("diffusion") or {}
    if diffusion.get("type", "dit") != "dit" or diffusion.get("input_concat_ids"):
        raise PretrainedError(f"{files.config}: a {diffusion.get('type')} diffusion model with input_concat_ids "
                              f"{diffusion.get('input_concat_ids')}; this recipe runs the DiT without inpainting "
                              "inputs")
    objective = diffusion.get("diffusion_objective", "v")
    try:
        backbone = SAODiT.upstream_kwargs({**diffusion.get("config", {}), "diffusion_objective": objective})
    except ValueError as err:
        raise PretrainedError(f"{files.config}: {err}") from err
    if backbone.pop("latent_dim") != codec["latent_dim"]:
        raise PretrainedError(f"{files.config}: the DiT's io_channels differ from the autoencoder's latent_dim")
    hop = 1
    for stride in codec["strides"]:
        hop *= int(stride)
    sample_size = int(data.get("sample_size", 2097152))
    v = objective == "v"
    released = RELEASED["sao_1.0" if v else "sao_small"]
    sampler = {**released["sampler"], "uncond_drop": [GROUP]}
    objective_node: dict[str, Any] = {"type": "v_diffusion" if v else "rectified_flow",
                                      "drop_probs": {GROUP: DROP_PROB}}
    if diffusion.get("distribution_shift_options"):
        objective_node["dist_shift"] = dict(diffusion["distribution_shift_options"])
    return {
        "recipe": "stable_audio",
        "max_frames": sample_size // hop,
        "default_seconds": round(sample_size / sample_rate, 3),
        "codec": {"type": "oobleck", **codec, "weights": str(files.checkpoint)},
        "conditions": published_conditions(model, files.t5),
        "backbone": {"type": "dit_sao", **backbone},
        "objective": objective_node,
        "sampler": sampler,
        "generate": {"pretrained": str(files.root), "model_config": str(files.config)},
    }


def build_published_recipe(cfg: Any, checkpoint: str | Path):
    """The recipe with the published DiT and conditioners loaded strictly (the codec loads its own part)."""
    from ..factory import build_recipe

    recipe = build_recipe(cfg)
    load_published(checkpoint, recipe.transformer, conditioners=dict(recipe.conditions.items()),
                   source=f"Stable Audio Open checkpoint {checkpoint}")
    return recipe
