"""toolkit-app: a web page for every generating recipe, served from this machine (docs/app.md).

    toolkit-app --ckpt exp/checkpoints/last.pt                       # http://127.0.0.1:7860
    toolkit-app --ckpt a.pt --ckpt b.pt --pretrained DIR --out generated/app
    toolkit-app --ckpt last.pt --compare egs/compare/exp/default/report --port 8000

Each served model's recipe gets a tab built from the options its requests declare (and a tab per mode it declares,
such as editing); the Compare tab opens comparison reports. Everything runs offline: no analytics, no fonts or
scripts from the web, no share links, no hub calls. Bad input gets the same messages as toolkit-generate, in the
page. Outputs and their manifests go to --out, one folder per job.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from toolkit.bin.common import UsageError, friendly_errors, register_toolkit_errors

PROG = "toolkit-app"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                epilog="Trailing key=value arguments override every served model's config.")
    model = p.add_argument_group("models (at least one; a picker when several serve one recipe)")
    model.add_argument("--ckpt", action="append", default=[], metavar="FILE", help="a toolkit checkpoint (repeatable)")
    model.add_argument("--pretrained", action="append", default=[], metavar="DIR",
                       help="a folder with a recipe's published files (repeatable)")
    model.add_argument("--pretrained-option", action="append", default=[], metavar="NAME=VALUE",
                       help="an option of the published files' recipe, e.g. variant=base (see toolkit-generate "
                            "RECIPE --help, 'published files')")
    model.add_argument("--ema", choices=("auto", "yes", "no"), default="auto",
                       help="--ckpt: use the EMA weights (auto: when the checkpoint has them)")
    run = p.add_argument_group("running and serving")
    run.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1: this machine "
                     "only; another address is reachable by others, and a warning says so)")
    run.add_argument("--port", type=int, default=7860, help="the port (default 7860)")
    run.add_argument("--out", default="generated/app", metavar="DIR",
                     help="where outputs go, one folder per job (default generated/app)")
    run.add_argument("--compare", action="append", default=[], metavar="DIR",
                     help="a comparison report folder the Compare tab offers (repeatable; others can be typed in)")
    run.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, mps or auto (default)")
    run.add_argument("--dtype", default="auto", help="auto (default), fp32, bf16 or fp16")
    run.add_argument("--no-chunked", action="store_true", help="decode whole outputs at once (more memory)")
    run.add_argument("--save-state-every", type=float, default=60.0, metavar="SECONDS",
                     help="keep a running job's sampler state in its folder at most this often (default 60; 0 = "
                          "after every update): a job a crash or a restart stopped is listed under Unfinished jobs "
                          "and resumes from it")
    run.add_argument("--title", default="toolkit", help="the page's title")
    run.add_argument("--dry-run", action="store_true", help="check the models and settings, say what would be "
                     "served, and exit")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    return p


def served_models(args: argparse.Namespace, settings) -> list:
    from toolkit.app.served import serve_checkpoint, serve_folder
    from toolkit.generation.requests_io import parse_mapping

    options = parse_mapping(args.pretrained_option)
    models = [serve_checkpoint(path, args.overrides, args.ema, settings) for path in args.ckpt]
    models += [serve_folder(folder, args.overrides, options) for folder in args.pretrained]
    return models


def warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr)


@friendly_errors(PROG)
def _main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    bad = [o for o in args.overrides if "=" not in o]
    if bad:
        raise UsageError(f"unexpected argument(s) {' '.join(bad)}: config overrides look like key=value")
    if not (args.ckpt or args.pretrained):
        raise UsageError("give at least one model: --ckpt FILE (a toolkit checkpoint) or --pretrained DIR "
                         "(published files)")
    if not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port}: give a port between 1 and 65535")
    if args.save_state_every < 0:
        raise UsageError(f"--save-state-every must be >= 0 seconds, got {args.save_state_every:g}")
    from toolkit.app.offline import set_offline_env

    set_offline_env()
    from pathlib import Path

    from toolkit.app.served import Settings
    from toolkit.app.server import exposure_warning, launch
    from toolkit.app.service import Service
    from toolkit.generation.devices import pick_device, pick_dtype
    from toolkit.optional import require

    device = pick_device(args.device)
    dit = pick_dtype(args.dtype, device, "dit")
    settings = Settings(device, dit.name, dit.dtype, dit.reason, args.no_chunked, requested=args.dtype or "auto",
                        save_state_every=args.save_state_every)
    service = Service(served_models(args, settings), Path(args.out), settings)
    for folder in args.compare:
        from toolkit.app.compare import find_report

        find_report(folder)  # a typo fails now, not in the page
    warning = exposure_warning(args.host)
    if warning:
        warn(warning)
    for label in service.models:
        print(f"{PROG}: serving {label}", file=sys.stderr)
    if args.dry_run:
        print(f"{PROG}: would listen on http://{args.host}:{args.port}/ (outputs in {args.out}); --dry-run: not "
              "started", file=sys.stderr)
        return 0
    require("gradio", "app", "the web app")
    print(f"{PROG}: open http://{args.host}:{args.port}/ (Ctrl+C stops)", file=sys.stderr)
    try:
        launch(service, args.host, args.port, args.compare, block=True, title=args.title)
    except KeyboardInterrupt:
        pass
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    register_toolkit_errors()
    return _main(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
