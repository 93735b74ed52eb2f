"""Building blocks of the Oobleck autoencoder: weight-normed convolutions, SnakeBeta, residual units.

Parameter names follow stable-audio-tools so its checkpoints (and DiffRhythm's VAE) load without a key
map: weight-normed convolutions hold the OLD `torch.nn.utils.weight_norm` names `weight_g` / `weight_v`
(dim=0: weight = g * v / ||v||, the norm taken over every dim but 0), SnakeBeta holds log-scale
`alpha` / `beta`, and blocks keep their layers in an `nn.Sequential` called `layers`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def weight_norm_weight(g: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """g * v / ||v|| with the norm over all dims but 0 (the old weight_norm API with dim=0).

    For a ConvTranspose1d the weight is [in, out, k], so dim 0 (one gain per row) is the INPUT channel.
    """
    norm = v.reshape(v.shape[0], -1).norm(dim=1).reshape((-1,) + (1,) * (v.dim() - 1))
    return v * (g / norm)


def fold_to_weight_norm(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A plain (folded) weight -> (weight_g, weight_v) that reproduce it: g = ||w|| per row, v = w."""
    g = weight.reshape(weight.shape[0], -1).norm(dim=1).reshape((-1,) + (1,) * (weight.dim() - 1))
    return g.clone(), weight.clone()


class _WeightNormConv(nn.Module):
    """Shared state of the weight-normed convolutions: weight_g [rows,1,1], weight_v, optional bias."""

    def __init__(self, weight_shape: tuple[int, int, int], bias_channels: int, bias: bool):
        super().__init__()
        # Registration order = upstream state-dict order: bias, then weight_g, weight_v (weight_norm adds them last).
        self.bias = nn.Parameter(torch.empty(bias_channels)) if bias else None
        self.weight_g = nn.Parameter(torch.empty(weight_shape[0], 1, 1))
        self.weight_v = nn.Parameter(torch.empty(weight_shape))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # PyTorch's conv default init, then g = ||v|| as weight_norm does at wrap time.
        nn.init.kaiming_uniform_(self.weight_v, a=math.sqrt(5))
        with torch.no_grad():
            self.weight_g.copy_(fold_to_weight_norm(self.weight_v)[0])
            if self.bias is not None:
                fan_in = self.weight_v.shape[1] * self.weight_v.shape[2]  # what torch uses for both kinds
                bound = 1 / math.sqrt(fan_in)
                nn.init.uniform_(self.bias, -bound, bound)

    @property
    def weight(self) -> torch.Tensor:
        return weight_norm_weight(self.weight_g, self.weight_v)


class WNConv1d(_WeightNormConv):
    """Conv1d with old-style weight norm (keys weight_g, weight_v, bias)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, dilation: int = 1, bias: bool = True):
        super().__init__((out_channels, in_channels, kernel_size), out_channels, bias)
        self.stride, self.padding, self.dilation = stride, padding, dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv1d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)


class WNConvTranspose1d(_WeightNormConv):
    """ConvTranspose1d with old-style weight norm; weight is [in, out, k], so weight_g is per INPUT channel."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, bias: bool = True):
        super().__init__((in_channels, out_channels, kernel_size), out_channels, bias)
        self.stride, self.padding = stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose1d(x, self.weight, self.bias, self.stride, self.padding)


class SnakeBeta(nn.Module):
    """y = x + 1/(b + 1e-9) * sin(a x)^2 with a = exp(alpha), b = exp(beta) per channel (log-scale params)."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.alpha.exp()[None, :, None]
        b = self.beta.exp()[None, :, None]
        return x + (1.0 / (b + 1e-9)) * torch.sin(x * a).pow(2)


def activation(channels: int, use_snake: bool) -> nn.Module:
    return SnakeBeta(channels) if use_snake else nn.ELU()


class ResidualUnit(nn.Module):
    """x + conv1x1(act(conv_k7_dilated(act(x)))); the padding keeps the length."""

    def __init__(self, channels: int, dilation: int, use_snake: bool):
        super().__init__()
        self.layers = nn.Sequential(
            activation(channels, use_snake),
            WNConv1d(channels, channels, kernel_size=7, dilation=dilation, padding=dilation * 3),
            activation(channels, use_snake),
            WNConv1d(channels, channels, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x)


class EncoderBlock(nn.Module):
    """Three residual units (dilations 1, 3, 9), then a strided conv that downsamples by `stride`."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, use_snake: bool):
        super().__init__()
        self.layers = nn.Sequential(
            ResidualUnit(in_channels, 1, use_snake),
            ResidualUnit(in_channels, 3, use_snake),
            ResidualUnit(in_channels, 9, use_snake),
            activation(in_channels, use_snake),
            WNConv1d(in_channels, out_channels, kernel_size=2 * stride, stride=stride,
                     padding=math.ceil(stride / 2)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class DecoderBlock(nn.Module):
    """A transposed conv that upsamples by `stride`, then three residual units (dilations 1, 3, 9)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, use_snake: bool):
        super().__init__()
        self.layers = nn.Sequential(
            activation(in_channels, use_snake),
            WNConvTranspose1d(in_channels, out_channels, kernel_size=2 * stride, stride=stride,
                              padding=math.ceil(stride / 2)),
            ResidualUnit(out_channels, 1, use_snake),
            ResidualUnit(out_channels, 3, use_snake),
            ResidualUnit(out_channels, 9, use_snake),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
