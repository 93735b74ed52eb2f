"""Inspect the toolkit: `components` lists every registered component by kind."""

from __future__ import annotations

import argparse
import sys

from toolkit.registry import REGISTRIES


def list_components(out=sys.stdout) -> None:
    for kind, registry in REGISTRIES.items():
        entries = registry.describe()
        print(f"{kind}s:", file=out)
        if not entries:
            print("  (none)", file=out)
        width = max((len(n) for n in entries), default=0)
        for name, line in entries.items():
            print(f"  {name:<{width}}  {line}", file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="toolkit-inspect", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("components", help="list registered components by kind")
    args = parser.parse_args(argv)
    if args.command == "components":
        list_components()
    return 0


if __name__ == "__main__":
    sys.exit(main())
