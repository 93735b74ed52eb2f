"""Chunked encode / decode with overlap (DiffRhythm's scheme), so memory stays flat in the song length.

The rule, in units of the chunked axis (latent frames for decoding, samples for encoding):
  * chunks of `chunk` units start at 0, hop, 2*hop, ... (hop = chunk - overlap) while they fit;
    if the last one does not end exactly at the end, one more chunk is taken right-aligned to the end;
    an input no longer than `chunk` is one chunk (the whole input).
  * every chunk is processed on its own; at each INNER edge `overlap // 2` units are dropped
    (the first chunk keeps its start, the last keeps its end); chunks are written in order, so where a
    right-aligned last chunk overlaps its neighbour by more than the kept margin, the last one wins.
For T=2048 latent frames, chunk 128, overlap 32: 21 chunks starting at 0, 96, ..., 1920, each keeping
frames [16, 112) except the first ([0, 112)) and the last ([16, 128)); in samples, 16 * hop are dropped
at every inner edge.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Piece:
    """One chunk: input span [start, start+length) and the kept part [keep_start, keep_end) of it."""

    start: int
    length: int
    keep_start: int  # offset inside the chunk
    keep_end: int    # offset inside the chunk (exclusive)


def chunk_starts(total: int, chunk: int, overlap: int) -> list[int]:
    """Start offsets of the chunks covering `total` units (see the module docstring)."""
    if chunk <= 0 or not 0 <= overlap < chunk:
        raise ValueError(f"need chunk > 0 and 0 <= overlap < chunk (got chunk={chunk}, overlap={overlap})")
    if total <= chunk:
        return [0]
    hop = chunk - overlap
    starts = list(range(0, total - chunk + 1, hop))
    if starts[-1] + chunk != total:
        starts.append(total - chunk)
    return starts


def chunk_plan(total: int, chunk: int, overlap: int) -> list[Piece]:
    """The chunks of `total` units with the part each one keeps."""
    starts = chunk_starts(total, chunk, overlap)
    margin = overlap // 2
    pieces = []
    for i, start in enumerate(starts):
        length = min(chunk, total - start)
        keep_start = margin if i > 0 else 0
        keep_end = length - margin if i < len(starts) - 1 else length
        pieces.append(Piece(start, length, keep_start, keep_end))
    return pieces


def chunked_apply(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *, chunk: int, overlap: int,
                  out_per_in: float) -> torch.Tensor:
    """Apply `fn` to overlapping chunks of `x` along its last axis and stitch the results.

    `x` is [B, C, N]; `fn` maps [B, C, n] to [B, C', n * out_per_in] (out_per_in = hop for a decoder,
    1/hop for an encoder; chunk and overlap must be whole numbers of input units that map to whole
    output units). Only one chunk's activations are alive at a time; the output is allocated once.
    """
    total = x.shape[-1]
    plan = chunk_plan(total, chunk, overlap)
    out = None
    for piece in plan:
        y = fn(x[..., piece.start:piece.start + piece.length])
        scale = y.shape[-1] / piece.length
        if abs(scale - out_per_in) > 1e-9:
            raise ValueError(f"chunk of {piece.length} units gave {y.shape[-1]} outputs, expected "
                             f"{piece.length * out_per_in:g}; use chunk/overlap sizes that are multiples of the hop")
        if out is None:
            out_len = round(total * out_per_in)
            out = y.new_zeros(y.shape[:-1] + (out_len,))
        o_start = round(piece.start * out_per_in)
        k0, k1 = round(piece.keep_start * out_per_in), round(piece.keep_end * out_per_in)
        out[..., o_start + k0:o_start + k1] = y[..., k0:k1]
        del y
    return out
