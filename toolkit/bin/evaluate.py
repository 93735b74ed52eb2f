"""Evaluate generated songs, codecs, or assemble an experiment's report.

  python -m toolkit.bin.evaluate songs --songs DIR --manifest VALID.jsonl [--held-out VALID.jsonl] --out REPORT_DIR
         [--reference-dir DIR] [--embedding descriptors|features|mulan:PATH|clap:PATH|none]
         [--self-consistency features|mulan:PATH] [--tolerance SECONDS]
  python -m toolkit.bin.evaluate codec --codec NODE [--codec NODE ...] --audio-dir DIR --out DIR
         [--random-weights NAME ...] [max_files=N max_seconds=S save_audio=false NAME.arg=value ...]
  python -m toolkit.bin.evaluate report --exp EXP [--songs DIR] [--evaluation JSON] [--out FILE]

Every figure is described in docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from toolkit.bin.common import UsageError, friendly_errors, register_user_error
from toolkit.eval.embeddings import DEFAULT_EMBEDDING

CODEC_OPTIONS = {"max_files": int, "max_seconds": float, "save_audio": bool}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="toolkit-evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    songs = sub.add_parser("songs", help="figures of generated songs, per group (e.g. full vs dropped conditions)")
    songs.add_argument("--songs", required=True, help="folder of generated X.wav (+ X.json manifests)")
    songs.add_argument("--manifest", action="append", default=[],
                       help="reference manifest (jsonl): reference audio, LRC and style per item; repeat to merge "
                            "several (e.g. valid.jsonl and train.jsonl for a larger reference set)")
    songs.add_argument("--held-out", action="append", default=[], metavar="MANIFEST",
                       help="manifest of the pieces the model was not trained on (e.g. valid.jsonl; repeatable): "
                            "their songs get the held-out columns, the others are marked training songs")
    songs.add_argument("--out", required=True, help="folder for evaluation.json and evaluation.md")
    songs.add_argument("--reference-dir", help="folder of reference audio for the distances (default: the "
                                               "manifest's audio)")
    songs.add_argument("--embedding", default=DEFAULT_EMBEDDING,
                       help="the space style is scored in: descriptors (weight-free, no feature shared with the "
                            "style_features conditioner), features (that conditioner's own space), mulan:PATH, "
                            "clap:PATH (local weights) or none (default: descriptors)")
    songs.add_argument("--self-consistency", metavar="SPACE",
                       help="also report the prompt-song cosine in the conditioner's own space (features or "
                            "mulan:PATH), labelled self-consistency")
    songs.add_argument("--tolerance", type=float, default=0.5,
                       help="lyric timing tolerance in seconds (default 0.5)")

    codec = sub.add_parser("codec", help="encode + decode a folder with codecs; reconstruction, speed, memory")
    codec.add_argument("--codec", action="append", required=True,
                       help="a codec name or node, e.g. mel or '{type: mel, griffin_lim_iters: 16}' (repeatable)")
    codec.add_argument("--audio-dir", required=True, help="folder of audio files to encode and decode")
    codec.add_argument("--out", required=True, help="folder for codec_evaluation.json / .md and decoded audio")
    codec.add_argument("--random-weights", action="append", default=[], metavar="NAME",
                       help="mark a codec (name or label) as having random weights: timed, quality left blank")
    codec.add_argument("overrides", nargs="*", metavar="key=value",
                       help="max_files=N, max_seconds=S, save_audio=false, or NAME.arg=value for codec NAME")

    report = sub.add_parser("report", help="assemble <exp>/report.md from what the recipe's stages left")
    report.add_argument("--exp", required=True, help="experiment folder")
    report.add_argument("--songs", help="generated songs (default <exp>/songs)")
    report.add_argument("--evaluation", help="songs evaluation JSON (default <exp>/report/evaluation.json)")
    report.add_argument("--out", help="report file (default <exp>/report.md)")
    report.add_argument("--max-spectrograms", type=int, default=24, help="pictures for at most this many songs")
    return parser


def parse_codec_node(text: str) -> Any:
    """A bare name or an inline YAML mapping with a `type` key."""
    from toolkit.config import parse_override

    _, node = parse_override("codec=" + text)
    if isinstance(node, dict) and "type" not in node:
        raise UsageError(f"--codec {text!r}: a codec mapping needs a 'type' key")
    if not isinstance(node, (str, dict)):
        raise UsageError(f"--codec {text!r}: give a codec name or a mapping such as '{{type: mel}}'")
    return node


def split_codec_overrides(nodes: list[Any], overrides: list[str]) -> tuple[list[Any], dict[str, Any]]:
    """Apply NAME.arg=value to the nodes of codec NAME; return (nodes, evaluation options)."""
    from toolkit.config import parse_override
    from toolkit.registry import split_node

    options: dict[str, Any] = {}
    nodes = [split_node(n, "codec") for n in nodes]
    for text in overrides:
        key, value = parse_override(text)
        if "." in key:
            name, arg = key.split(".", 1)
            targets = [kw for n, kw in nodes if n == name]
            if not targets:
                raise UsageError(f"override {text!r}: no --codec named {name!r} "
                                 f"(given: {', '.join(n for n, _ in nodes)})")
            for kwargs in targets:
                kwargs[arg] = value
        elif key in CODEC_OPTIONS:
            options[key] = CODEC_OPTIONS[key](value)
        else:
            raise UsageError(f"override {text!r}: unknown option; use {', '.join(CODEC_OPTIONS)} or NAME.arg=value")
    return [({"type": n, **kw} if kw else n) for n, kw in nodes], options


@friendly_errors("toolkit-evaluate")
def main(argv: list[str] | None = None) -> int:
    from toolkit.eval.embeddings import EmbeddingError
    from toolkit.eval.manifests import ManifestError

    register_user_error(ManifestError)
    register_user_error(EmbeddingError)
    args = _parser().parse_args(argv)
    log = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    if args.command == "songs":
        from toolkit.eval.songs import MARKDOWN_NAME, evaluate_songs

        if args.tolerance <= 0:
            raise UsageError(f"--tolerance must be positive seconds, not {args.tolerance}")
        evaluate_songs(args.songs, args.manifest, args.out, reference_dir=args.reference_dir,
                       embedding=args.embedding, tolerance=args.tolerance, log=log, held_out=args.held_out,
                       self_consistency=args.self_consistency)
        print(open(f"{args.out}/{MARKDOWN_NAME}", encoding="utf-8").read())
    elif args.command == "codec":
        from toolkit.eval.codec_eval import MARKDOWN_NAME, evaluate_codecs

        nodes, options = split_codec_overrides([parse_codec_node(c) for c in args.codec], args.overrides)
        evaluate_codecs(nodes, args.audio_dir, args.out, random_weight_names=args.random_weights, log=log, **options)
        print(open(f"{args.out}/{MARKDOWN_NAME}", encoding="utf-8").read())
    elif args.command == "report":
        from toolkit.eval.report import write_report

        path = write_report(args.exp, songs_dir=args.songs, evaluation=args.evaluation, out=args.out,
                            max_spectrograms=args.max_spectrograms, log=log)
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
