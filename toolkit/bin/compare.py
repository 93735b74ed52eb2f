"""Run several recipes, backbones or config variants on one task (the same songs and seeds); write one report.

  python -m toolkit.bin.compare --conf egs/compare/conf/default.yaml --exp egs/compare/exp/default
         [--stage 0] [--stop-stage 4] [--data SONGS_DIR] [key=value ...]

Stages: 0 data (corpus, manifests, each recipe's requests for the same songs), 1 train (extract + train each
model once), 2 generate (each variant), 3 evaluate (each variant, one evaluator for all), 4 report.
A step whose inputs have not changed since it last finished is skipped, so an interrupted or extended
run picks up where it stopped. `key=value` arguments whose first part names a section of the compare
config (requests.count=1, corpus.num_pieces=4, ...) change that config; any other (backbone.depth=2,
train.max_steps=20) is passed to every model and variant. See docs/compare.md. The harness itself is
toolkit.experiments.
"""

from __future__ import annotations

import argparse
import sys

from toolkit.bin.common import UsageError, friendly_errors, register_toolkit_errors

PROG = "toolkit-compare"


def _parser() -> argparse.ArgumentParser:
    from toolkit.experiments.compare_plan import EGS
    from toolkit.experiments.compare_run import STAGES

    p = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--conf", default=str(EGS / "compare" / "conf" / "default.yaml"), help="the compare config (YAML)")
    p.add_argument("--exp", default=str(EGS / "compare" / "exp" / "default"), help="output folder")
    p.add_argument("--stage", type=int, default=0,
                   help=f"first stage ({', '.join(f'{i} {s}' for i, s in enumerate(STAGES))})")
    p.add_argument("--stop-stage", type=int, default=len(STAGES) - 1, help="last stage")
    p.add_argument("--data", default=None, help="a folder of your songs (sets corpus.dir)")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="compare-config overrides (requests.count=1) or model/variant overrides (backbone.depth=2)")
    return p


@friendly_errors(PROG)
def _main(argv: list[str] | None) -> int:
    from toolkit.experiments.compare_run import run_comparison

    args = _parser().parse_args(argv)
    bad = [o for o in args.overrides if "=" not in o]
    if bad:
        raise UsageError(f"unexpected argument(s) {' '.join(bad)}: overrides look like key=value")
    return run_comparison(args.conf, args.exp, args.overrides, args.data, args.stage, args.stop_stage)


def main(argv: list[str] | None = None) -> int:
    register_toolkit_errors()
    return _main(argv)


if __name__ == "__main__":
    sys.exit(main())
