"""Train a recipe; merge a LoRA checkpoint into plain weights, or write its adapter as a peft folder.

  python -m toolkit.bin.train --config CONF --exp EXP --features FEATURES_DIR [key=value ...]
  accelerate launch --multi_gpu --num_processes N -m toolkit.bin.train --config ... (several processes)
  python -m toolkit.bin.train export-lora --checkpoint EXP/checkpoints/last.pt --out merged.pt [--no-ema]
  python -m toolkit.bin.train export-adapter --checkpoint EXP/checkpoints/step_00000400.pt --out DIR [--no-ema]

Training resumes from EXP/checkpoints/last.pt when it exists. See docs/training.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from toolkit.bin.common import UsageError, friendly_errors, register_toolkit_errors


def _register_errors() -> None:
    register_toolkit_errors()


def default_build_recipe(cfg):
    try:
        from toolkit.models.factory import build_recipe
    except ImportError as err:
        raise UsageError(f"cannot build the recipe: toolkit.models.factory.build_recipe is not available ({err})") \
            from err
    return build_recipe(cfg)


def build_dataset(node: Any, features_dir: str | Path | None, seed: int, conditions: Any = None):
    """A dataset from a `data:` node; the features folder, the seed and the recipe's conditions are passed when
    the class takes them (and the node does not set them).

    A `valid:` entry inside the node is not a constructor argument (see `build_valid_dataset`).
    """
    from toolkit.registry import DATASETS, split_node

    name, kwargs = split_node(node, "dataset")
    kwargs.pop("valid", None)
    offered = {"seed": seed, "conditions": conditions}
    if features_dir is not None:
        offered["features_dir"] = str(features_dir)
    context = {k: v for k, v in offered.items() if k not in kwargs and v is not None}
    return DATASETS.build({"type": name, **kwargs}, context=context)


def build_valid_dataset(node: Any, features_dir, seed: int, conditions: Any = None):
    """`data.valid: {...}` overrides the training node's arguments for a held-out validation dataset."""
    from toolkit.registry import split_node

    if isinstance(node, str):
        return None
    name, kwargs = split_node(node, "dataset")
    valid = kwargs.pop("valid", None)
    if not valid:
        return None
    return build_dataset({"type": name, **kwargs, **valid}, features_dir, seed, conditions)


def run_training(config: str, exp: str, features: str | None, overrides: list[str],
                 build_recipe: Callable | None = None) -> dict:
    from toolkit.config import load_config, save_config, to_plain
    from toolkit.training.config import TrainConfig
    from toolkit.training.rng import seed_everything
    from toolkit.training.trainer import Trainer, make_accelerator

    cfg = load_config(config, overrides)
    if "data" not in cfg:
        raise UsageError(f"{config} has no data: section (the training dataset)")
    train_cfg = TrainConfig.from_config(cfg.get("train", {}))
    if features is not None and not Path(features).is_dir():
        raise FileNotFoundError(f"features directory {features} does not exist (run the extract stage first)")
    accelerator = make_accelerator(train_cfg)
    exp_dir = Path(exp)
    if accelerator.is_main_process:
        exp_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, exp_dir / "config.yaml")
    seed_everything(train_cfg.seed)  # the same initial weights on every process and every run
    recipe = (build_recipe or default_build_recipe)(cfg)
    data = to_plain(cfg.data)
    conditions = recipe.conditions
    dataset = build_dataset(data, features, train_cfg.seed, conditions)
    valid = build_valid_dataset(data, features, train_cfg.seed, conditions)
    trainer = Trainer(recipe, dataset, exp_dir, cfg, valid_dataset=valid, accelerator=accelerator)
    summary = trainer.fit()
    accelerator.end_training()
    return summary


def export_lora(checkpoint: str, out: str, use_ema: bool = True) -> Path:
    """Merge the LoRA adapter of a trainer checkpoint into plain weights.

    Writes {"format_version", "model_state_dict", "config" (train.lora removed), "toolkit_version"}: it loads
    with train.init_from into the recipe built without LoRA.
    """
    import copy

    from toolkit import __version__
    from toolkit.adapters import merge_into_state
    from toolkit.checkpoints import FORMAT_VERSION, load_checkpoint
    from toolkit.io import atomic_torch_save
    from toolkit.training.lora import split_lora_state

    ckpt = load_checkpoint(checkpoint)
    ema = use_ema and "ema_model_state_dict" in ckpt
    adapter, state = _checkpoint_adapter(ckpt, checkpoint, ema)
    base, _ = split_lora_state(state)
    merged = merge_into_state(base, [(adapter, 1.0)])
    config = copy.deepcopy(ckpt.get("config", {}))
    config.get("train", {}).pop("lora", None)
    config.get("train", {}).pop("init_from", None)
    payload = {"format_version": FORMAT_VERSION, "model_state_dict": {k: v.detach().clone() for k, v in merged.items()},
               "config": config, "step": ckpt.get("step"), "toolkit_version": __version__}
    path = atomic_torch_save(payload, out)
    print(f"merged {len(adapter.weights)} LoRA layers ({'EMA' if ema else 'online'} weights) into {path}")
    return path


def export_adapter(checkpoint: str, out: str, use_ema: bool = True) -> Path:
    """Write the LoRA adapter of a trainer checkpoint as a peft folder (adapter_config.json +
    adapter_model.safetensors), to apply unmerged on top of the base model or to share."""
    from toolkit.adapters import write_adapter
    from toolkit.checkpoints import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    ema = use_ema and "ema_model_state_dict" in ckpt
    adapter, _ = _checkpoint_adapter(ckpt, checkpoint, ema)
    path = write_adapter(adapter, out)
    print(f"wrote the adapter of {len(adapter.weights)} LoRA layers ({'EMA' if ema else 'online'} weights, "
          f"step {ckpt.get('step')}) to {path}")
    return path


def _checkpoint_adapter(ckpt: dict, checkpoint: str, ema: bool):
    """(the checkpoint's adapter, the state dict it came from); a usage error for a checkpoint without LoRA."""
    from toolkit.checkpoints import strip_ema
    from toolkit.training.lora import checkpoint_adapter, has_lora

    state = strip_ema(ckpt["ema_model_state_dict"]) if ema else dict(ckpt["model_state_dict"])
    if not has_lora(state):
        raise UsageError(f"{checkpoint} has no LoRA adapters (train.lora.rank was 0): its weights are plain already")
    return checkpoint_adapter(ckpt, use_ema=ema), state


EXPORTS = {
    "export-lora": (export_lora, "merge a LoRA run's adapter into a plain checkpoint",
                    "the merged checkpoint to write"),
    "export-adapter": (export_adapter, "write a LoRA run's adapter as a peft folder (adapter_config.json + "
                       "adapter_model.safetensors)", "the adapter folder to write"),
}


def main(argv: list[str] | None = None, *, build_recipe: Callable | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _register_errors()
    return _main(argv, build_recipe)


@friendly_errors("toolkit-train")
def _main(argv: list[str], build_recipe: Callable | None) -> int:
    if argv and argv[0] in EXPORTS:
        export, description, out_help = EXPORTS[argv[0]]
        parser = argparse.ArgumentParser(prog=f"toolkit-train {argv[0]}", description=description)
        parser.add_argument("--checkpoint", required=True, help="a trainer checkpoint (e.g. EXP/checkpoints/last.pt)")
        parser.add_argument("--out", required=True, help=out_help)
        parser.add_argument("--no-ema", action="store_true", help="take the online weights, not the EMA weights")
        args = parser.parse_args(argv[1:])
        export(args.checkpoint, args.out, use_ema=not args.no_ema)
        return 0
    parser = argparse.ArgumentParser(prog="toolkit-train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="recipe config (YAML)")
    parser.add_argument("--exp", required=True, help="experiment folder (config, checkpoints, logs)")
    parser.add_argument("--features", default=None, help="folder of extracted features (the extract stage's output)")
    parser.add_argument("overrides", nargs="*", help="config overrides key=value (e.g. train.max_steps=200)")
    args = parser.parse_args(argv)
    run_training(args.config, args.exp, args.features, args.overrides, build_recipe=build_recipe)
    return 0


if __name__ == "__main__":
    sys.exit(main())
