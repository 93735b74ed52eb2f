"""The sampler's state kept on disk while a job runs, so that an interrupted song resumes where it stopped.

A 95-s song takes 20-40 minutes on a 2-core CPU; losing it to Ctrl-C, a closed laptop lid or a decode that
runs out of memory should cost at most a minute. `FileSnapshots` keeps, in one file beside the job's first
output (`NAME.partial.pt`), the latest state of each sampling pass of the job. The file is tied to the job's
identity (request, model, config, adapters, number formats: what `--skip-existing` compares) and each pass
to the sampler's digest of its inputs, so a file left by another request or model is never resumed from.
It is written atomically at most every `every_s` seconds and after a pass's last update (a failed decode
then resumes without sampling), and removed once the job's outputs are written.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch

from ..io import atomic_torch_save
from ..protocols import SamplerSnapshots

SUFFIX = ".partial.pt"


def snapshot_path(first_output: Path) -> Path:
    """Where a job whose first output is `first_output` keeps its state (song.wav -> song.partial.pt)."""
    return first_output.with_name(first_output.stem + SUFFIX)


class FileSnapshots(SamplerSnapshots):
    """Sampler states of one job in `path`, for the job identified by `identity` (a digest)."""

    def __init__(self, path: Path, identity: str, every_s: float = 60.0, log: Callable[[str], None] = print):
        self.path, self.identity, self.every_s, self.log = Path(path), identity, float(every_s), log
        self.passes: dict[str, dict] = self._read()
        self.last_write = time.monotonic()
        self.on_disk: tuple[int, int] | None = None  # (done, total) this run last wrote (to say how to resume)

    def _read(self) -> dict[str, dict]:
        if not self.path.is_file():
            return {}
        try:
            data = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as err:  # a torn or foreign file: start again, say so
            self.log(f"{self.path} is not a readable sampler state ({type(err).__name__}); starting from noise")
            return {}
        if not isinstance(data, dict) or data.get("identity") != self.identity:
            self.log(f"{self.path} was saved for another request, model or settings; starting from noise "
                     "(it is replaced)")
            return {}
        return dict(data.get("passes") or {})

    def load(self, key: str) -> tuple[int, torch.Tensor] | None:
        entry = self.passes.get(key)
        if entry is None:
            return None
        self.log(f"resuming from update {entry['done']} of {entry['total']} saved in {self.path}")
        self.on_disk = (int(entry["done"]), int(entry["total"]))
        return int(entry["done"]), entry["state"]

    def save(self, key: str, done: int, total: int, state: torch.Tensor) -> None:
        self.passes[key] = {"done": int(done), "total": int(total), "state": state.detach().cpu().clone()}
        now = time.monotonic()
        if done == total or now - self.last_write >= self.every_s:
            atomic_torch_save({"identity": self.identity, "passes": self.passes}, self.path)
            self.last_write, self.on_disk = now, (int(done), int(total))

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def saved_progress(path: Path) -> tuple[int, int] | None:
    """(updates done, total) of the furthest sampling pass saved in `path`, or None if it holds none or is torn."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        passes = list((data.get("passes") or {}).values())
        return max((int(p["done"]), int(p["total"])) for p in passes) if passes else None
    except Exception:  # a torn file resumes from noise (FileSnapshots says so); here it only lists no progress
        return None
