"""Fetch the Mandarin tokenizer data files into the cache directory (idempotent).

    python -m toolkit.conditioners.g2p.fetch [--dir DIR] [--sdist maskgct-0.0.19.tar.gz] [--force]

Runs `pip download --no-deps --no-binary :all: maskgct==0.0.19` into a temporary directory (or uses a
tarball given with --sdist, for machines without PyPI access), checks the tarball's sha256, and
unpacks only the data files listed in `toolkit.conditioners.g2p.data.FILES`, each checked against
its own sha256. The package itself is never installed. Files already present with the right
checksum are left alone.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from . import data


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def files_to_fetch(directory: Path, force: bool = False) -> list[str]:
    """Data files that are absent or whose checksum is wrong."""
    todo = []
    for name, expected in data.FILES.items():
        path = directory / name
        if force or not path.is_file() or sha256(path) != expected:
            todo.append(name)
    return todo


def download_sdist(workdir: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
           f"{data.SDIST_NAME}=={data.SDIST_VERSION}", "-d", str(workdir)]
    print("running:", " ".join(cmd), flush=True)
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tarball = workdir / data.SDIST_FILE
    if result.returncode != 0 or not tarball.is_file():
        raise RuntimeError(
            f"`{' '.join(cmd)}` failed (exit {result.returncode}):\n{result.stdout[-2000:]}\n"
            f"Without PyPI access, download {data.SDIST_FILE} elsewhere and pass it with --sdist.")
    return tarball


def unpack(tarball: Path, directory: Path, names: list[str]) -> None:
    actual = sha256(tarball)
    if actual != data.SDIST_SHA256:
        raise RuntimeError(f"{tarball} has sha256 {actual}, expected {data.SDIST_SHA256}; refusing to use it")
    directory.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball, "r:gz") as tar:
        for name in names:
            member = tar.getmember(data.SDIST_PREFIX + name)
            source = tar.extractfile(member)
            if source is None:
                raise RuntimeError(f"{member.name} in {tarball} is not a regular file")
            target = directory / name
            target.parent.mkdir(parents=True, exist_ok=True)
            # Write beside the target and rename, so an interrupted fetch never leaves a half file.
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
            try:
                with os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(source, out)
                if sha256(Path(tmp)) != data.FILES[name]:
                    raise RuntimeError(f"{name} from {tarball} does not match its expected sha256")
                os.chmod(tmp, 0o644)  # mkstemp creates 0600; the cache is read by other users too
                os.replace(tmp, target)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            print(f"  {target}", flush=True)


def fetch(directory: Path | None = None, sdist: Path | None = None, force: bool = False) -> Path:
    """Make sure every data file is in `directory` (default: `data.data_dir()`); returns the directory."""
    directory = Path(directory) if directory else data.data_dir()
    todo = files_to_fetch(directory, force)
    if not todo:
        print(f"g2p data files already present in {directory}")
        return directory
    print(f"fetching {len(todo)} g2p data file(s) into {directory}", flush=True)
    if sdist is not None:
        unpack(Path(sdist), directory, todo)
    else:
        with tempfile.TemporaryDirectory(prefix="toolkit-g2p-") as tmp:
            unpack(download_sdist(Path(tmp)), directory, todo)
    return directory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, default=None,
                        help=f"target directory (default ${data.ENV_VAR} or ~/.cache/toolkit/g2p)")
    parser.add_argument("--sdist", type=Path, default=None, help=f"use this {data.SDIST_FILE} instead of pip")
    parser.add_argument("--force", action="store_true", help="fetch again even if the files are present")
    args = parser.parse_args(argv)
    try:
        fetch(args.dir, args.sdist, args.force)
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
