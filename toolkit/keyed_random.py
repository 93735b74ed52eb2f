"""Random generators keyed on what a draw is for, e.g. (seed, step, sample position).

Everything random in training (noise, flow times, condition drops, windows, batch order) comes from
such a generator rather than from a global stream, so the draws do not depend on how many processes
or data-loader workers share the work, nor on where a run resumed.
"""

from __future__ import annotations

import hashlib
import struct

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
