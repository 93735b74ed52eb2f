"""toolkit-generate f5tts: speech from text in the voice of a reference clip (docs/f5tts.md).

    python -m toolkit.bin.generate f5tts --pretrained DIR --ref-audio me.wav --ref-text "what I say" --text "Hello." --out out/
    python -m toolkit.bin.generate f5tts --ckpt exp/checkpoints/last.pt --requests requests.jsonl --out speech/
    [--seed N --steps N --cfg S --sway C --speed F --seconds S --drop-conditions] [key=value ...]

A request line (jsonl) holds "text" and optionally "id", "ref_audio" (relative to the file), "ref_text",
"seed", "seconds", "speed". Each output is X.wav with X.json (request, seconds, wall time, chunks).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

from toolkit.bin.common import UsageError, friendly_errors, register_user_error

PROG = "toolkit-generate f5tts"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Generate speech with F5-TTS (docs/f5tts.md).")
    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("--pretrained", metavar="DIR", help="folder with the published F5-TTS checkpoint, its "
                       "vocab.txt and a Vocos folder (config.yaml + pytorch_model.bin); see docs/f5tts.md")
    model.add_argument("--ckpt", metavar="FILE", help="a toolkit checkpoint (it carries its config)")
    p.add_argument("--ema", choices=("auto", "yes", "no"), default="auto", help="use the EMA weights of --ckpt")
    p.add_argument("--text", help="what to say")
    p.add_argument("--requests", metavar="FILE.jsonl", help="one JSON request per line")
    p.add_argument("--ref-audio", help="reference clip (its voice is cloned; at most 12 s are used)")
    p.add_argument("--ref-text", default="", help="transcript of the reference clip")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, help="ODE updates (F5 default 32; EPSS grid at 5/6/7/10/12/16)")
    p.add_argument("--cfg", type=float, help="guidance strength (default 2)")
    p.add_argument("--sway", type=float, help="sway sampling coefficient (default -1)")
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--seconds", type=float, help="length of the new speech (default: from the text length)")
    p.add_argument("--drop-conditions", action="store_true", help="the unconditional model (no text, no prompt)")
    p.add_argument("--out", default="generated", help="folder (or X.wav with --text)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    return p


def find_pretrained(folder: str | Path) -> dict[str, Path]:
    """The published files in a folder (any depth): the DiT checkpoint, vocab.txt, the Vocos folder."""
    root = Path(folder)
    if not root.is_dir():
        raise UsageError(f"--pretrained {root}: no such folder")
    vocos = [p.parent for p in root.rglob("config.yaml")
             if any((p.parent / w).is_file() for w in ("pytorch_model.bin", "model.safetensors"))]
    in_vocos = lambda p: any(v in p.parents for v in vocos)  # noqa: E731
    ckpts = sorted(p for p in root.rglob("*") if p.suffix in (".safetensors", ".pt") and not in_vocos(p))
    vocabs = sorted(root.rglob("vocab.txt"))
    missing = [name for name, found in (("an F5-TTS checkpoint (*.safetensors or *.pt)", ckpts),
                                        ("vocab.txt", vocabs), ("a Vocos folder (config.yaml + pytorch_model.bin)",
                                                                vocos)) if not found]
    if missing:
        raise UsageError(f"--pretrained {root} lacks {', '.join(missing)}: see docs/f5tts.md (offline layout)")
    return {"checkpoint": ckpts[-1], "vocab": vocabs[0], "vocos": vocos[0]}


def pretrained_config(files: dict[str, Path], overrides: list[str]) -> dict:
    from omegaconf import OmegaConf

    from toolkit.config import apply_overrides
    from toolkit.models.f5tts.checkpoints import RELEASED_CONFIG
    from toolkit.models.f5tts.recipe import F5_OBJECTIVE, F5_SAMPLER

    backbone = {"type": "dit_f5", **{k: v for k, v in RELEASED_CONFIG.items()
                                      if k not in ("latent_dim", "text_num_embeds")}}
    cfg = OmegaConf.create({
        "recipe": "f5tts",
        "codec": {"type": "mel", "vocoder": "vocos", "vocoder_path": str(files["vocos"]),
                  "latent_mean": 0.0, "latent_std": 1.0},
        "text": {"type": "char_tokens", "vocab": str(files["vocab"]), "tokenizer": "pinyin"},
        "backbone": backbone,
        "objective": dict(F5_OBJECTIVE),
        "sampler": dict(F5_SAMPLER),
    })
    return apply_overrides(cfg, overrides)


def build(args) -> tuple[Any, dict]:
    from toolkit.models.diffrhythm.checkpoints import load_state_dict_strict
    from toolkit.models.f5tts.checkpoints import load_f5_checkpoint_into
    from toolkit.models.factory import build_recipe

    if args.pretrained:
        files = find_pretrained(args.pretrained)
        cfg = pretrained_config(files, args.overrides)
        recipe = build_recipe(cfg)
        load_f5_checkpoint_into(recipe.transformer, files["checkpoint"])
        source = {"kind": "pretrained", "checkpoint": str(files["checkpoint"])}
    else:
        from omegaconf import OmegaConf

        from toolkit.config import apply_overrides
        from toolkit.training.checkpoint import load_checkpoint, strip_ema

        if not Path(args.ckpt).is_file():
            raise UsageError(f"checkpoint {args.ckpt} does not exist")
        payload = load_checkpoint(args.ckpt)
        cfg = apply_overrides(OmegaConf.create(payload["config"]), args.overrides)
        if cfg.get("recipe") != "f5tts":
            raise UsageError(f"{args.ckpt} is a '{cfg.get('recipe')}' checkpoint; use `toolkit-generate` without f5tts")
        recipe = build_recipe(cfg)
        use_ema = "ema_model_state_dict" in payload and args.ema != "no"
        if args.ema == "yes" and not use_ema:
            raise UsageError(f"{args.ckpt} has no EMA weights")
        state = strip_ema(payload["ema_model_state_dict"]) if use_ema else payload["model_state_dict"]
        load_state_dict_strict(recipe, state, source=args.ckpt)
        source = {"kind": "checkpoint", "checkpoint": args.ckpt, "weights": "ema" if use_ema else "model"}
    return recipe.eval(), source


def read_requests(args) -> list[tuple[str, dict]]:
    if bool(args.text) == bool(args.requests):
        raise UsageError("give exactly one of --text or --requests")
    common = {"ref_audio": args.ref_audio, "ref_text": args.ref_text, "seed": args.seed, "steps": args.steps,
              "cfg": args.cfg, "sway": args.sway, "speed": args.speed, "seconds": args.seconds,
              "drop_conditions": args.drop_conditions}
    if args.text:
        name = Path(args.out).stem if args.out.endswith(".wav") else "speech"
        return [(name, {**common, "text": args.text})]
    path = Path(args.requests)
    if not path.is_file():
        raise UsageError(f"requests file {path} does not exist")
    jobs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as err:
            raise UsageError(f"{path.name} line {number}: not valid JSON ({err})") from None
        name = str(data.pop("id", f"speech_{number:04d}"))
        if data.get("ref_audio"):
            ref = Path(data["ref_audio"])
            data["ref_audio"] = str(ref if ref.is_absolute() or ref.is_file() else path.parent / ref)
        merged = {**common, **{k: v for k, v in data.items() if v is not None}}
        merged["drop_conditions"] = bool(args.drop_conditions or data.get("drop_conditions"))
        merged["seed"] = data.get("seed", args.seed + len(jobs))
        jobs.append((name, merged))
    if not jobs:
        raise UsageError(f"{path} holds no requests")
    return jobs


@friendly_errors(PROG)
def main(argv: list[str] | None = None) -> int:
    from toolkit.audio import save_audio
    from toolkit.io import atomic_write_text
    from toolkit.models.f5tts.checkpoints import VocabMismatchError
    from toolkit.models.f5tts.recipe import RequestError, SpeechRequest

    register_user_error(RequestError)
    register_user_error(VocabMismatchError)
    args = build_parser().parse_args(argv)
    jobs = read_requests(args)
    for _, data in jobs:
        if data.get("ref_audio") and not Path(data["ref_audio"]).is_file():
            raise UsageError(f"reference clip {data['ref_audio']} does not exist")
        SpeechRequest(**data).check()
    recipe, source = build(args)
    single = bool(args.text) and args.out.endswith(".wav")
    out_dir = Path(args.out).parent if single else Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, data in jobs:
        request = SpeechRequest(**data)
        start = time.perf_counter()
        result = recipe.generate(request)
        wall = time.perf_counter() - start
        wav_path = out_dir / f"{name}.wav"
        save_audio(wav_path, result.audio, result.sample_rate)
        manifest = {"request": {"id": name, **data}, "seconds": result.info["seconds"], "wall_seconds": wall,
                    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                    "condition": result.info["condition"], "chunks": result.chunks, "source": source}
        atomic_write_text(wav_path.with_suffix(".json"), json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
        print(f"{wav_path}: {result.info['seconds']:.2f} s in {wall:.1f} s ({len(result.chunks)} chunk(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
