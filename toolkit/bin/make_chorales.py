"""Build the embedded Bach-chorale song set offline (music21 + fluidsynth + espeak-ng).

  python -m toolkit.bin.make_chorales --out data/chorales [--num-pieces 20] [--max-seconds 30]
"""

from __future__ import annotations

import argparse
import sys

from toolkit.bin.common import UsageError, friendly_errors, register_user_error


def build_parser() -> argparse.ArgumentParser:
    from toolkit.data.chorales import BREATH_BEATS, DEFAULT_MAX_SECONDS, DEFAULT_NUM_PIECES, ENSEMBLES, QUALIFYING

    p = argparse.ArgumentParser(prog="make_chorales", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="output folder (pieces already built there are skipped)")
    p.add_argument("--num-pieces", type=int, default=DEFAULT_NUM_PIECES,
                   help=f"how many chorales, in catalogue order (default {DEFAULT_NUM_PIECES}; "
                        f"{len(QUALIFYING)} qualify)")
    p.add_argument("--all", action="store_true", help="every qualifying chorale")
    p.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS,
                   help=f"cut each piece after its last whole phrase ending by then; 0 = whole pieces "
                        f"(default {DEFAULT_MAX_SECONDS:g})")
    tempos = ", ".join(f"{e.name} {e.bpm:g}" for e in ENSEMBLES)
    p.add_argument("--bpm", type=float, default=None,
                   help=f"one tempo in quarter notes for every piece (default: each ensemble's own: {tempos})")
    p.add_argument("--breath-beats", type=float, default=BREATH_BEATS,
                   help=f"silence after each fermata, in beats (default {BREATH_BEATS:g})")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: CPU count, at most 4)")
    p.add_argument("--soundfont", default=None, help="a General MIDI .sf2 (default: TimGM6mb or FluidR3_GM)")
    p.add_argument("--pieces", nargs="*", default=None, help="build these corpus names instead (e.g. bwv10.7)")
    return p


@friendly_errors("make_chorales")
def main(argv: list[str] | None = None) -> int:
    from toolkit.data.accompaniment import RenderError, find_soundfont
    from toolkit.data.chorales import QUALIFYING, BuildSettings, ChoraleError, build_set
    from toolkit.data.singing import SingerError

    for err in (ChoraleError, RenderError, SingerError):
        register_user_error(err)
    args = build_parser().parse_args(argv)
    if args.num_pieces < 1:
        raise UsageError("--num-pieces must be at least 1")
    if args.max_seconds < 0 or (args.bpm is not None and args.bpm <= 0) or args.breath_beats < 0:
        raise UsageError("--max-seconds and --breath-beats must be >= 0 and --bpm > 0")
    settings = BuildSettings(bpm=args.bpm, max_seconds=args.max_seconds or None, breath_beats=args.breath_beats,
                             soundfont=str(find_soundfont(args.soundfont)))
    names = list(QUALIFYING) if args.all else args.pieces
    build_set(args.out, num_pieces=args.num_pieces, settings=settings, jobs=args.jobs, names=names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
