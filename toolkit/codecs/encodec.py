"""The `encodec` codec: Meta's EnCodec (the `encodec` package) with a continuous latent.

Latent: the SEANet encoder's output before residual vector quantisation ([B, T, 128], hop 320), decoded by
the SEANet decoder directly. With `quantize=True` the encoder output is quantised at `bandwidth` and
dequantised again, so the latent is still a continuous 128-d embedding (what the decoder sees in EnCodec's
own compress/decompress), only restricted to the codebook sums.

The 48 kHz model was trained on 1 s segments, each divided by its RMS (mono mix) before encoding and the
decoded audio multiplied by it again; its convolutions use a group norm over the whole segment. We encode
and decode it in 1 s chunks (toolkit/codecs/chunking.py, 150 frames) and, with `normalize=True` (the
default for that model), carry the log of each chunk's scale as one extra latent channel (latent_dim 129):
decoding multiplies the output by exp(that channel), linearly interpolated between frames.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..optional import require
from ..registry import CODECS
from .framewise import ChunkedFrameCodec, check_construction, fit_length, seeded
from .loading import load_strict, read_state_dict

# The two published models (encodec/model.py: encodec_model_24khz / encodec_model_48khz).
PRESETS: dict[str, dict[str, Any]] = {
    "24khz": {"sample_rate": 24000, "channels": 1, "causal": True, "norm": "weight_norm", "normalize": False,
              "target_bandwidths": [1.5, 3.0, 6.0, 12.0, 24.0], "checkpoint": "encodec_24khz-d7cc33bc.th",
              # causal convs + LSTM: chunks of 20 s, 1 s dropped at inner edges (the LSTM's memory is unbounded
              # in principle; chunked output differs from whole-input output near seams only)
              "chunk_frames": 1500, "overlap_frames": 150},
    "48khz": {"sample_rate": 48000, "channels": 2, "causal": False, "norm": "time_group_norm", "normalize": True,
              "target_bandwidths": [3.0, 6.0, 12.0, 24.0], "checkpoint": "encodec_48khz-7e698e3e.th",
              # trained on 1 s segments with a group norm over each: 150-frame chunks, 4 frames dropped at seams
              "chunk_frames": 150, "overlap_frames": 8},
}
# SEANet arguments a custom (e.g. tiny test) configuration may change; defaults are EnCodec's.
ARCH_KEYS = ("dimension", "n_filters", "n_residual_layers", "ratios", "kernel_size", "last_kernel_size",
             "residual_kernel_size", "dilation_base", "compress", "true_skip", "lstm", "bins")
ARCH_DEFAULTS = {"dimension": 128, "n_filters": 32, "n_residual_layers": 1, "ratios": [8, 5, 4, 2], "bins": 1024}
SCALE_EPS = 1e-8  # EnCodec's: scale = 1e-8 + rms


@CODECS.register("encodec")
class EncodecCodec(ChunkedFrameCodec):
    """EnCodec (24 kHz mono / 48 kHz stereo): continuous 128-d encoder latents (optionally RVQ-quantised), hop 320.

    `model` picks the published configuration ("24khz": causal, 75 frames/s; "48khz": non-causal, 150 frames/s,
    per-segment loudness normalisation). Weights: `weights=PATH` (encodec_24khz-d7cc33bc.th /
    encodec_48khz-7e698e3e.th, loaded strictly), or `random_weights=True` (tests, speed benchmarks; the
    evaluation leaves quality blank). `arch={...}` changes SEANet sizes (n_filters, ratios, lstm, dimension,
    ...) for small random configurations. `quantize=True` passes the latent through the RVQ at `bandwidth`
    kbps (default: the model's highest) and back. Encode/decode run chunked (`chunk_frames`,
    `overlap_frames`); the codec is frozen.
    """

    def __init__(self, *, model: str = "24khz", weights: str | None = None, random_weights: bool = False,
                 sample_rate: int | None = None, channels: int | None = None, normalize: bool | None = None,
                 quantize: bool = False, bandwidth: float | None = None, arch: Mapping[str, Any] | None = None,
                 chunked: bool = True, chunk_frames: int | None = None, overlap_frames: int | None = None,
                 seed: int = 0):
        super().__init__()
        arch = check_construction("EnCodec", model, PRESETS, weights, random_weights,
                                  "https://dl.fbaipublicfiles.com/encodec/v0/"
                                  f"{PRESETS.get(model, {}).get('checkpoint')}",
                                  arch, ARCH_KEYS)
        preset = PRESETS[model]
        for key, wanted in (("sample_rate", sample_rate), ("channels", channels)):
            if wanted is not None and int(wanted) != preset[key] and not arch:
                raise ValueError(f"EnCodec {model} runs at {key}={preset[key]}, not {wanted}: pick the other model "
                                 f"(24khz: 24000 Hz mono, 48khz: 48000 Hz stereo) or resample / remix the audio "
                                 f"(toolkit.audio.load_audio does both)")
        self.model_name = model
        self.sample_rate = int(sample_rate if sample_rate is not None else preset["sample_rate"])
        self.channels = int(channels if channels is not None else preset["channels"])
        if not 1 <= self.channels <= 2:
            raise ValueError(f"EnCodec codes 1 or 2 channels, not {self.channels}")
        self.normalize = bool(preset["normalize"] if normalize is None else normalize)
        self.random_weights = bool(random_weights)
        self.model = _build_model(preset, arch, self.sample_rate, self.channels, seed=seed,
                                  random_codebooks=self.random_weights)
        self.hop_length = int(math.prod(self.model.encoder.ratios))
        self.embed_dim = int(self.model.encoder.dimension)
        self.latent_dim = self.embed_dim + (1 if self.normalize else 0)
        self.quantize = bool(quantize)
        bandwidths = list(preset["target_bandwidths"])
        self.bandwidth = float(bandwidth if bandwidth is not None else bandwidths[-1])
        if self.quantize and bandwidth is not None and not arch and self.bandwidth not in bandwidths:
            raise ValueError(f"EnCodec {model} was trained for bandwidths {bandwidths} kbps, not {bandwidth}")
        self.chunked = bool(chunked)
        self.chunk_frames = int(chunk_frames if chunk_frames is not None else preset["chunk_frames"])
        self.overlap_frames = int(overlap_frames if overlap_frames is not None else preset["overlap_frames"])
        if not 0 <= self.overlap_frames < self.chunk_frames:
            raise ValueError(f"need 0 <= overlap_frames < chunk_frames (got {self.overlap_frames}, "
                             f"{self.chunk_frames})")
        if weights:
            self.load_weights(weights)
        self.eval()
        self.requires_grad_(False)

    # -- weights -------------------------------------------------------------------------------------------------
    def load_weights(self, path: str | Path) -> None:
        """Load a published EnCodec state dict (or one saved from `self.model`) strictly."""
        state = read_state_dict(path)
        for prefix in ("model.",):  # a state dict of this codec rather than of the EnCodec model
            if state and all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
        n_q = sum(1 for k in state if k.endswith("._codebook.embed"))
        hint = (f"the file has {n_q} codebooks; this codec's model={self.model_name!r} has "
                f"{self.model.quantizer.n_q}. The 24 kHz checkpoint is encodec_24khz-d7cc33bc.th (model=24khz), "
                f"the 48 kHz one encodec_48khz-7e698e3e.th (model=48khz)")
        load_strict(self.model, state, source=f"EnCodec weights from {path}", hint=hint)

    # -- the networks on one chunk, channel-first ----------------------------------------------------------------
    def _encode_chunk(self, wav: torch.Tensor) -> torch.Tensor:
        """[B, C, n] (n a multiple of hop) -> [B, latent_dim, n / hop]."""
        scale = None
        if self.normalize:
            scale = wav.mean(dim=1, keepdim=True).pow(2).mean(dim=2, keepdim=True).sqrt() + SCALE_EPS  # [B, 1, 1]
            wav = wav / scale
        emb = self.model.encoder(wav)
        if self.quantize:
            q = self.model.quantizer
            codes = q.encode(emb, self.model.frame_rate, self.bandwidth)
            emb = q.decode(codes)
        if scale is not None:
            emb = torch.cat([emb, scale.log().expand(-1, 1, emb.shape[-1])], dim=1)
        return emb

    def _decode_chunk(self, z: torch.Tensor) -> torch.Tensor:
        """[B, latent_dim, t] -> [B, C, t * hop]."""
        out = self.model.decoder(z[:, :self.embed_dim])
        out = fit_length(out, z.shape[-1] * self.hop_length)
        if self.normalize:
            log_scale = z[:, self.embed_dim:self.embed_dim + 1]
            gain = F.interpolate(log_scale, size=out.shape[-1], mode="linear", align_corners=False).exp()
            out = out * gain
        return out


def _build_model(preset: Mapping[str, Any], arch: Mapping[str, Any], sample_rate: int, channels: int, *,
                 seed: int, random_codebooks: bool):
    """An EncodecModel as encodec/model.py builds it, with `arch` overrides; random init seeded."""
    encodec = require("encodec", "codecs", "the encodec codec")
    arch = {**ARCH_DEFAULTS, **arch}
    bins = int(arch.pop("bins"))
    seanet = {k: (list(v) if k == "ratios" else v) for k, v in arch.items()}
    seanet.update(channels=channels, norm=preset["norm"], causal=preset["causal"])
    with seeded(seed), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.nn.utils.weight_norm is deprecated (encodec uses it)
        encoder = encodec.modules.SEANetEncoder(**seanet)
        decoder = encodec.modules.SEANetDecoder(**seanet)
        hop = math.prod(encoder.ratios)
        # the number of codebooks for the highest bandwidth, as EncodecModel._get_model computes it
        n_q = int(1000 * preset["target_bandwidths"][-1] // (math.ceil(sample_rate / hop) * math.log2(bins)))
        quantizer = encodec.quantization.ResidualVectorQuantizer(dimension=encoder.dimension, n_q=max(1, n_q),
                                                                 bins=bins)
        model = encodec.EncodecModel(encoder, decoder, quantizer, list(preset["target_bandwidths"]), sample_rate,
                                     channels, normalize=False, segment=None)  # normalisation/segments are ours
        if random_codebooks:
            # k-means-initialised codebooks start at zero; give the random model usable random ones
            for layer in quantizer.vq.layers:
                book = layer._codebook
                book.embed.copy_(torch.randn_like(book.embed) * 0.1)
                book.embed_avg.copy_(book.embed)
                book.inited.fill_(1.0)
    return model.eval()


