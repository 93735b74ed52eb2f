"""The `dac` codec: Descript Audio Codec (descript-audio-codec) with a continuous latent.

Latent: the encoder's output before residual vector quantisation ([B, T, 1024] per channel), decoded by the
DAC decoder directly. We take this rather than the quantiser's projected latents ("latents", N x 8-d): those
are projections of successive residuals, so each depends on the quantisation of the previous ones and the
decoder cannot take them without quantising; the 1024-d encoder output is what the decoder was trained to
approximate (the sum of the codebook vectors) and decodes as it is. `quantize=True` passes it through the
RVQ (`n_quantizers` codebooks) and back, still a 1024-d continuous vector.

DAC is mono; `channels=2` codes each channel separately and stacks the latents (channel 0 first), so
latent_dim = 1024 * channels. The network is convolutional with a reach of about 10 latent frames, so
chunked encode/decode with 16 frames dropped at every seam equals the whole-input result up to float
rounding (tests/test_codec_dac.py).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..optional import require
from ..registry import CODECS
from .framewise import ChunkedFrameCodec, check_construction, fit_length, seeded
from .loading import load_strict, read_state_dict

_COMMON = {"encoder_dim": 64, "decoder_dim": 1536, "codebook_size": 1024, "codebook_dim": 8}
# The released models (`python -m dac download --model_type ...`, weights_*.pth): their metadata kwargs.
PRESETS: dict[str, dict[str, Any]] = {
    "44khz": {**_COMMON, "encoder_rates": [2, 4, 8, 8], "decoder_rates": [8, 8, 4, 2], "n_codebooks": 9,
              "sample_rate": 44100},
    "24khz": {**_COMMON, "encoder_rates": [2, 4, 5, 8], "decoder_rates": [8, 5, 4, 2], "n_codebooks": 32,
              "sample_rate": 24000},
    "16khz": {**_COMMON, "encoder_rates": [2, 4, 5, 8], "decoder_rates": [8, 5, 4, 2], "n_codebooks": 12,
              "sample_rate": 16000},
}
ARCH_KEYS = ("encoder_dim", "encoder_rates", "latent_dim", "decoder_dim", "decoder_rates", "n_codebooks",
             "codebook_size", "codebook_dim")


@CODECS.register("dac")
class DACCodec(ChunkedFrameCodec):
    """Descript Audio Codec (44.1 / 24 / 16 kHz): continuous 1024-d encoder latents per channel, hop 512 / 320.

    `model` picks the released configuration. Weights: `weights=PATH` (a DAC weights_*.pth, whose
    `state_dict` is loaded strictly), or `random_weights=True` (tests, speed benchmarks; the evaluation
    leaves quality blank). `arch={...}` changes sizes (encoder_dim, decoder_dim, rates, codebooks) for small
    random configurations. `quantize=True` passes the latent through `n_quantizers` RVQ codebooks (default
    all) and back. Mono model; `channels=2` codes channels separately. Encode/decode run chunked
    (`chunk_frames`, `overlap_frames`); the codec is frozen.
    """

    def __init__(self, *, model: str = "44khz", weights: str | None = None, random_weights: bool = False,
                 sample_rate: int | None = None, channels: int = 1, quantize: bool = False,
                 n_quantizers: int | None = None, arch: Mapping[str, Any] | None = None, chunked: bool = True,
                 chunk_frames: int = 512, overlap_frames: int = 32, seed: int = 0):
        super().__init__()
        arch = check_construction("DAC", model, PRESETS, weights, random_weights,
                                  f"`python -m dac download --model_type {model}`", arch, ARCH_KEYS)
        config = {**PRESETS[model], **arch}
        if sample_rate is not None and int(sample_rate) != config["sample_rate"] and not arch:
            raise ValueError(f"DAC {model} runs at {config['sample_rate']} Hz, not {sample_rate}: pick "
                             f"model=44khz / 24khz / 16khz, or resample the audio (toolkit.audio.load_audio)")
        if sample_rate is not None:
            config["sample_rate"] = int(sample_rate)
        if int(channels) < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        if math.prod(config["encoder_rates"]) != math.prod(config["decoder_rates"]):
            raise ValueError(f"encoder_rates {config['encoder_rates']} and decoder_rates {config['decoder_rates']} "
                             f"must have the same product (the hop)")
        self.model_name = model
        self.random_weights = bool(random_weights)
        dac = require("dac", "codecs", "the dac codec")
        with seeded(seed), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.nn.utils.weight_norm is deprecated (dac uses it)
            self.model = dac.DAC(**{k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in config.items()})
        self.model.eval()
        self.sample_rate, self.channels = int(config["sample_rate"]), int(channels)
        self.hop_length = int(self.model.hop_length)
        self.embed_dim = int(self.model.latent_dim)
        self.latent_dim = self.embed_dim * self.channels
        self.quantize = bool(quantize)
        self.n_quantizers = None if n_quantizers is None else int(n_quantizers)
        if self.n_quantizers is not None and not 1 <= self.n_quantizers <= self.model.n_codebooks:
            raise ValueError(f"n_quantizers must be in 1..{self.model.n_codebooks}, got {n_quantizers}")
        if not 0 <= overlap_frames < chunk_frames:
            raise ValueError(f"need 0 <= overlap_frames < chunk_frames (got {overlap_frames}, {chunk_frames})")
        self.chunked, self.chunk_frames, self.overlap_frames = bool(chunked), int(chunk_frames), int(overlap_frames)
        if weights:
            self.load_weights(weights)
        self.eval()
        self.requires_grad_(False)

    # -- weights -------------------------------------------------------------------------------------------------
    def load_weights(self, path: str | Path) -> None:
        """Load a DAC weights file (its `state_dict`) or a state dict saved from `self.model` strictly."""
        state = read_state_dict(path)
        if state and all(k.startswith("model.") for k in state):
            state = {k[len("model."):]: v for k, v in state.items()}
        load_strict(self.model, state, source=f"DAC weights from {path}", hint=self._weights_hint(path))

    def _weights_hint(self, path: str | Path) -> str:
        """What the file says it is (DAC files carry their constructor kwargs as metadata)."""
        theirs = None
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
            theirs = obj.get("metadata", {}).get("kwargs") if isinstance(obj, dict) else None
        except Exception:  # not a torch.save file or unreadable metadata: no hint beyond the key report
            pass
        mine = {k: getattr(self.model, k, None) for k in ("encoder_rates", "decoder_rates", "n_codebooks",
                                                          "sample_rate")}
        if theirs:
            shown = {k: theirs.get(k) for k in mine}
            return f"the file was saved from DAC({shown}); this codec is DAC({mine}): pick the matching model="
        return f"this codec is DAC({mine})"

    # -- the networks on one chunk, channel-first; channels are folded into the batch -----------------------------
    def _encode_chunk(self, wav: torch.Tensor) -> torch.Tensor:
        """[B, C, n] (n a multiple of hop) -> [B, C * 1024, n / hop]."""
        b, c, n = wav.shape
        z = self.model.encoder(wav.reshape(b * c, 1, n))
        if self.quantize:
            z = self.model.quantizer(z, self.n_quantizers)[0]
        return z.reshape(b, c * self.embed_dim, z.shape[-1])

    def _decode_chunk(self, z: torch.Tensor) -> torch.Tensor:
        """[B, C * 1024, t] -> [B, C, t * hop]."""
        b, _, t = z.shape
        out = self.model.decoder(z.reshape(b * self.channels, self.embed_dim, t))
        # the 24 / 16 kHz decoders (a stride-5 transposed conv) emit 8 samples fewer than t * hop: pad at the end
        return fit_length(out, t * self.hop_length).reshape(b, self.channels, t * self.hop_length)
