"""Atomic file writes: a reader never sees a half-written output or checkpoint."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_torch_save(obj: object, path: str | Path) -> Path:
    import torch

    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def sha256_files(paths: Iterable[str | Path]) -> str:
    """The sha256 (hex) of the files' bytes one after the other (read in 4 MB blocks)."""
    import hashlib

    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def sha256_value(value: object) -> str:
    """The sha256 (hex) of nested plain data and tensors: mappings (by sorted key), sequences, numbers, strings,
    None, and tensors by dtype, shape and bytes (so equal digests mean bit-equal tensors)."""
    import hashlib
    from collections.abc import Mapping

    import torch

    digest = hashlib.sha256()

    def feed(item: object) -> None:
        if isinstance(item, torch.Tensor):
            flat = item.detach().cpu().contiguous().reshape(-1)
            digest.update(f"T{item.dtype}{tuple(item.shape)}".encode())
            digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
        elif isinstance(item, Mapping):
            digest.update(b"{")
            for key in sorted(item, key=str):
                feed(str(key))
                feed(item[key])
            digest.update(b"}")
        elif isinstance(item, (list, tuple)):
            digest.update(b"[")
            for entry in item:
                feed(entry)
            digest.update(b"]")
        else:
            digest.update(f"{type(item).__name__}:{item!r};".encode())

    feed(value)
    return digest.hexdigest()


def sha256_prefix(path: str | Path, length: int = 16) -> str:
    """The first `length` hex digits of a file's sha256."""
    return sha256_files([path])[:length]


def describe_file(path: str | Path) -> str:
    """A user's file as it may travel with a generated song: its name and a short content hash, never the
    folders it sits in (`clip.wav (sha256:0123456789ab)`)."""
    return f"{Path(path).name} (sha256:{sha256_prefix(path, 12)})"
