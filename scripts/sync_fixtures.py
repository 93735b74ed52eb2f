#!/usr/bin/env python3
"""Copy the public golden sets and reference files into the repository and write their checksums.

    python scripts/sync_fixtures.py ../shared            # golden/<set>/ and reference/*.txt|yaml

Run it when a new set (or a new version of one) appears in the shared folder; commit the result.
tests/fixtures/golden/SHA256SUMS lists every fixture file with its sha256; tests/test_fixtures.py checks it.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
REFERENCE_SUFFIXES = (".txt", ".yaml")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_checksums(root: Path) -> Path:
    """`root/SHA256SUMS` in `sha256sum` format over every file below root (sorted, paths relative to root)."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != "SHA256SUMS")
    lines = [f"{sha256(p)}  {p.relative_to(root).as_posix()}\n" for p in files]
    out = root / "SHA256SUMS"
    out.write_text("".join(lines), encoding="utf-8")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("shared", type=Path, help="the shared folder holding golden/ and reference/")
    args = parser.parse_args()
    golden, reference = args.shared / "golden", args.shared / "reference"
    for set_dir in sorted(p for p in golden.iterdir() if p.is_dir()):
        target = FIXTURES / "golden" / set_dir.name
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(set_dir, target)
        for path in target.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        print(f"golden set {set_dir.name}: {sum(1 for p in target.rglob('*') if p.is_file())} files")
    (FIXTURES / "reference").mkdir(parents=True, exist_ok=True)
    for path in sorted(reference.iterdir()):
        if path.is_file() and path.suffix in REFERENCE_SUFFIXES:
            shutil.copyfile(path, FIXTURES / "reference" / path.name)
            (FIXTURES / "reference" / path.name).chmod(0o644)
            print(f"reference {path.name}")
    for root in (FIXTURES / "golden", FIXTURES / "reference"):
        print(f"wrote {write_checksums(root).relative_to(REPO)}")


if __name__ == "__main__":
    main()
