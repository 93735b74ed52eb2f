"""toolkit-generate: outputs of any generating recipe, from a toolkit checkpoint or published files (docs/generate.md).

    toolkit-generate --ckpt exp/checkpoints/last.pt --lrc song.lrc --style-text "folk" --out out/
    toolkit-generate RECIPE --pretrained DIR [options of RECIPE] --out out/
    toolkit-generate --ckpt last.pt --requests requests.jsonl --out songs/ [key=value ...]
    toolkit-generate RECIPE --help          (the options a recipe's requests declare)

The recipe is the checkpoint's (its config says it) or the one whose published files the folder holds;
naming it first picks it. Each recipe declares its request options; this file names none. Every input is
checked before the model is built; bad input prints one line and exits with status 2, leaving nothing behind.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from toolkit.bin.common import UsageError, friendly_errors, register_toolkit_errors

PROG = "toolkit-generate"


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line (the usage is for --help), naming the recipe whose options apply."""

    recipe: str | None = None
    source: str | None = None  # where the recipe came from, e.g. "x.pt is a checkpoint of the 'NAME' recipe"

    def error(self, message: str):
        if self.recipe:
            whose = f"{self.source}; its" if self.source else f"the {self.recipe} recipe's"
            message += f" ({whose} options: {PROG} {self.recipe} --help)"
        raise UsageError(message)


def base_parser(add_help: bool) -> argparse.ArgumentParser:
    p = OneLineParser(prog=PROG, add_help=add_help, description=__doc__.split("\n\n")[0],
                                epilog="Trailing key=value arguments override the model config, e.g. "
                                       "codec.chunk_frames=64 sampler.guidance=separate.")
    model = p.add_argument_group("model (one of)")
    model.add_argument("--pretrained", metavar="DIR", help="a folder with a recipe's published files")
    model.add_argument("--ckpt", metavar="FILE", help="a toolkit checkpoint (it carries its config)")
    model.add_argument("--ema", choices=("auto", "yes", "no"), default="auto",
                       help="--ckpt: use the EMA weights (auto: when the checkpoint has them)")
    model.add_argument("--lora", action="append", default=[], metavar="DIR[:SCALE]",
                       help="a LoRA adapter folder (peft's adapter_config.json + adapter_model.safetensors; a LoRA "
                            "run writes EXP/adapter) applied on top of the model without merging; SCALE multiplies "
                            "its contribution (default 1, 0 = off, negative subtracts). Repeat for several: an "
                            "adapted layer adds sum_i SCALE_i alpha_i/r_i B_i A_i x. Request files: \"lora\": "
                            "[\"DIR:0.8\"] replaces these for that line")
    run = p.add_argument_group("running and output")
    run.add_argument("--requests", metavar="FILE.jsonl", help="batch mode: one JSON request per line; --out is "
                     "then a folder; other options become defaults of every line")
    run.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, mps or auto (default)")
    run.add_argument("--dtype", default="auto", help="auto (default), fp32, bf16 or fp16: the model's number format; "
                     "auto decides from what the device has (docs/performance.md), and says why")
    run.add_argument("--codec-dtype", default="auto", help="auto (default), fp32 or bf16: the codec's")
    run.add_argument("--format", choices=("wav", "flac", "mp3", "ogg"), help="audio format (default: from --out, "
                     "else wav)")
    run.add_argument("--out", metavar="PATH", default="generated",
                     help="an audio file name (one request) or a folder (default: generated/)")
    run.add_argument("--no-chunked", action="store_true", help="decode the whole output at once (more memory)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--save-state-every", type=float, default=60.0, metavar="SECONDS",
                     help="keep the sampler's state in OUTPUT.partial.pt at most this often (default 60; 0 = after "
                          "every update): an interrupted song resumes from it when the same command runs again; "
                          "removed once the song is written")
    run.add_argument("--no-resume", action="store_true", help="neither resume from nor write OUTPUT.partial.pt")
    run.add_argument("--skip-existing", action="store_true", help="keep an output whose files exist with a "
                     "manifest recording the same request, model and config (reruns finish only what is missing)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    return p


def full_parser(recipe_cls: type) -> argparse.ArgumentParser:
    from toolkit.generation.requests_io import add_option, add_request_options
    from toolkit.generation.sources import recipe_name

    p = base_parser(add_help=True)
    p.recipe = recipe_name(recipe_cls)
    for opt in recipe_cls.pretrained_options:
        add_option(p.add_argument_group("published files"), opt)
    add_request_options(p, recipe_cls.request_type)
    return p


def split_recipe(argv: list[str]) -> tuple[str | None, list[str]]:
    from toolkit.generation.sources import generating_recipes

    if argv and argv[0] in generating_recipes():
        return argv[0], argv[1:]
    return None, argv


def resolve(args: argparse.Namespace, recipe: str | None, recipe_cls: type | None, first: object = None):
    from toolkit.generation import sources

    overrides = [o for o in args.overrides]
    if args.ckpt:
        source = sources.from_checkpoint(args.ckpt, overrides, args.ema, recipe)
    else:
        options = {opt.field: getattr(args, opt.field, None) for opt in getattr(recipe_cls, "pretrained_options", ())}
        source = sources.from_folder(args.pretrained, overrides, options, first, recipe)
    if args.no_chunked and sources.codec_takes(source.cfg, "chunked"):
        from toolkit.config import apply_overrides

        source.cfg = apply_overrides(source.cfg, ["codec.chunked=false"])
    return source


def make_jobs(args: argparse.Namespace, recipe_cls: type, single_file: bool) -> list:
    from toolkit.generation.requests_io import Job, cli_defaults, jobs_from_file, request_from_args, slug

    request_type = recipe_cls.request_type
    if not args.requests:
        request = request_from_args(args, request_type).check()  # what needs no model or files first
        title = getattr(request, "title", None)
        name = Path(args.out).stem if single_file else slug(title) if title else recipe_cls.output_name
        return [Job(name, request, lora=list(args.lora))]
    if single_file:
        raise UsageError("with --requests, --out names a folder (one file per request), not a file")
    defaults = cli_defaults(args, request_type)
    seed = defaults.pop("seed", None)
    return jobs_from_file(args.requests, request_type, defaults, seed, lora=list(args.lora))


def check_jobs(jobs: list, validator, settings, batch_mode: bool) -> list:
    from toolkit.bin import common
    from toolkit.generation.runner import check_adapters, output_paths

    taken: set[Path] = set()
    for job in jobs:
        if job.error is None:
            try:
                job.checked = validator.check(job.request)
                check_adapters(job)
                for path in output_paths(job, settings):
                    if path in taken:
                        raise UsageError(f"two requests would both write {path}: give them different ids")
                    taken.add(path)
            except common.USER_ERRORS as err:
                if not batch_mode:
                    raise
                job.error = str(err)
        if job.error:
            print(f"{PROG}: error: {job.origin} ({job.name}): {job.error}", file=sys.stderr)
        else:
            for warning in job.checked.warnings:
                print(f"{PROG}: warning: {job.origin} ({job.name}): {warning}", file=sys.stderr)
    return [j for j in jobs if not j.error]


@friendly_errors(PROG)
def _main(argv: list[str]) -> int:
    from toolkit.generation import runner, sources
    from toolkit.generation.devices import backbone_component, pick_device, pick_dtype

    recipe, rest = split_recipe(argv)
    known, _ = base_parser(add_help=False).parse_known_args(rest)
    if recipe is None and not (known.ckpt or known.pretrained):
        if {"-h", "--help"} & set(rest):
            base_parser(add_help=True).print_help()
            print(f"\nrecipes: {', '.join(sources.generating_recipes())}; their options: {PROG} RECIPE --help")
            return 0
        raise UsageError("give the model with --ckpt FILE (a toolkit checkpoint) or --pretrained DIR (published files)")
    if known.ckpt and known.pretrained:
        raise UsageError("give the model with exactly one of --pretrained DIR or --ckpt FILE")
    pre = sources.from_checkpoint(known.ckpt, [], known.ema, recipe) if known.ckpt and recipe is None else None
    recipe_cls = pre.recipe_cls if pre is not None else sources.recipe_class(recipe) if recipe else None
    if recipe_cls is None:  # --pretrained without a recipe name: the folder's files say which
        recipe_cls = sources.from_folder_recipe(known.pretrained)
    parser = full_parser(recipe_cls)
    if pre is not None:
        parser.source = f"{known.ckpt} is a checkpoint of the '{pre.recipe}' recipe"
    args = parser.parse_args(rest)
    bad = [o for o in args.overrides if "=" not in o]
    if bad:
        raise UsageError(f"unexpected argument(s) {' '.join(bad)}: config overrides look like key=value")
    if not (args.ckpt or args.pretrained):
        raise UsageError("give the model with --ckpt FILE or --pretrained DIR")
    if args.save_state_every < 0:
        raise UsageError(f"--save-state-every must be >= 0 seconds, got {args.save_state_every:g}")

    out = Path(args.out)
    fmt, single_file = runner.output_format(out, args.format)
    device = pick_device(args.device)
    codec = pick_dtype(args.codec_dtype, device, "codec")
    jobs = make_jobs(args, recipe_cls, single_file)
    first = next((j.request for j in jobs if j.request is not None), None)
    source = resolve(args, recipe_cls and sources.recipe_name(recipe_cls), recipe_cls, first)
    dit = pick_dtype(args.dtype, device, backbone_component(source.cfg))  # bf16 only where studied
    settings = runner.RunSettings(out, fmt, single_file, device, dit.name, dit.reason, args.quiet, codec.name,
                                  codec.reason)
    todo = check_jobs(jobs, source.recipe_cls.validator_type(source.cfg), settings, bool(args.requests))
    if not todo:
        print(f"{PROG}: error: no request can be generated", file=sys.stderr)
        return 2

    save_every = None if args.no_resume else args.save_state_every
    model, config = source.record(), sources.plain_config(source)
    if args.skip_existing:
        done = [j for j in todo if runner.already_generated(j, runner.output_paths(j, settings), model, config,
                                                         settings)]
        for job in done:
            print(f"{PROG}: {job.origin} ({job.name}): already generated, skipped", file=sys.stderr)
        todo = [j for j in todo if j not in done]
    if todo and not args.quiet:  # after every check: bad input stays one line
        print(f"{PROG}: model in {dit.name} ({dit.reason}); codec in {codec.name}", file=sys.stderr)
    built = sources.build(source, device, dit.dtype, codec.dtype) if todo else None
    model = source.record() if todo else model  # now with the weights used
    failed = 0
    for job in todo:
        try:
            job.paths = runner.run_job(job, built, settings, model, config, save_state_every=save_every)
        except Exception as err:
            if not args.requests:
                raise
            failed += 1
            print(f"{PROG}: error: {job.origin} ({job.name}) failed: {err}", file=sys.stderr)
            continue
        for path in job.paths:
            if path.suffix != ".json":
                print(path)
    rejected = sum(1 for j in jobs if j.error)
    if rejected or failed:
        print(f"{PROG}: {len(todo) - failed} of {len(jobs)} requests generated; {rejected} rejected, {failed} failed",
              file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    register_toolkit_errors()
    return _main(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
