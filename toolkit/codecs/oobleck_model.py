"""The Oobleck encoder and decoder (Stable Audio Open's VAE, fine-tuned by DiffRhythm), natively.

Constructor arguments and state-dict keys are those of stable-audio-tools' OobleckEncoder /
OobleckDecoder, so its model configs and checkpoints fit as they are. Layout (c = [1] + c_mults, ch =
channels, n = len(strides)):
  encoder.layers: 0 conv k7 (in -> ch) | 1..n EncoderBlock(c[i-1]ch -> c[i]ch, stride s[i-1]) | n+1 act |
                  n+2 conv k3 (c[n]ch -> latent_dim, which is 2 x the decoder's: mean||scale)
  decoder.layers: 0 conv k7 (latent -> c[n]ch) | 1..n DecoderBlock(c[n-i+1]ch -> c[n-i]ch, stride
                  s[n-i]) | n+1 act | n+2 conv k7 (ch -> out, no bias) | n+3 Tanh if final_tanh
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .oobleck_blocks import DecoderBlock, EncoderBlock, WNConv1d, activation, fold_to_weight_norm


def _reject_unsupported(antialias_activation: bool, use_nearest_upsample: bool = False) -> None:
    if antialias_activation:
        raise NotImplementedError("antialias_activation=True (alias-free Snake) is not implemented; "
                                  "no released Oobleck model uses it")
    if use_nearest_upsample:
        raise NotImplementedError("use_nearest_upsample=True is not implemented; no released Oobleck model uses it")


class OobleckEncoder(nn.Module):
    """Audio [B, in_channels, N] -> pre-bottleneck latents [B, latent_dim, N / prod(strides)]."""

    def __init__(self, in_channels: int = 2, channels: int = 128, c_mults: Sequence[int] = (1, 2, 4, 8, 16),
                 strides: Sequence[int] = (2, 4, 4, 8, 8), latent_dim: int = 128, use_snake: bool = True,
                 antialias_activation: bool = False):
        super().__init__()
        _reject_unsupported(antialias_activation)
        if len(c_mults) != len(strides):
            raise ValueError(f"c_mults {list(c_mults)} and strides {list(strides)} need the same length")
        c = [1] + list(c_mults)
        layers: list[nn.Module] = [WNConv1d(in_channels, c[0] * channels, kernel_size=7, padding=3)]
        for i, stride in enumerate(strides):
            layers.append(EncoderBlock(c[i] * channels, c[i + 1] * channels, stride, use_snake))
        layers += [activation(c[-1] * channels, use_snake),
                   WNConv1d(c[-1] * channels, latent_dim, kernel_size=3, padding=1)]
        self.layers = nn.Sequential(*layers)
        self.hop_length = math.prod(strides)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class OobleckDecoder(nn.Module):
    """Latents [B, latent_dim, T] -> audio [B, out_channels, T * prod(strides)]."""

    def __init__(self, out_channels: int = 2, channels: int = 128, c_mults: Sequence[int] = (1, 2, 4, 8, 16),
                 strides: Sequence[int] = (2, 4, 4, 8, 8), latent_dim: int = 64, use_snake: bool = True,
                 antialias_activation: bool = False, use_nearest_upsample: bool = False,
                 final_tanh: bool = False):
        super().__init__()
        _reject_unsupported(antialias_activation, use_nearest_upsample)
        if len(c_mults) != len(strides):
            raise ValueError(f"c_mults {list(c_mults)} and strides {list(strides)} need the same length")
        c = [1] + list(c_mults)
        n = len(strides)
        layers: list[nn.Module] = [WNConv1d(latent_dim, c[n] * channels, kernel_size=7, padding=3)]
        for i in range(n, 0, -1):
            layers.append(DecoderBlock(c[i] * channels, c[i - 1] * channels, strides[i - 1], use_snake))
        layers += [activation(c[0] * channels, use_snake),
                   WNConv1d(c[0] * channels, out_channels, kernel_size=7, padding=3, bias=False)]
        if final_tanh:
            layers.append(nn.Tanh())
        self.layers = nn.Sequential(*layers)
        self.hop_length = math.prod(strides)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.layers(z)


# ---------------------------------------------------------------------------------------------------------------
# Reading other layouts of the same weights.

_ANCHOR = "encoder.layers.0.bias"


def strip_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop a wrapper prefix ('pretransform.model.', 'autoencoder.', 'model.', ...) before encoder./decoder."""
    anchors = [k for k in state if k.endswith(_ANCHOR) and (k == _ANCHOR or k.endswith("." + _ANCHOR))]
    if len(anchors) != 1:
        return dict(state)
    prefix = anchors[0][: -len(_ANCHOR)]
    if not prefix:
        return dict(state)
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def to_weight_norm_layout(state: Mapping[str, torch.Tensor],
                          wn_names: set[str] | None = None) -> dict[str, torch.Tensor]:
    """Convert folded conv weights ('<conv>.weight') to weight_g / weight_v where the model expects those.

    `wn_names` are the weight-normed convolutions' names (the module prefixes); by default every 3-d
    '<name>.weight' under encoder./decoder. that has no '<name>.weight_v' beside it.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name, _, leaf = key.rpartition(".")
        is_conv = (leaf == "weight" and value.dim() == 3 and f"{name}.weight_v" not in state
                   and (wn_names is None or name in wn_names))
        if is_conv:
            out[f"{name}.weight_g"], out[f"{name}.weight_v"] = fold_to_weight_norm(value.float())
        else:
            out[key] = value
    return out


def native_oobleck_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Any known layout of an Oobleck autoencoder's weights -> the native (stable-audio-tools) keys."""
    state = strip_prefix(state)
    state = {k: v for k, v in state.items() if k.startswith(("encoder.", "decoder."))}
    return to_weight_norm_layout(state)


def infer_oobleck_config(state: Mapping[str, torch.Tensor]) -> dict:
    """Read the architecture (channels, c_mults, strides, latent sizes, snake) off native-layout weights."""
    state = native_oobleck_state(state)

    def shape(key: str) -> tuple[int, ...]:
        if key not in state:
            raise KeyError(f"cannot infer the Oobleck config: key '{key}' is missing")
        return tuple(state[key].shape)

    ch, in_channels, _ = shape("encoder.layers.0.weight_v")
    blocks = sorted({int(m.group(1)) for k in state
                     if (m := re.match(r"encoder\.layers\.(\d+)\.layers\.4\.weight_v$", k))})
    strides, c_mults = [], []
    for b in blocks:
        out_c, _, k = shape(f"encoder.layers.{b}.layers.4.weight_v")
        strides.append(k // 2)
        c_mults.append(out_c // ch)
    n = len(blocks)
    enc_latent = shape(f"encoder.layers.{n + 2}.weight_v")[0]
    dec_latent = shape("decoder.layers.0.weight_v")[1]
    out_channels = shape(f"decoder.layers.{n + 2}.weight_v")[0]
    return {"channels": in_channels, "out_channels": out_channels, "base_channels": ch, "c_mults": c_mults,
            "strides": strides, "encoder_latent_dim": enc_latent, "latent_dim": dec_latent,
            "use_snake": any(k.endswith(".alpha") for k in state)}
