"""Build the embedded default speech set (English sentences voiced by espeak-ng at 24 kHz, wav + txt).

  python -m toolkit.bin.make_speech_set --out DIR [--num-utterances 32] [--voices en-us+m3,en-us+f2] [--wpm 150]
"""

from __future__ import annotations

import argparse
import sys

from toolkit.bin.common import UsageError, friendly_errors, register_user_error


@friendly_errors("make_speech_set")
def main(argv: list[str] | None = None) -> int:
    from toolkit.data.speech_set import SENTENCES, VOICES, SpeechSetError, build_speech_set

    register_user_error(SpeechSetError)
    p = argparse.ArgumentParser(prog="make_speech_set", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="folder for the wav + txt pairs")
    p.add_argument("--num-utterances", type=int, default=len(SENTENCES), help=f"1..{len(SENTENCES)}")
    p.add_argument("--voices", default=",".join(VOICES), help="espeak-ng voices, comma-separated (speakers)")
    p.add_argument("--wpm", type=int, default=150, help="speaking rate, words per minute")
    args = p.parse_args(argv)
    if not 1 <= args.num_utterances <= len(SENTENCES):
        raise UsageError(f"--num-utterances must be in 1..{len(SENTENCES)}")
    voices = tuple(v for v in args.voices.split(",") if v)
    if not voices:
        raise UsageError("--voices needs at least one espeak-ng voice")
    utts = build_speech_set(args.out, args.num_utterances, voices, args.wpm)
    total = sum(u.seconds for u in utts)
    print(f"{len(utts)} utterances, {total:.1f} s, voices {', '.join(voices)} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
