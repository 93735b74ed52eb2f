"""The inference path of the Oobleck encoder / decoder: folded weight norm, channels-last convs, lean Snake.

The modules in oobleck_blocks.py are the reference formulation (weight norm recomputed per call,
[B, C, T] convolutions, Snake as five separate tensor ops); they train and define the numbers. This
path runs the SAME modules for inference only and gives the same fp32 output within ~2e-6 relative:

  * weight norm is folded once per weight version (g * v / ||v|| computed at first use, cached on the
    module outside the state dict, recomputed when a parameter is replaced or changed in place, e.g.
    by load_state_dict): no per-chunk recomputation over 156 M parameters;
  * activations are [B, C, 1, T] in channels-last memory ([B, T, C]), so oneDNN runs the convolutions,
    and especially the transposed ones, without reordering (5x faster upsampling convs, measured);
  * a transposed conv on a short input with many channels (the first upsampling of every decoder chunk)
    is one matmul plus an overlap-add (3x faster than oneDNN there, measured);
  * SnakeBeta x + sin(a x)^2 / (b + 1e-9) runs as four passes over one scratch tensor per activation shape
    instead of five freshly allocated tensors; residual additions are in place;
  * optionally (`conv_dtype=torch.bfloat16`) convolutions run in bf16 while the Snake and the residual
    stream stay fp32 (for hardware with native bf16; its error is measured in docs/codecs.md).

torch.compile was measured for the Snake and brought nothing here (no faster than the in-place form on
an AMX Xeon, 50 s to compile), and tiling the Snake over time to stay in cache was slower on a shared
machine (many small parallel regions), so neither is used.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .oobleck_blocks import (
    DecoderBlock,
    EncoderBlock,
    ResidualUnit,
    SnakeBeta,
    WNConv1d,
    WNConvTranspose1d,
    weight_norm_weight,
)

_CACHE = "_fast_inference_cache"  # attribute name; a plain attribute, never part of the state dict


def _version(t: torch.Tensor) -> int:
    try:
        return t._version
    except RuntimeError:  # an inference tensor has no version counter (and cannot change outside inference)
        return -1


def _versions(*tensors: torch.Tensor | None) -> tuple:
    return tuple((_version(t), t.data_ptr(), t.dtype, t.device) for t in tensors if t is not None)


def _cached_as(module: nn.Module, what: tuple, make):
    """`make()` computed once per (what, parameter versions); recomputed when any parameter changes."""
    key = _versions(*module.parameters(recurse=False))
    caches = module.__dict__.setdefault(_CACHE, {})  # a plain attribute: not a parameter, buffer or state
    hit = caches.get(what)
    if hit is None or hit[0] != key:
        hit = caches[what] = (key, make())
    return hit[1]


def _cached(module: nn.Module, dtype: torch.dtype, make):
    return _cached_as(module, ("folded", dtype), make)


def folded_conv(conv: WNConv1d | WNConvTranspose1d, dtype: torch.dtype) -> torch.Tensor:
    """The weight as [rows, cols, 1, k] channels-last in `dtype`, weight norm folded."""
    def make():
        with torch.no_grad():
            w = weight_norm_weight(conv.weight_g, conv.weight_v).unsqueeze(2)
            return w.to(dtype).contiguous(memory_format=torch.channels_last)
    return _cached(conv, dtype, make)


def conv_bias(conv: WNConv1d | WNConvTranspose1d, dtype: torch.dtype) -> torch.Tensor | None:
    if conv.bias is None:
        return None
    return _cached_as(conv, ("bias", dtype), lambda: conv.bias.detach().to(dtype))


def unfolded_transpose_weight(conv: WNConvTranspose1d, dtype: torch.dtype) -> torch.Tensor:
    """The transposed conv's folded weight [in, out, k] as a matrix [in, k * out] (tap-major) in `dtype`."""
    def make():
        with torch.no_grad():
            w = weight_norm_weight(conv.weight_g, conv.weight_v)
            return w.permute(0, 2, 1).reshape(w.shape[0], -1).to(dtype).contiguous()
    return _cached_as(conv, ("matrix", dtype), make)


def transpose_conv_by_matmul(x: torch.Tensor, matrix: torch.Tensor, bias: torch.Tensor | None, stride: int,
                             padding: int) -> torch.Tensor:
    """conv_transpose with kernel 2 * stride as ONE matmul plus an overlap-add of its two halves.

    x: [B, C_in, 1, T] channels-last; matrix: [C_in, 2 * stride * C_out]. Output block j (samples
    j*stride ... j*stride + stride - 1 of the uncropped output) is taps [0, stride) of input step j plus
    taps [stride, 2 stride) of input step j - 1; `padding` samples are then cropped at both ends.
    oneDNN's transposed convolution is slow when T is short and C_in large (the first upsampling of a
    decoder chunk: 3x faster this way, measured); elsewhere oneDNN is used.
    """
    b, c_in, _, t = x.shape
    c_out = matrix.shape[1] // (2 * stride)
    taps = torch.mm(x.permute(0, 2, 3, 1).reshape(b * t, c_in), matrix).view(b, t, 2 * stride, c_out)
    blocks = taps.new_empty(b, t + 1, stride, c_out)
    torch.add(taps[:, 1:, :stride], taps[:, :-1, stride:], out=blocks[:, 1:t])
    blocks[:, :1] = taps[:, :1, :stride]
    blocks[:, t:] = taps[:, -1:, stride:]
    if bias is not None:
        blocks.add_(bias)
    length = (t + 1) * stride - 2 * padding
    y = blocks.view(b, (t + 1) * stride, c_out)[:, padding:padding + length]
    return y.permute(0, 2, 1).unsqueeze(2).contiguous(memory_format=torch.channels_last)


def snake_factors(act: SnakeBeta) -> tuple[torch.Tensor, torch.Tensor]:
    """(a, 1 / (b + 1e-9)) as [1, C, 1, 1] fp32, computed like the reference module does."""
    def make():
        with torch.no_grad():
            a = act.alpha.exp()[None, :, None, None]
            inv_b = 1.0 / (act.beta.exp()[None, :, None, None] + 1e-9)
        return a.float(), inv_b.float()
    return _cached(act, torch.float32, make)


def snake(x: torch.Tensor, a: torch.Tensor, inv_b: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """x + inv_b * sin(a x)^2 in fp32 with one temporary (the reference makes five tensors), or into `out`."""
    t = x * a if out is None else torch.mul(x, a, out=out)
    t.sin_()
    t.square_()
    return torch.addcmul(x, t, inv_b, out=t)


def to_fast_layout(x: torch.Tensor) -> torch.Tensor:
    """[B, C, T] -> [B, C, 1, T] stored channels-last (memory order B, T, C), fp32."""
    return x.float().unsqueeze(2).contiguous(memory_format=torch.channels_last)


def from_fast_layout(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[B, C, 1, T] channels-last -> contiguous [B, C, T] in `dtype`."""
    return x.squeeze(2).to(dtype).contiguous()


class FastRunner:
    """Runs an Oobleck module tree in the fast layout; convolutions in `conv_dtype` (fp32 or bf16)."""

    def __init__(self, conv_dtype: torch.dtype = torch.float32):
        self.conv_dtype = conv_dtype
        # One scratch tensor per activation shape for the Snakes: a Snake's output only feeds the next
        # convolution, so the same memory serves every Snake of a level (large fresh tensors cost page faults).
        self.scratch: dict[tuple, torch.Tensor] = {}

    def snake_output(self, x: torch.Tensor) -> torch.Tensor:
        key = (tuple(x.shape), x.dtype)
        if key not in self.scratch:
            self.scratch[key] = torch.empty_like(x, memory_format=torch.channels_last)
        out = self.scratch[key]
        return torch.empty_like(out) if out.data_ptr() == x.data_ptr() else out  # never overwrite the input

    def conv(self, conv: WNConv1d | WNConvTranspose1d, x: torch.Tensor) -> torch.Tensor:
        """The convolution in conv_dtype; fp32 in and out (mixed-dtype elementwise ops are slow on CPUs)."""
        dtype = self.conv_dtype
        bias = conv_bias(conv, dtype)
        x = x.to(dtype)
        if isinstance(conv, WNConvTranspose1d):
            by_matmul = conv.weight_v.shape[-1] == 2 * conv.stride and x.shape[-1] * conv.stride <= x.shape[1]
            if by_matmul:
                matrix = unfolded_transpose_weight(conv, dtype)
                y = transpose_conv_by_matmul(x, matrix, bias, conv.stride, conv.padding)
            else:
                y = F.conv_transpose2d(x, folded_conv(conv, dtype), bias, (1, conv.stride), (0, conv.padding))
        else:
            y = F.conv2d(x, folded_conv(conv, dtype), bias, (1, conv.stride), (0, conv.padding), (1, conv.dilation))
        return y.float()

    def run(self, module: nn.Module, x: torch.Tensor, next_layer: nn.Module | None = None) -> torch.Tensor:
        """Apply `module` to x ([B, C, 1, T] channels-last fp32); `next_layer` is what consumes the result."""
        if isinstance(module, (WNConv1d, WNConvTranspose1d)):
            return self.conv(module, x)
        if isinstance(module, SnakeBeta):
            feeds_conv = isinstance(next_layer, (WNConv1d, WNConvTranspose1d))
            return snake(x, *snake_factors(module), out=self.snake_output(x) if feeds_conv else None)
        if isinstance(module, ResidualUnit):
            return self.run(module.layers, x).add_(x)
        if isinstance(module, (nn.Sequential, EncoderBlock, DecoderBlock)) or hasattr(module, "layers"):
            layers = list(module if isinstance(module, nn.Sequential) else module.layers)
            for layer, consumer in zip(layers, layers[1:] + [None], strict=True):
                x = self.run(layer, x, consumer)
            return x
        if isinstance(module, nn.ELU):
            return F.elu(x, module.alpha)
        if isinstance(module, nn.Tanh):
            return torch.tanh(x)
        raise TypeError(f"the fast Oobleck path does not know {type(module).__name__}; run the module itself")


def fast_forward(network: nn.Module, x: torch.Tensor, conv_dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """An OobleckEncoder / OobleckDecoder applied to [B, C, T] for inference; returns [B, C', T'] in x's dtype.

    Refuses a module in training mode: training runs the reference modules (gradients reach g and v).
    """
    if network.training:
        raise RuntimeError("the fast Oobleck path is for inference: call .eval() first, or run the module "
                           "itself to train it")
    with torch.no_grad():
        y = FastRunner(conv_dtype).run(network, to_fast_layout(x))
    return from_fast_layout(y, x.dtype)
