"""Vocos (mel -> waveform vocoder): ConvNeXt backbone + ISTFT head, keys as in vocos' checkpoints.

Vocos.from_pretrained(DIR) reads DIR/config.yaml (vocos' hparams schema: feature_extractor / backbone /
head with class_path + init_args) and DIR/pytorch_model.bin or DIR/model.safetensors (or a given file),
strictly. Only the mel variant exists here (MelSpectrogramFeatures + VocosBackbone + ISTFTHead), e.g.
charactr/vocos-mel-24khz, which F5-TTS uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .loading import load_strict, read_state_dict
from .mel_features import LogMelFeatures

VOCOS_LOG_FLOOR = 1e-7  # vocos' safe_log; F5-TTS computes its mels with 1e-5


class ISTFT(nn.Module):
    """Inverse STFT. 'same': windowed irfft, overlap-add, trim (win-hop)//2 per side, divide by the summed
    squared window -> exactly T*hop samples. 'center': torch.istft(center=True) -> (T-1)*hop samples."""

    def __init__(self, n_fft: int, hop_length: int, win_length: int, padding: str = "same"):
        super().__init__()
        if padding not in ("same", "center"):
            raise ValueError(f"ISTFT padding must be 'same' or 'center', got {padding!r}")
        self.n_fft, self.hop_length, self.win_length, self.padding = n_fft, hop_length, win_length, padding
        self.register_buffer("window", torch.hann_window(win_length, periodic=True))

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """[B, n_fft//2+1, T] complex -> [B, samples]."""
        if self.padding == "center":
            return torch.istft(spec, self.n_fft, self.hop_length, self.win_length, self.window, center=True)
        if self.win_length != self.n_fft:
            raise ValueError("ISTFT padding 'same' needs win_length == n_fft")
        pad = (self.win_length - self.hop_length) // 2
        frames = spec.shape[-1]
        ifft = torch.fft.irfft(spec, self.n_fft, dim=1, norm="backward") * self.window[None, :, None]
        out_len = (frames - 1) * self.hop_length + self.win_length
        fold = dict(output_size=(1, out_len), kernel_size=(1, self.win_length), stride=(1, self.hop_length))
        y = F.fold(ifft, **fold)[:, 0, 0, pad:out_len - pad]
        env = self.window.square().expand(1, frames, -1).transpose(1, 2)
        env = F.fold(env, **fold)[0, 0, 0, pad:out_len - pad]
        if not torch.all(env > 1e-11):
            raise ValueError("the ISTFT window envelope has zeros: hop_length too large for the window")
        return y / env


class ISTFTHead(nn.Module):
    """Linear(dim, n_fft+2) -> log-magnitude || phase -> ISTFT."""

    def __init__(self, dim: int, n_fft: int, hop_length: int, padding: str = "same"):
        super().__init__()
        self.out = nn.Linear(dim, n_fft + 2)
        self.istft = ISTFT(n_fft, hop_length, n_fft, padding)

    def spectrum(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, dim] -> complex [B, n_fft//2+1, T]."""
        mag, phase = self.out(x).transpose(1, 2).chunk(2, dim=1)
        mag = torch.exp(mag).clip(max=1e2)  # clip guards against exploding magnitudes
        return mag * (torch.cos(phase) + 1j * torch.sin(phase))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.istft(self.spectrum(x))


class ConvNeXtBlock(nn.Module):
    """dwconv k7 -> LayerNorm -> Linear -> GELU -> Linear -> * gamma, + residual (no GRN)."""

    def __init__(self, dim: int, intermediate_dim: int, layer_scale_init_value: float | None):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.gamma = (nn.Parameter(torch.full((dim,), float(layer_scale_init_value)))
                      if layer_scale_init_value and layer_scale_init_value > 0 else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).transpose(1, 2)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        if self.gamma is not None:
            y = self.gamma * y
        return x + y.transpose(1, 2)


class VocosBackbone(nn.Module):
    """[B, input_channels, T] -> [B, T, dim]: embed conv k7 -> LN -> ConvNeXt blocks -> final LN."""

    def __init__(self, input_channels: int, dim: int, intermediate_dim: int, num_layers: int,
                 layer_scale_init_value: float | None = None, adanorm_num_embeddings: int | None = None):
        super().__init__()
        if adanorm_num_embeddings is not None:
            raise NotImplementedError("Vocos' AdaLayerNorm (adanorm_num_embeddings) is not implemented; "
                                      "the mel checkpoints do not use it")
        self.embed = nn.Conv1d(input_channels, dim, kernel_size=7, padding=3)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        scale = layer_scale_init_value if layer_scale_init_value is not None else 1 / num_layers
        self.convnext = nn.ModuleList([ConvNeXtBlock(dim, intermediate_dim, scale) for _ in range(num_layers)])
        self.final_layer_norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.embed(x).transpose(1, 2)).transpose(1, 2)
        for block in self.convnext:
            x = block(x)
        return self.final_layer_norm(x.transpose(1, 2))


_KNOWN = {"feature_extractor": "MelSpectrogramFeatures", "backbone": "VocosBackbone", "head": "ISTFTHead"}


class Vocos(nn.Module):
    """Vocos mel vocoder: feature_extractor (log-mel, floor 1e-7) + backbone + ISTFT head."""

    def __init__(self, feature_extractor: Mapping[str, Any], backbone: Mapping[str, Any], head: Mapping[str, Any]):
        super().__init__()
        fe = dict(feature_extractor)
        padding = fe.pop("padding", "center")
        if padding != "center":
            raise NotImplementedError(f"mel feature padding {padding!r} is not implemented (only 'center')")
        self.feature_extractor = LogMelFeatures(
            sample_rate=fe["sample_rate"], n_fft=fe.get("n_fft", 1024), hop_length=fe.get("hop_length", 256),
            n_mels=fe.get("n_mels", 100), log_floor=VOCOS_LOG_FLOOR)
        self.backbone = VocosBackbone(**backbone)
        self.head = ISTFTHead(**head)
        self.sample_rate = int(fe["sample_rate"])
        self.hop_length = self.head.istft.hop_length
        self.n_mels = self.feature_extractor.n_mels

    @classmethod
    def from_hparams(cls, config: str | Path | Mapping[str, Any]) -> Vocos:
        """Build from vocos' config.yaml (path or parsed mapping); random weights."""
        if not isinstance(config, Mapping):
            import yaml

            config = yaml.safe_load(Path(config).read_text())
        parts = {}
        for part, class_name in _KNOWN.items():
            node = config.get(part)
            if node is None:
                raise ValueError(f"Vocos config lacks '{part}'")
            found = str(node.get("class_path", class_name)).rsplit(".", 1)[-1]
            if found != class_name:
                raise NotImplementedError(f"Vocos {part} {found} is not supported (only {class_name}: the mel Vocos)")
            parts[part] = dict(node.get("init_args", {}))
        return cls(**parts)

    @classmethod
    def from_pretrained(cls, path: str | Path, weights: str | Path | None = None) -> Vocos:
        """A local Vocos: a directory with config.yaml and pytorch_model.bin / model.safetensors."""
        path = Path(path)
        directory = path if path.is_dir() else path.parent
        config = directory / "config.yaml"
        if not config.is_file():
            raise FileNotFoundError(f"Vocos config {config} is missing (download e.g. charactr/vocos-mel-24khz "
                                    f"config.yaml and pytorch_model.bin into {directory})")
        if weights is None:
            if path.is_file():
                weights = path
            else:
                found = [directory / n for n in ("pytorch_model.bin", "model.safetensors") if (directory / n).is_file()]
                if not found:
                    raise FileNotFoundError(f"no pytorch_model.bin or model.safetensors in {directory}")
                weights = found[0]
        model = cls.from_hparams(config)
        load_strict(model, read_state_dict(weights), source=f"Vocos weights from {weights}")
        return model.eval()

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        """Log-mel [B, n_mels, T] -> audio [B, T*hop] ('same' head)."""
        return self.head(self.backbone(features))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.decode(self.feature_extractor(audio))
