"""Inspect the toolkit: `components` lists every registered component by kind; `config CONF KEY [key=value ...]`
prints one value of a config after its bases and overrides (a section as one line of JSON, which is also a
valid override value: recipe scripts hand a section of their conf to a CLI with it)."""

from __future__ import annotations

import argparse
import json
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


def config_value(path: str, key: str, overrides: list[str]) -> str:
    from omegaconf import OmegaConf

    from toolkit.config import load_config, to_plain

    missing = object()
    value = OmegaConf.select(load_config(path, overrides), key, default=missing)
    if value is missing:
        raise KeyError(f"{path} has no '{key}' (after its bases and the overrides)")
    value = to_plain(value)
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="toolkit-inspect", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("components", help="list registered components by kind")
    config = sub.add_parser("config", help="print one value of a config (a section as JSON)")
    config.add_argument("config", help="a config file (its bases are read too)")
    config.add_argument("key", help="a dotted key, e.g. sampler or conditions.style.conditioner")
    config.add_argument("overrides", nargs="*", help="key=value overrides applied first")
    args = parser.parse_args(argv)
    if args.command == "components":
        list_components()
    elif args.command == "config":
        try:
            print(config_value(args.config, args.key, args.overrides))
        except (KeyError, ValueError, OSError) as err:
            print(f"toolkit-inspect: error: {err.args[0] if isinstance(err, KeyError) else err}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
