"""Multiply-add count (x2) of an Oobleck encoder's / decoder's convolutions, for benchmark FLOP rates."""

from __future__ import annotations

from torch import nn

from .oobleck_blocks import WNConv1d, WNConvTranspose1d


def conv_flops(network: nn.Module, length: int) -> tuple[float, int]:
    """(FLOPs of every convolution, output length) for one item of `length` input steps.

    Walks the convolutions in execution order (the Sequential nesting of oobleck_model.py), tracking
    the length through strides; elementwise work (Snake, residual additions) is not counted.
    """
    flops = 0.0
    for module in network.modules():
        if isinstance(module, WNConv1d):
            rows, cols, k = module.weight_v.shape  # [out, in, k]
            length = (length + 2 * module.padding - module.dilation * (k - 1) - 1) // module.stride + 1
            flops += 2.0 * rows * cols * k * length
        elif isinstance(module, WNConvTranspose1d):
            rows, cols, k = module.weight_v.shape  # [in, out, k]: every input step meets k taps
            flops += 2.0 * rows * cols * k * length
            length = (length - 1) * module.stride - 2 * module.padding + k
    return flops, length


def chunked_decode_flops(decoder: nn.Module, frames: int, chunk: int, overlap: int) -> float:
    """FLOPs of decoding `frames` latent frames in overlapping chunks (the overlap counted: it is computed)."""
    from .chunking import chunk_plan

    return sum(conv_flops(decoder, piece.length)[0] for piece in chunk_plan(frames, chunk, overlap))
