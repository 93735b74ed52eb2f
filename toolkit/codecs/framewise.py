"""What the neural frame codecs (EnCodec, DAC) share: input checks, seeded random init, length fitting,
and the Codec protocol's encode / decode over overlapping chunks of `_encode_chunk` / `_decode_chunk`."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ..protocols import Codec
from .chunking import chunked_apply


@contextlib.contextmanager
def seeded(seed: int):
    """Seed torch for a random initialisation without disturbing the caller's random stream."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def check_construction(name: str, model: str, presets: Mapping[str, Any], weights: str | None,
                       random_weights: bool, where: str, arch: Mapping[str, Any] | None,
                       arch_keys: Sequence[str]) -> dict[str, Any]:
    """The checks every wrapped published codec makes before building: a known model, exactly one of a
    local weights file or random weights, known `arch` keys. Returns the arch overrides as a dict.

    where: how to get the weights file on a machine with internet (nothing is downloaded at run time).
    """
    if model not in presets:
        raise ValueError(f"unknown {name} model {model!r}; choose one of {', '.join(presets)}")
    if weights and random_weights:
        raise ValueError(f"give either `weights` (a local {name} weights file) or `random_weights=true`, not both")
    if not weights and not random_weights:
        raise ValueError(f"the {name} codec needs weights: weights=PATH to a local {model} weights file ({where}; "
                         f"nothing is downloaded at run time), or random_weights=true for tests and speed "
                         f"benchmarks (a random decoder outputs noise)")
    arch = dict(arch or {})
    unknown = sorted(set(arch) - set(arch_keys))
    if unknown:
        raise ValueError(f"unknown {name} arch keys {unknown}; known: {', '.join(arch_keys)}")
    return arch


def fit_length(wav: torch.Tensor, length: int) -> torch.Tensor:
    """Trim or zero-pad the last axis to `length` (decoders may emit a few samples more or fewer)."""
    if wav.shape[-1] > length:
        return wav[..., :length]
    if wav.shape[-1] < length:
        return F.pad(wav, (0, length - wav.shape[-1]))
    return wav


def check_audio(wav: torch.Tensor, channels: int, codec_rate: int, given_rate: int | None, name: str) -> None:
    """Shape / channel / sample-rate checks with messages that say how to fix the input."""
    if wav.dim() != 3:
        raise ValueError(f"{name}: expected audio [batch, channels, samples], got shape {tuple(wav.shape)}")
    if wav.shape[1] != channels:
        raise ValueError(f"{name}: the codec codes {channels}-channel audio but got {wav.shape[1]} channels; "
                         f"load the audio with channels={channels} (toolkit.audio.load_audio mixes / duplicates)")
    if given_rate is not None and int(given_rate) != codec_rate:
        raise ValueError(f"{name}: the codec runs at {codec_rate} Hz but the audio is at {given_rate} Hz; resample "
                         f"it first (toolkit.audio.load_audio(path, sample_rate={codec_rate}))")


def check_latents(z: torch.Tensor, latent_dim: int, name: str) -> None:
    if z.dim() != 3 or z.shape[-1] != latent_dim:
        raise ValueError(f"{name}: expected latents [batch, frames, {latent_dim}], got shape {tuple(z.shape)}")


class ChunkedFrameCodec(Codec):
    """A codec whose subclass provides `_encode_chunk([B, C, n]) -> [B, D, n / hop]` and
    `_decode_chunk([B, D, t]) -> [B, C, t * hop]`, plus `chunked`, `chunk_frames`, `overlap_frames`."""

    chunked: bool
    chunk_frames: int
    overlap_frames: int

    def _param_dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def _label(self) -> str:
        return getattr(self, "registered_name", type(self).__name__)

    @torch.no_grad()
    def encode(self, wav: torch.Tensor, *, sample_rate: int | None = None, chunked: bool | None = None
               ) -> torch.Tensor:
        """[B, C, N] -> [B, ceil(N / hop), latent_dim]; the audio is zero-padded at the end to a multiple of hop."""
        check_audio(wav, self.channels, self.sample_rate, sample_rate, self._label)
        wav = wav.to(self._param_dtype())
        pad = (-wav.shape[-1]) % self.hop_length
        if pad:
            wav = F.pad(wav, (0, pad))
        if self.chunked if chunked is None else chunked:
            z = chunked_apply(self._encode_chunk, wav, chunk=self.chunk_frames * self.hop_length,
                              overlap=self.overlap_frames * self.hop_length, out_per_in=1 / self.hop_length)
        else:
            z = self._encode_chunk(wav)
        return z.transpose(1, 2)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, *, chunked: bool | None = None) -> torch.Tensor:
        """[B, T, latent_dim] -> [B, C, T * hop]."""
        check_latents(z, self.latent_dim, self._label)
        z = z.transpose(1, 2).to(self._param_dtype())
        if self.chunked if chunked is None else chunked:
            return chunked_apply(self._decode_chunk, z, chunk=self.chunk_frames, overlap=self.overlap_frames,
                                 out_per_in=self.hop_length)
        return self._decode_chunk(z)
