"""toolkit-generate: DiffRhythm songs from lyrics and a style prompt (docs/generate.md).

    toolkit-generate --pretrained DIR --lrc song.lrc --style-text "folk, acoustic guitar" --length 95 --out out/
    toolkit-generate --ckpt exp/checkpoints/last.pt --lyrics words.txt --style-audio ref.wav --seed 3 --batch 4
    toolkit-generate --ckpt last.pt --requests valid.jsonl --out songs/ [key=value ...]
    toolkit-generate f5tts ...   (F5-TTS speech; see toolkit/models/f5tts/cli.py and docs/f5tts.md)

Every input is checked before the model is built; bad input prints one line and exits with status 2,
leaving no output behind. Each song is written with a JSON manifest beside it (song.wav + song.json).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import secrets
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Sequence

from toolkit.bin.common import UsageError, friendly_errors, register_user_error

PROG = "toolkit-generate"
FORMATS = ("wav", "flac", "mp3", "ogg")
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
DROPPED_SUFFIX = "_dropped"


# ------------------------------------------------------------------------------------------------ arguments

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description="Generate songs with DiffRhythm (docs/generate.md).",
        epilog="Trailing key=value arguments override the model config, e.g. codec.chunk_frames=64 "
               "sampler.guidance=separate.")
    model = p.add_argument_group("model (one of)")
    model.add_argument("--pretrained", metavar="DIR",
                       help="folder with the published files: cfm_model.pt, vae_model.pt, a MuQ-MuLan-large folder")
    model.add_argument("--ckpt", metavar="FILE", help="a toolkit checkpoint (it carries its config)")
    model.add_argument("--variant", choices=("base", "full", "v1.2-full"),
                       help="which published DiT cfm_model.pt is when its keys cannot tell: base (95 s) or full "
                            "(DiffRhythm v1.0 full, 285 s); v1.2-full is recognised by its keys")
    model.add_argument("--ema", choices=("auto", "yes", "no"), default="auto",
                       help="--ckpt: use the EMA weights (auto: when the checkpoint has them)")
    lyr = p.add_argument_group("lyrics (one of)")
    lyr.add_argument("--lrc", metavar="FILE", help="time-stamped lyrics ([mm:ss.xx]line)")
    lyr.add_argument("--lyrics", metavar="FILE", help="plain lyrics, one line per line; timed evenly over the song")
    lyr.add_argument("--instrumental", action="store_true", help="no lyrics")
    sty = p.add_argument_group("style (one of)")
    sty.add_argument("--style-text", metavar="TEXT", help='a text prompt, e.g. "folk, acoustic guitar, touching"')
    sty.add_argument("--style-audio", metavar="FILE", help="a reference song (a 10 s clip from its middle is used)")
    gen = p.add_argument_group("generation")
    gen.add_argument("--length", type=float, metavar="SECONDS", help="song length (default: the model's default)")
    gen.add_argument("--steps", type=int, help="ODE updates (upstream's 32-point grid is 31 updates)")
    gen.add_argument("--cfg", type=float, metavar="STRENGTH", help="classifier-free guidance strength (0: off)")
    gen.add_argument("--sway", type=float, metavar="COEF", help="sway sampling coefficient (e.g. -1)")
    gen.add_argument("--solver", choices=("euler", "midpoint"), help="ODE solver")
    gen.add_argument("--seed", type=int, help="random seed (default: a fresh one, written to the manifest)")
    gen.add_argument("--batch", type=int, default=None, metavar="N", help="songs per request (all saved)")
    gen.add_argument("--drop-conditions", action="store_true",
                     help="generate with lyrics and style dropped and no guidance (the unconditional model)")
    edit = p.add_argument_group("editing and continuation")
    edit.add_argument("--ref-song", metavar="FILE", help="the song to edit or continue")
    edit.add_argument("--segments", metavar="SPANS",
                      help='spans to regenerate, in seconds: "[[10,20],[45,-1]]" or "10:20,45:-1" (-1 = start/end)')
    edit.add_argument("--continue", dest="continue_seconds", type=float, metavar="SECONDS",
                      help="extend --ref-song by this many seconds")
    run = p.add_argument_group("running and output")
    run.add_argument("--requests", metavar="FILE.jsonl",
                     help="batch mode: one JSON request per line; --out is then a folder")
    run.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, mps or auto (default)")
    run.add_argument("--dtype", choices=tuple(DTYPES), help="DiT precision (default fp32 on CPU, bf16 on GPU)")
    run.add_argument("--format", choices=FORMATS, help="audio format (default: from --out, else wav)")
    run.add_argument("--out", metavar="PATH", default="generated",
                     help="an audio file name (one song) or a folder (default: generated/)")
    run.add_argument("--title", help="song title (tags and file name)")
    run.add_argument("--no-chunked", action="store_true", help="decode the whole song at once (more memory)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--skip-existing", action="store_true",
                     help="keep a song whose files exist with a manifest recording the same request, checkpoint "
                          "and config (reruns finish only what is missing)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    return p


# ------------------------------------------------------------------------------------------------ jobs

@dataclass
class Job:
    """One request to serve: its name (file stem), the request as given, and what was resolved for it."""

    name: str
    request: Any  # SongRequest as the user gave it (recorded in the manifest)
    origin: str = "command line"
    lrc: str | None = None          # the LRC used (plain lyrics timed), None for none
    run_request: Any = None         # the request handed to the recipe
    error: str | None = None
    paths: list[Path] = field(default_factory=list)


def _read_text(path: str | Path, what: str) -> str:
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{what} file not found: {path}")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise UsageError(f"{what} file {path} is not UTF-8 text ({err.reason} at byte {err.start})") from err


def parse_segments(text: str | None) -> list[tuple[float, float]] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        try:
            value = [[float(x) for x in part.split(":")] for part in text.split(",") if part.strip()]
        except ValueError:
            value = None
    if (not isinstance(value, list) or not value
            or not all(isinstance(s, (list, tuple)) and len(s) == 2 for s in value)):
        raise UsageError(f'--segments {text!r}: give spans in seconds like "[[10,20],[45,-1]]" or "10:20,45:-1"')
    return [(float(s), float(e)) for s, e in value]


def slug(text: str) -> str:
    return re.sub(r"[^\w.-]+", "_", text.strip()).strip("._")[:80] or "song"


def request_from_args(args: argparse.Namespace) -> Any:
    from toolkit.models.diffrhythm.request import SongRequest

    lrc = _read_text(args.lrc, "LRC") if args.lrc else None
    lyrics = _read_text(args.lyrics, "lyrics") if args.lyrics else None
    if args.lyrics and not (lyrics or "").strip():
        raise UsageError(f"the lyrics file {args.lyrics} is empty: give lyrics, or use --instrumental")
    return SongRequest(
        lrc=lrc, lyrics=lyrics, instrumental=args.instrumental, style_audio=args.style_audio,
        style_text=args.style_text, length=args.length, steps=args.steps, cfg=args.cfg, sway=args.sway,
        solver=args.solver, seed=args.seed if args.seed is not None else secrets.randbelow(2 ** 31),
        batch=args.batch or 1, ref_song=args.ref_song, segments=parse_segments(args.segments),
        continue_seconds=args.continue_seconds, title=args.title, drop_conditions=args.drop_conditions)


NAME_KEYS = ("id", "name")
PATH_FIELDS = ("style_audio", "ref_song")


def requests_from_file(path: str, args: argparse.Namespace) -> list[Job]:
    """One Job per non-blank line; a line that cannot become a request is a Job with its error set."""
    from toolkit.models.diffrhythm.request import SongRequest

    file = Path(path)
    text = _read_text(file, "requests")
    base = file.parent
    defaults = {"style_text": args.style_text, "style_audio": args.style_audio, "length": args.length,
                "steps": args.steps, "cfg": args.cfg, "sway": args.sway, "solver": args.solver,
                "batch": args.batch, "instrumental": args.instrumental or None}
    jobs: list[Job] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        origin = f"{file.name} line {number}"
        name = f"song_{number:04d}"
        try:
            data = json.loads(line)
            if not isinstance(data, dict):
                raise UsageError("a request line must be a JSON object")
            name = slug(str(next((data.pop(k) for k in NAME_KEYS if k in data), data.get("title") or name)))
            for key in ("lrc_path", "lyrics_path"):
                if key in data:
                    target = key[:-5]
                    data[target] = _read_text(_resolve(data.pop(key), base), target.upper() if target == "lrc"
                                              else "lyrics")
            if isinstance(data.get("lrc"), str) and "\n" not in data["lrc"] and data["lrc"].strip().endswith(".lrc"):
                data["lrc"] = _read_text(_resolve(data["lrc"].strip(), base), "LRC")
            for key in PATH_FIELDS:
                if data.get(key):
                    data[key] = str(_resolve(data[key], base))
            if "segments" in data and isinstance(data["segments"], str):
                data["segments"] = parse_segments(data["segments"])
            if "continue" in data:
                data["continue_seconds"] = data.pop("continue")
            if not any(data.get(k) for k in ("style_text", "style_audio")):
                for key in ("style_text", "style_audio"):
                    if defaults[key]:
                        data[key] = defaults[key]
            for key, value in defaults.items():
                if key not in ("style_text", "style_audio") and value is not None:
                    data.setdefault(key, value)
            if data.get("seed") is None:
                data["seed"] = args.seed + len(jobs) if args.seed is not None else secrets.randbelow(2 ** 31)
            data["drop_conditions"] = bool(args.drop_conditions or data.get("drop_conditions"))
            jobs.append(Job(name, SongRequest.from_dict(data), origin))
        except (ValueError, UsageError) as err:
            message = f"not valid JSON ({err})" if isinstance(err, json.JSONDecodeError) else str(err)
            jobs.append(Job(name, None, origin, error=message))
    if not jobs:
        raise UsageError(f"the requests file {file} holds no requests (one JSON object per line)")
    return jobs


def _resolve(value: str, base: Path) -> Path:
    """A relative path from a requests file: beside the file if it exists there, else from the working directory."""
    path = Path(value).expanduser()
    if path.is_absolute() or not (base / path).exists():
        return path
    return base / path


# ------------------------------------------------------------------------------------------------ config

def resolve_config(args: argparse.Namespace, first_seconds: float | None):
    """(config, provenance) without building the model."""
    from omegaconf import OmegaConf

    from toolkit.config import apply_overrides

    if bool(args.ckpt) == bool(args.pretrained):
        raise UsageError("give the model with exactly one of --pretrained DIR (the published files) or --ckpt FILE "
                         "(a toolkit checkpoint)")
    if args.ckpt:
        if args.variant:
            raise UsageError("--variant applies to --pretrained folders; a toolkit checkpoint knows its config")
        payload = read_our_checkpoint(args.ckpt)
        if args.ema == "yes" and "ema_model_state_dict" not in payload:
            raise UsageError(f"{args.ckpt} has no EMA weights: use --ema no (or auto)")
        cfg = apply_overrides(OmegaConf.create(payload["config"]), args.overrides)
        source = {"kind": "ckpt", "path": str(args.ckpt), "payload": payload}
    else:
        from toolkit.models.diffrhythm.pretrained import pretrained_config

        raw, files, variant = pretrained_config(args.pretrained, args.variant, first_seconds,
                                                chunked=not args.no_chunked)
        cfg = apply_overrides(OmegaConf.create(raw), args.overrides)
        source = {"kind": "pretrained", "path": str(files.dit), "files": files, "variant": variant}
    if args.no_chunked and _node_type(cfg.get("codec")) == "oobleck":
        cfg = apply_overrides(cfg, ["codec.chunked=false"])
    recipe = cfg.get("recipe")
    if recipe != "diffrhythm":
        raise UsageError(f"{source['path']} is a checkpoint of the '{recipe}' recipe; {PROG} makes DiffRhythm songs "
                         "(give a checkpoint trained with recipe: diffrhythm)")
    return cfg, source


def read_our_checkpoint(path: str) -> dict:
    """Our checkpoint, memory-mapped (optimizer state and EMA are not read into memory unless used)."""
    import torch

    from toolkit.training.checkpoint import FORMAT_VERSION, load_checkpoint

    if not Path(path).is_file():
        raise UsageError(f"checkpoint {path} does not exist")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        raw = None  # not a zip archive or not weights-only: load_checkpoint below says what is wrong
    if isinstance(raw, dict) and raw.get("format_version") == FORMAT_VERSION:
        payload = raw
    else:
        keys = list(raw.get("model_state_dict", raw)) if isinstance(raw, dict) else []
        if any(str(k).startswith("transformer.") for k in keys) and "format_version" not in raw:
            raise UsageError(f"{path} is a published DiffRhythm DiT (cfm_model.pt), not a toolkit checkpoint: put it "
                             "with vae_model.pt and MuQ-MuLan in a folder and pass --pretrained DIR")
        payload = load_checkpoint(path)  # raises the format / version error
    if "config" not in payload or "model_state_dict" not in payload:
        raise UsageError(f"{path} lacks its config or weights: not a complete toolkit checkpoint")
    return payload


def _node_type(node: Any) -> str | None:
    if node is None:
        return None
    if isinstance(node, str):
        return node
    return node.get("type")


def geometry(cfg) -> SimpleNamespace:
    """Frame rate, longest song and default length of the configured model, from the config alone."""
    import inspect

    from toolkit.registry import CODECS, RECIPES, split_node

    name, kwargs = split_node(cfg.codec, "codec")
    if name == "oobleck":
        sig = inspect.signature(CODECS.get("oobleck")).parameters
        strides = kwargs.get("strides", sig["strides"].default)
        sample_rate = int(kwargs.get("sample_rate", sig["sample_rate"].default))
        frame_rate = sample_rate / math.prod(int(s) for s in strides)
    else:  # cheap for the mel codec; anything else is built once here
        codec = CODECS.build(cfg.codec)
        sample_rate, frame_rate = codec.sample_rate, codec.frame_rate
    sig = inspect.signature(RECIPES.get("diffrhythm")).parameters
    max_frames = int(cfg.get("max_frames", sig["max_frames"].default))
    default_seconds = cfg.get("default_seconds", sig["default_seconds"].default)
    return SimpleNamespace(frame_rate=frame_rate, max_frames=max_frames, default_seconds=default_seconds,
                           sample_rate=sample_rate, frames_for=lambda s: int(s * frame_rate))


# ------------------------------------------------------------------------------------------------ checks

def check_job(job: Job, cfg, geo: SimpleNamespace, tools: dict) -> None:
    """Everything that can be checked without the model; sets job.lrc and job.run_request."""
    from toolkit.conditioners.lrc import LrcLine, format_lrc, format_time, parse_lrc, plain_lines, time_evenly
    from toolkit.models.diffrhythm.recipe import DiffRhythm
    from toolkit.models.diffrhythm.request import RequestError

    req = job.request.check()
    if not req.drop_conditions and not (req.style_text or req.style_audio):
        raise UsageError("give a style prompt: --style-text TEXT or --style-audio FILE")
    if not (req.lrc or req.lyrics or req.instrumental):
        raise UsageError("give lyrics (--lrc FILE or --lyrics FILE) or ask for an instrumental song (--instrumental)")
    ref_frames = None
    if req.ref_song:
        ref_frames = check_reference(req, geo)
    frames = DiffRhythm.plan_frames(geo, req, ref_frames)
    DiffRhythm.edit_mask(geo, req, frames, ref_frames)
    seconds = frames / geo.frame_rate
    from toolkit.conditioners.lyrics_lrc import BASE_MAX_FRAMES

    base_rule = geo.max_frames == BASE_MAX_FRAMES  # the base model takes the last LRC line as the end-of-song marker

    lrc = req.lrc
    if req.lyrics:
        lines = plain_lines(req.lyrics)
        if not lines:
            raise UsageError("the plain lyrics hold no lyric lines (only blank lines or section labels)")
        timed = time_evenly(lines, 0.0, seconds)
        if base_rule:
            timed.append(LrcLine(math.floor((seconds - 0.01) * 100) / 100, ""))
        lrc = format_lrc(timed)
    if lrc:
        parsed = parse_lrc(lrc).lines
        sung = [line for line in parsed if line.text]
        if not sung:
            raise UsageError("the LRC has no timed lyric lines ([mm:ss.xx]text); for plain lyrics use --lyrics, "
                             "for no lyrics --instrumental")
        late = [line for line in sung if line.time >= seconds]
        if len(late) == len(sung):
            raise UsageError(f"every lyric line starts after the end of the {seconds:.1f} s song (first: "
                             f"[{format_time(late[0].time)}]{late[0].text}); no voice would sing them: raise --length "
                             "or fix the timestamps")
        if late:  # upstream leaves them out silently; say so
            print(f"{PROG}: warning: {job.origin} ({job.name}): {len(late)} lyric line(s) start after the end of "
                  f"the {seconds:.1f} s song and are not sung (first: [{format_time(late[0].time)}]{late[0].text})",
                  file=sys.stderr)
        kept = [line for line in parsed if line.time < seconds]
        if base_rule and kept:
            kept = kept[:-1]
        if not any(line.text for line in kept):
            raise UsageError("no lyric line is sung: this base model takes the LRC's last line as the end-of-song "
                             "marker; add a final timestamp line (e.g. an empty one) after the last lyric")
        lyrics_cond = tools.get("lyrics")
        if lyrics_cond is not None and hasattr(lyrics_cond, "tokenizer"):
            for line in kept:
                if line.text and not lyrics_cond.tokenizer.encode(line.text):
                    raise UsageError(f"the lyric line [{format_time(line.time)}]{line.text} gives no phonemes "
                                     "(no letters the lyrics conditioner can read)")
    if req.style_audio and not req.drop_conditions:
        check_style_audio(req.style_audio)
    style_cond = tools.get("style")
    if style_cond is not None and not req.drop_conditions:
        style_cond.prepare({"audio": req.style_audio} if req.style_audio else {"text": req.style_text})
    job.lrc = None if req.instrumental else lrc
    job.run_request = replace(req, lrc=job.lrc, lyrics=None)
    if job.run_request.lrc is None and not req.instrumental:
        raise RequestError("the request has no lyrics")


def check_style_audio(path: str) -> None:
    from toolkit.audio import AudioError, audio_duration
    from toolkit.conditioners.style_common import load_middle_clip

    duration = audio_duration(path)
    if duration < 0.05:
        raise AudioError(f"{path}: the style audio holds {duration:.3f} s of samples (the file is empty or "
                         "truncated)")
    load_middle_clip(path, 16000, clip_seconds=10.0, min_seconds=1.0)  # unreadable, short, silent


def check_reference(req, geo: SimpleNamespace) -> int:
    """Frames the reference song gives (conservative), after checking it decodes and covers the edit span."""
    from toolkit.audio import AudioError, audio_duration, is_silent, load_audio

    duration = audio_duration(req.ref_song)
    wav, _ = load_audio(req.ref_song, offset=max(0.0, duration / 2 - 0.5), duration=min(1.0, duration))
    if wav.shape[-1] < 2:
        raise AudioError(f"{req.ref_song}: the file is truncated (its header says {duration:.1f} s)")
    if is_silent(load_audio(req.ref_song)[0]):
        raise AudioError(f"{req.ref_song}: the reference song is silent")
    for start, end in req.segments or []:
        reach = max(start, end)
        if reach > duration:
            raise UsageError(f"the reference song {req.ref_song} is {duration:.1f} s, shorter than the edit span "
                             f"[{start:g}, {end:g}] s: give a longer song or an earlier span")
    return int(duration * geo.frame_rate)


def light_conditioners(cfg, geo: SimpleNamespace) -> dict:
    """The lyrics conditioner (for its tokenizer) and, unless it needs weights, the style conditioner."""
    from toolkit.registry import CONDITIONERS

    tools = {"lyrics": CONDITIONERS.build(cfg.lyrics, frame_rate=geo.frame_rate, max_frames=geo.max_frames)}
    if _node_type(cfg.get("style")) not in (None, "style_mulan"):
        tools["style"] = CONDITIONERS.build(cfg.style)
    return tools


# ------------------------------------------------------------------------------------------------ the model

def pick_device(name: str):
    import torch

    if name != "auto":
        try:
            device = torch.device(name)
        except RuntimeError as err:
            raise UsageError(f"--device {name}: {err}") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise UsageError(f"--device {name}: this torch sees no CUDA device; use --device cpu")
        if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise UsageError(f"--device {name}: MPS is not available here; use --device cpu")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(name: str | None, device) -> tuple[str, Any]:
    import torch

    if name is None:
        if device.type == "cuda":
            name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            name = "fp32"
    if device.type == "cpu" and name == "fp16":
        print(f"{PROG}: warning: fp16 on a CPU is very slow (no native fp16 arithmetic); fp32 is the right choice",
              file=sys.stderr)
    return name, getattr(torch, DTYPES[name])


def build_model(cfg, source: dict, device, dtype, ema: str):
    import torch

    from toolkit.models.diffrhythm.checkpoints import load_state_dict_strict
    from toolkit.models.factory import build_recipe

    if source["kind"] == "pretrained":
        from toolkit.models.diffrhythm.pretrained import build_published_recipe

        recipe = build_published_recipe(cfg, source["path"])
        source["weights"] = "model"
    else:
        recipe = build_recipe(cfg)
        from toolkit.training.checkpoint import strip_ema

        payload = source["payload"]
        has_ema = "ema_model_state_dict" in payload
        use_ema = has_ema and ema != "no"
        state = strip_ema(payload["ema_model_state_dict"]) if use_ema else payload["model_state_dict"]
        load_state_dict_strict(recipe, state, source=source["path"])
        source["weights"] = "ema" if use_ema else "model"
    recipe.eval()
    recipe.to_device(device, dtype)
    if hasattr(recipe.style, "device") and isinstance(recipe.style.device, torch.device):
        recipe.style.device = device
    return recipe


# ------------------------------------------------------------------------------------------------ running

class Progress:
    """One tqdm bar per request over the ODE updates and the decode of each song."""

    def __init__(self, name: str, batch: int, quiet: bool):
        self.name, self.batch, self.quiet = name, batch, quiet
        self.bar = None

    def step(self, i: int, n: int, *_: Any) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=n + self.batch, desc=f"{self.name}: sampling", unit="step", disable=self.quiet,
                            file=sys.stderr, dynamic_ncols=True)
        self.bar.update(1)

    def decoding(self) -> None:
        if self.bar is not None:
            self.bar.set_description(f"{self.name}: decoding")

    def decoded(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def output_paths(job: Job, out: Path, fmt: str, single_file: bool) -> list[Path]:
    batch = job.request.batch
    stem = out.stem if single_file else job.name
    folder = out.parent if single_file else out
    if job.request.drop_conditions:
        stem += DROPPED_SUFFIX
    if batch == 1:
        return [folder / f"{stem}.{fmt}"]
    return [folder / f"{stem}_{i}.{fmt}" for i in range(batch)]


def run_job(job: Job, recipe, cfg, source: dict, paths: list[Path], fmt: str, args, device, dtype_name: str) -> None:
    import torch

    from toolkit import __version__
    from toolkit.bin.generate_output import save_song
    from toolkit.config import to_plain
    from toolkit.eval.memory import peak_rss_mb

    req = job.run_request
    progress = Progress(job.name, req.batch, args.quiet)
    started = time.perf_counter()
    try:
        result = recipe.generate(req, progress=progress.step, decode=False)
        progress.decoding()
        audio = []
        for i in range(req.batch):
            audio.append(recipe.decode(result.latents[i:i + 1])[0])
            progress.decoded()
    finally:
        progress.close()
    wall = time.perf_counter() - started
    rss = peak_rss_mb()
    seconds = result.info["seconds"]
    steps = req.steps if req.steps is not None else recipe.sampler.steps
    guidance = 0.0 if req.drop_conditions else (req.cfg if req.cfg is not None else recipe.sampler.cfg_strength)
    config = to_plain(cfg)
    for i, path in enumerate(paths):
        item_seed = req.seed + i
        manifest = {
            "audio": path.name,
            "request": request_record(job),
            "checkpoint": source["checkpoint"],
            "config": config,
            "seed": item_seed,
            "batch_index": i,
            "seconds": seconds,
            "wall_seconds": wall / req.batch,
            "request_wall_seconds": wall,
            "peak_rss_mb": rss,
            "lrc": job.lrc,  # recorded even when dropped, as the style is: evaluation compares with it
            "style": {"audio": job.request.style_audio, "text": job.request.style_text},
            "condition": result.info.get("condition", "full"),
            "steps": steps,
            "guidance": guidance,
            "toolkit_version": __version__,
            "device": str(device),
            "dtype": dtype_name,
            "sample_rate": result.sample_rate,
            "frames": result.info["frames"],
            "weights": source.get("weights"),
        }
        if "extra_files" in source:
            manifest["pretrained"] = source["extra_files"]
        prompt = job.request.style_text or job.request.style_audio or ""
        tag_fields = {"PROMPT": prompt, "SEED": str(item_seed), "STEPS": str(steps), "GUIDANCE": f"{guidance:g}",
                      "CHECKPOINT_SHA256": source["checkpoint"]["sha256"], "CONDITION": manifest["condition"]}
        title = job.request.title or job.name
        if req.batch > 1:
            title = f"{title} ({i + 1}/{req.batch})"
        job.paths += save_song(path, audio[i].to(torch.float32), result.sample_rate, fmt, title=title,
                               lrc=None if req.drop_conditions else job.lrc, tag_fields=tag_fields,
                               manifest=manifest)


def request_record(job: Job) -> dict:
    """The request as the song's manifest records it (and `--skip-existing` compares it)."""
    return {"id": job.name, **job.request.to_dict()}


def already_generated(job: Job, paths: list[Path], source: dict, cfg) -> bool:
    """Every output of `job` exists beside a manifest that records this request, checkpoint and config."""
    from toolkit.config import to_plain

    wanted = json.loads(json.dumps({"request": request_record(job), "checkpoint": source["checkpoint"]["sha256"],
                                    "config": to_plain(cfg)}))
    for path in paths:
        manifest_path = path.with_suffix(".json")
        if not (path.is_file() and manifest_path.is_file()):
            return False
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except ValueError:
            return False
        found = {"request": manifest.get("request"), "checkpoint": (manifest.get("checkpoint") or {}).get("sha256"),
                 "config": manifest.get("config")}
        if found != wanted:
            return False
    return True


def remove_outputs(job: Job) -> None:
    for path in job.paths:
        path.unlink(missing_ok=True)
    job.paths.clear()


def _register_errors() -> None:
    from toolkit.conditioners.g2p.languages import UnsupportedLanguageError
    from toolkit.conditioners.lrc import LrcError
    from toolkit.conditioners.style_common import StyleError
    from toolkit.models.diffrhythm.checkpoints import CheckpointMismatchError
    from toolkit.models.diffrhythm.pretrained import PretrainedError
    from toolkit.models.diffrhythm.request import RequestError
    from toolkit.training.checkpoint import CheckpointError

    for cls in (RequestError, LrcError, StyleError, PretrainedError, CheckpointError, CheckpointMismatchError,
                UnsupportedLanguageError):
        register_user_error(cls)


def _user_errors() -> tuple[type[BaseException], ...]:
    from toolkit.bin import common

    return common.USER_ERRORS


@friendly_errors(PROG)
def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    bad = [o for o in args.overrides if "=" not in o]
    if bad:
        raise UsageError(f"unexpected argument(s) {' '.join(bad)}: config overrides look like key=value")
    if args.batch is not None and args.batch < 1:
        raise UsageError(f"--batch must be at least 1, got {args.batch}")

    out = Path(args.out)
    single_file = out.suffix.lower().lstrip(".") in FORMATS
    fmt = args.format or (out.suffix.lower().lstrip(".") if single_file else "wav")
    if single_file and args.format and args.format != out.suffix.lower().lstrip("."):
        raise UsageError(f"--out {out} and --format {args.format} disagree: name the file .{args.format}")

    # 1. Requests and config, then every check: nothing heavy yet.
    if args.requests:
        if single_file:
            raise UsageError("with --requests, --out names a folder (one song file per request), not a file")
        conflicting = [f"--{n.replace('_', '-')}" for n in ("lrc", "lyrics", "ref_song", "segments",
                                                              "continue_seconds", "title") if getattr(args, n)]
        if conflicting:
            raise UsageError(f"{', '.join(conflicting)} describe one song; with --requests put them in the request "
                             "lines")
        jobs = requests_from_file(args.requests, args)
    else:
        request = request_from_args(args)
        jobs = [Job(slug(args.title) if args.title else "song", request)]
    first = next((j.request for j in jobs if j.request is not None), None)
    device = pick_device(args.device)
    dtype_name, dtype = pick_dtype(args.dtype, device)
    cfg, source = resolve_config(args, first.length if first is not None else None)
    geo = geometry(cfg)
    tools = light_conditioners(cfg, geo)
    errors = _user_errors()
    batch_mode = bool(args.requests)
    taken: set[Path] = set()
    for job in jobs:
        if job.error is None:
            try:
                check_job(job, cfg, geo, tools)
                for path in output_paths(job, out, fmt, single_file):
                    if path in taken:
                        raise UsageError(f"two requests would both write {path}: give them different ids")
                    taken.add(path)
            except errors as err:
                if not batch_mode:
                    raise
                job.error = str(err)
        if job.error:
            print(f"{PROG}: error: {job.origin} ({job.name}): {job.error}", file=sys.stderr)
    todo = [j for j in jobs if not j.error]
    if not todo:
        print(f"{PROG}: error: no request can be generated", file=sys.stderr)
        return 2

    # 2. The model.
    from toolkit.bin.generate_output import sha256_prefix

    source["checkpoint"] = {"path": str(Path(source["path"]).resolve()), "sha256": sha256_prefix(source["path"])}
    if source["kind"] == "pretrained":
        files = source["files"]
        source["extra_files"] = {"variant": source["variant"], "vae": {"path": str(files.vae.resolve()),
                                 "sha256": sha256_prefix(files.vae)}, "mulan": str(files.mulan.resolve())}
    if args.skip_existing:
        done = [j for j in todo if already_generated(j, output_paths(j, out, fmt, single_file), source, cfg)]
        for job in done:
            print(f"{PROG}: {job.origin} ({job.name}): already generated, skipped", file=sys.stderr)
        todo = [j for j in todo if j not in done]
    recipe = build_model(cfg, source, device, dtype, args.ema) if todo else None

    # 3. The songs.
    failed = 0
    for job in todo:
        paths = output_paths(job, out, fmt, single_file)
        try:
            run_job(job, recipe, cfg, source, paths, fmt, args, device, dtype_name)
        except BaseException as err:
            remove_outputs(job)
            if not batch_mode or not isinstance(err, Exception):
                raise
            failed += 1
            print(f"{PROG}: error: {job.origin} ({job.name}) failed: {err}", file=sys.stderr)
            continue
        for path in job.paths:
            if path.suffix != ".json":
                print(path)
    bad_input = sum(1 for j in jobs if j.error)
    if bad_input or failed:
        print(f"{PROG}: {len(todo) - failed} of {len(jobs)} requests generated; {bad_input} rejected, "
              f"{failed} failed", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "f5tts":  # the sibling recipe's generator (speech from text and a voice prompt)
        from toolkit.models.f5tts.cli import main as f5tts_main

        return f5tts_main(argv[1:])
    _register_errors()
    return _main(argv)


if __name__ == "__main__":
    sys.exit(main())
