"""Trainer checkpoints: what they hold, atomic writing, keeping the last K (reading: toolkit.checkpoints).

Format (format_version 1), every value loadable with `torch.load(weights_only=True)`:
  format_version        1
  model_state_dict      the recipe's state_dict (what is trained; frozen codecs are not in it)
  ema_model_state_dict  ema-pytorch layout: "ema_model.<key>" entries plus "initted" and "step"
                        (absent when EMA is off)
  optimizer_state_dict, scheduler_state_dict   AdamW and the warm-up/decay LambdaLR
  scaler_state_dict     fp16 GradScaler (GPU fp16 runs only)
  step                  optimizer updates done
  config                the fully resolved config as a plain dict
  rng_state             list, one entry per process: {"torch", "python", "numpy"[, "cuda"]}
  data_state            the batch plan's state (toolkit.training.batching.BatchPlan.state)
  toolkit_version       the toolkit version that wrote it
Files: <exp>/checkpoints/step_00001000.pt every `save_every` steps (the last `keep_last` kept) and
`last.pt`, atomically replaced, which resume reads.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from ..io import atomic_path, atomic_torch_save

LAST = "last.pt"
STEP_FILE = re.compile(r"^step_(\d+)\.pt$")


def _link_or_copy(src: Path, dst: Path) -> None:
    """Atomically make `dst` hold the bytes of `src` (a hard link where the file system allows)."""
    with atomic_path(dst) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            import shutil

            shutil.copyfile(src, tmp)


class CheckpointManager:
    """Writes step_XXXXXXXX.pt atomically, points last.pt at it, keeps the last `keep_last` step files."""

    def __init__(self, directory: str | Path, keep_last: int = 3):
        self.directory = Path(directory)
        self.keep_last = int(keep_last)

    @property
    def last(self) -> Path:
        return self.directory / LAST

    def step_files(self) -> list[tuple[int, Path]]:
        if not self.directory.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.directory.iterdir() if (m := STEP_FILE.match(p.name))]
        return sorted(found)

    def remove_stale_temporaries(self) -> None:
        """Drop half-written files a killed run left behind (atomic writes use `.<name>.*.tmp*`)."""
        if self.directory.is_dir():
            for p in self.directory.iterdir():
                if p.name.startswith(".") and ".tmp" in p.name:
                    p.unlink(missing_ok=True)

    def save(self, payload: dict[str, Any]) -> Path:
        path = self.directory / f"step_{int(payload['step']):08d}.pt"
        atomic_torch_save(payload, path)
        _link_or_copy(path, self.last)
        if self.keep_last > 0:
            for _, old in self.step_files()[:-self.keep_last]:
                old.unlink(missing_ok=True)
        return path
