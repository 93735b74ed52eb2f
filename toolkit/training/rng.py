"""Keyed random generators and the process RNG state (saved in checkpoints, restored on resume).

Everything random in a training step (noise, flow times, condition drops, random windows) should come
from a generator keyed on (seed, step, sample position) rather than from a global stream: the draws then
do not depend on how many processes or data-loader workers share the work, nor on where a run resumed.
"""

from __future__ import annotations

import hashlib
import random
import struct
from typing import Any

import numpy as np
import torch


def keyed_seed(*keys: int | str) -> int:
    """A 63-bit seed that is a pure function of `keys` (ints may be negative, e.g. step -1 for validation)."""
    h = hashlib.blake2b(digest_size=8)
    for key in keys:
        if isinstance(key, str):
            h.update(b"s" + key.encode("utf-8") + b"\0")
        else:
            h.update(b"i" + struct.pack("<q", int(key)))
    return int.from_bytes(h.digest(), "little") & ((1 << 63) - 1)


def keyed_generator(*keys: int | str, device: str | torch.device = "cpu") -> torch.Generator:
    """`torch.Generator` seeded from `keys`, e.g. `keyed_generator(seed, step, sample_index)`."""
    gen = torch.Generator(device=device)
    gen.manual_seed(keyed_seed(*keys))
    return gen


def capture_rng_state() -> dict[str, Any]:
    """torch (CPU and CUDA), python `random` and numpy global states, as weights_only-loadable values."""
    np_state = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {"name": str(np_state[0]), "key": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["name"], n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)
