"""The `oobleck` codec: Stable Audio Open's / DiffRhythm's VAE with chunked encode and decode."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from ..precision import DTYPES, normalise_request
from ..protocols import Codec
from ..registry import CODECS
from .bottleneck import VAEBottleneck
from .chunking import chunked_apply
from .loading import load_strict, read_state_dict
from .oobleck_fast import fast_forward
from .oobleck_model import OobleckDecoder, OobleckEncoder, infer_oobleck_config, native_oobleck_state
from .scripted_vae import ScriptedVAE


@CODECS.register("oobleck")
class OobleckCodec(Codec):
    """Oobleck VAE (Stable Audio Open / DiffRhythm): stereo 44.1 kHz <-> 64-d latents, hop 2048, chunked.

    Defaults are the released DiffRhythm / Stable Audio Open sizes (156 M parameters). Weights:
      * `weights=PATH`: a state dict (.pt/.ckpt/.safetensors, prefixes such as 'pretransform.model.'
        stripped) or a TorchScript file such as DiffRhythm's vae_model.pt, converted into the native
        module; weight_g/weight_v and folded 'weight' layouts are both accepted; loaded strictly.
      * `scripted_path=PATH`: run a TorchScript VAE (encode_export / decode_export) as it is.
      * neither: random weights (tests, benchmarks).
    `sample=True` (DiffRhythm's behaviour) encodes to mean + (softplus(scale) + 1e-4) * noise; False to
    the mean. `chunked` encode/decode use chunks of `chunk_frames` latent frames overlapping by
    `overlap_frames` (DiffRhythm: 128 and 32; default 256 and 32: the released decoder's reach is 10 frames,
    within the 16-frame margin, so both give the unchunked output, and 256 computes 14 % less for a 95-s song
    at the same speed per FLOP, measured); see toolkit/codecs/chunking.py. The codec is frozen:
    encode/decode track no gradients. Audio length is zero-padded at the end to a multiple of the hop.

    `fast=True` (default) runs the native networks through the inference path of oobleck_fast.py (weight
    norm folded once, channels-last convolutions, fused Snake; equal to the modules' own forward within
    ~1e-6 relative in fp32); `fast=False` runs the modules' reference forward. `compute_dtype` ("fp32",
    "bf16"; see toolkit.precision.choose_dtype(component="codec")) is the convolutions' format on the
    fast path; the Snake, residual stream and output stay fp32.
    """

    def __init__(self, *, sample_rate: int = 44100, channels: int = 2, latent_dim: int = 64,
                 base_channels: int = 128, c_mults: Sequence[int] = (1, 2, 4, 8, 16),
                 strides: Sequence[int] = (2, 4, 4, 8, 8), use_snake: bool = True, final_tanh: bool = False,
                 weights: str | None = None, scripted_path: str | None = None, sample: bool = True,
                 chunked: bool = True, chunk_frames: int = 256, overlap_frames: int = 32, fast: bool = True,
                 compute_dtype: str | torch.dtype = "fp32"):
        super().__init__()
        if weights and scripted_path:
            raise ValueError("give either `weights` (convert into the native module) or `scripted_path` "
                             "(run the TorchScript file as it is), not both")
        if not 0 <= overlap_frames < chunk_frames:
            raise ValueError(f"need 0 <= overlap_frames < chunk_frames (got {overlap_frames}, {chunk_frames})")
        self.sample_rate, self.channels, self.latent_dim = int(sample_rate), int(channels), int(latent_dim)
        self.hop_length = 1
        for s in strides:
            self.hop_length *= int(s)
        self.sample, self.chunked = bool(sample), bool(chunked)
        self.chunk_frames, self.overlap_frames = int(chunk_frames), int(overlap_frames)
        self.fast = bool(fast)
        self.set_compute_dtype(compute_dtype)
        self.bottleneck = VAEBottleneck()
        self.scripted: ScriptedVAE | None = None
        if scripted_path:
            self.scripted = ScriptedVAE(scripted_path)
            self._check_scripted_geometry()
        else:
            arch = dict(channels=base_channels, c_mults=list(c_mults), strides=list(strides), use_snake=use_snake)
            self.encoder = OobleckEncoder(in_channels=channels, latent_dim=2 * latent_dim, **arch)
            self.decoder = OobleckDecoder(out_channels=channels, latent_dim=latent_dim, final_tanh=final_tanh,
                                          **arch)
            # a build on the meta device (shapes only) has nowhere to put weights: the file is read by the real build
            if weights and not next(self.decoder.parameters()).is_meta:
                self.load_weights(weights)
        self.eval()
        self.requires_grad_(False)

    @classmethod
    def geometry(cls, *, sample_rate: int = 44100, channels: int = 2, latent_dim: int = 64,
                 strides: Sequence[int] = (2, 4, 4, 8, 8), **_: object) -> dict[str, object]:
        """From the arguments alone: a scripted or weights file is not read."""
        hop = 1
        for s in strides:
            hop *= int(s)
        return {"sample_rate": int(sample_rate), "channels": int(channels), "hop_length": hop,
                "latent_dim": int(latent_dim), "frame_rate": int(sample_rate) / hop}

    # -- weights -------------------------------------------------------------------------------------------------
    def load_weights(self, path: str | Path) -> None:
        """Load a state dict or TorchScript file (either weight-norm layout) strictly into the native module."""
        state = native_oobleck_state(read_state_dict(path))
        try:
            hint = f"the file looks like an Oobleck with {infer_oobleck_config(state)}"
        except KeyError as err:
            hint = f"(no Oobleck architecture could be read off the file: {err})"
        load_strict(self, state, source=f"Oobleck weights from {path}", hint=hint)

    def _check_scripted_geometry(self) -> None:
        try:
            found = infer_oobleck_config(self.scripted.module.state_dict())
        except KeyError:
            return  # not an Oobleck inside: trust the configured geometry
        hop = 1
        for s in found["strides"]:
            hop *= s
        mine = {"latent_dim": self.latent_dim, "channels": self.channels, "hop_length": self.hop_length}
        theirs = {"latent_dim": found["latent_dim"], "channels": found["channels"], "hop_length": hop}
        if mine != theirs:
            raise ValueError(f"TorchScript VAE {self.scripted.path} has {theirs} but the codec is configured with "
                             f"{mine}; set the codec's latent_dim / channels / strides to match")

    def set_compute_dtype(self, dtype: str | torch.dtype) -> None:
        """The convolutions' number format on the fast path: "fp32" / "bf16" (or a torch dtype)."""
        name = normalise_request(dtype)
        if name == "auto":
            raise ValueError("resolve 'auto' first: toolkit.precision.choose_dtype('auto', device, component='codec')")
        self.compute_dtype = DTYPES[name]

    # -- the networks, unchunked ---------------------------------------------------------------------------------
    def _run(self, network: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.fast and not network.training:
            return fast_forward(network, x, self.compute_dtype)
        return network(x)

    def encode_pre_bottleneck(self, wav: torch.Tensor) -> torch.Tensor:
        """[B, C, N] (N a multiple of hop) -> [B, 2D, N/hop] mean||scale."""
        return self.scripted.encode_pre_bottleneck(wav) if self.scripted is not None else self._run(self.encoder, wav)

    def decode_latents(self, z: torch.Tensor) -> torch.Tensor:
        """[B, D, T] -> [B, C, T*hop]."""
        return self.scripted.decode_latents(z) if self.scripted is not None else self._run(self.decoder, z)

    def _param_dtype(self) -> torch.dtype:
        """Inputs are cast to the weights' dtype (a DiT may hand over fp16/bf16 latents)."""
        params = self.scripted.module.parameters() if self.scripted is not None else self.parameters()
        return next(iter(params), torch.empty(0)).dtype

    # -- the Codec protocol --------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, wav: torch.Tensor, *, sample: bool | None = None, noise: torch.Tensor | None = None,
               generator: torch.Generator | None = None, chunked: bool | None = None) -> torch.Tensor:
        """[B, C, N] -> [B, ceil(N/hop), D]. `noise` ([B, D, T]) or `generator` fix the VAE sample."""
        if wav.dim() != 3 or wav.shape[1] != self.channels:
            raise ValueError(f"expected audio [batch, {self.channels}, samples], got {tuple(wav.shape)}")
        wav = wav.to(self._param_dtype())
        pad = (-wav.shape[-1]) % self.hop_length
        if pad:
            wav = F.pad(wav, (0, pad))
        if self.chunked if chunked is None else chunked:
            pre = chunked_apply(self.encode_pre_bottleneck, wav, chunk=self.chunk_frames * self.hop_length,
                                overlap=self.overlap_frames * self.hop_length, out_per_in=1 / self.hop_length)
        else:
            pre = self.encode_pre_bottleneck(wav)
        z = self.bottleneck.encode(pre, sample=self.sample if sample is None else sample, noise=noise,
                                   generator=generator)
        return z.transpose(1, 2)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, *, chunked: bool | None = None) -> torch.Tensor:
        """[B, T, D] -> [B, C, T*hop]."""
        if z.dim() != 3 or z.shape[-1] != self.latent_dim:
            raise ValueError(f"expected latents [batch, frames, {self.latent_dim}], got {tuple(z.shape)}")
        z = z.transpose(1, 2).to(self._param_dtype())
        if self.chunked if chunked is None else chunked:
            return chunked_apply(self.decode_latents, z, chunk=self.chunk_frames, overlap=self.overlap_frames,
                                 out_per_in=self.hop_length)
        return self.decode_latents(z)


def codec_kwargs_from_stable_audio_config(config: dict) -> dict:
    """A stable-audio-tools autoencoder model config (model_config.json) -> OobleckCodec kwargs."""
    model = config.get("model", config)
    if model.get("encoder", {}).get("type") != "oobleck" or model.get("decoder", {}).get("type") != "oobleck":
        raise ValueError("only autoencoders with an 'oobleck' encoder and decoder fit the oobleck codec")
    if model.get("bottleneck", {}).get("type") != "vae":
        raise ValueError(f"only the 'vae' bottleneck is supported, not {model.get('bottleneck')}")
    enc, dec = model["encoder"]["config"], model["decoder"]["config"]
    for key in ("channels", "c_mults", "strides", "use_snake"):
        if enc.get(key) != dec.get(key):
            raise ValueError(f"encoder and decoder differ in {key} ({enc.get(key)} vs {dec.get(key)}); "
                             f"the oobleck codec builds symmetric pairs")
    if enc["latent_dim"] != 2 * dec["latent_dim"]:
        raise ValueError(f"a VAE encoder emits mean||scale: encoder latent_dim {enc['latent_dim']} must be twice "
                         f"the decoder's {dec['latent_dim']}")
    return {"sample_rate": config.get("sample_rate", 44100), "channels": enc["in_channels"],
            "latent_dim": dec["latent_dim"], "base_channels": enc["channels"], "c_mults": list(enc["c_mults"]),
            "strides": list(enc["strides"]), "use_snake": enc.get("use_snake", False),
            "final_tanh": dec.get("final_tanh", True)}
