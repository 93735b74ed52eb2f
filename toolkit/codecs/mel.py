"""The `mel` codec: log-mel frames as latents, decoded by Griffin-Lim (no weights) or a local Vocos.

Latents: per-channel log-mels stacked along the feature axis, latent_dim = n_mels * channels (channel 0's
mels first), then normalised z = (logmel - latent_mean) / latent_std (numbers, or one per mel band shared by the
channels: music's low bands vary with the notes, its high bands mostly with the instruments, and per-band
statistics weigh them alike). Frames follow the centred STFT:
N samples give N // hop + 1 frames, and T frames decode to T * hop samples (as Vocos does).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..protocols import Codec
from ..registry import CODECS
from .griffin_lim import griffin_lim, mel_to_linear
from .mel_features import LogMelFeatures

# Log-mel statistics of music (fluidsynth-rendered Bach chorales peak-normalised to -6 dBFS, 44.1 kHz,
# n_fft 2048, hop 512, 128 mels, floor 1e-5): mean -1.05, std 3.10 over all bins and frames. The defaults
# map such latents to roughly zero mean and unit scale; set latent_mean=0, latent_std=1 for raw log-mels
# (F5-TTS trains on those).
DEFAULT_LATENT_MEAN = -1.0
DEFAULT_LATENT_STD = 3.0
VOCODERS = ("griffin_lim", "vocos")


@CODECS.register("mel")
class MelCodec(Codec):
    """Log-mel frames (F5-TTS / Vocos numerics), mono or stereo, decoded by Griffin-Lim or a local Vocos.

    Defaults are F5-TTS's (24 kHz mono, n_fft 1024, hop 256, 100 mels, log floor 1e-5). With
    `vocoder="vocos"` and `vocoder_path` (a directory with config.yaml + pytorch_model.bin or
    model.safetensors), the mel settings come from the Vocos config and must not contradict it.
    Griffin-Lim needs no weights and works at any rate and channel count (e.g. 44.1 kHz stereo songs).
    """

    def __init__(self, *, sample_rate: int | None = None, channels: int = 1, n_fft: int | None = None,
                 hop_length: int | None = None, win_length: int | None = None, n_mels: int | None = None,
                 f_min: float = 0.0, f_max: float | None = None, log_floor: float = 1e-5,
                 vocoder: str = "griffin_lim", vocoder_path: str | None = None, griffin_lim_iters: int = 64,
                 griffin_lim_momentum: float = 0.99, griffin_lim_seed: int = 0,
                 latent_mean: float | Sequence[float] = DEFAULT_LATENT_MEAN,
                 latent_std: float | Sequence[float] = DEFAULT_LATENT_STD):
        super().__init__()
        if vocoder not in VOCODERS:
            raise ValueError(f"unknown vocoder {vocoder!r}; choose one of {', '.join(VOCODERS)}")
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        settings = {"sample_rate": sample_rate, "n_fft": n_fft, "hop_length": hop_length, "n_mels": n_mels}
        self.vocos = None
        if vocoder == "vocos":
            if not vocoder_path:
                raise ValueError("vocoder='vocos' needs vocoder_path: a local directory with config.yaml and "
                                 "pytorch_model.bin or model.safetensors (e.g. charactr/vocos-mel-24khz)")
            from .vocos import Vocos

            self.vocos = Vocos.from_pretrained(vocoder_path)
            self.vocos.requires_grad_(False)
            fe = self.vocos.feature_extractor
            theirs = {"sample_rate": fe.sample_rate, "n_fft": fe.n_fft, "hop_length": fe.hop_length,
                      "n_mels": fe.n_mels}
            clash = {k: (v, theirs[k]) for k, v in settings.items() if v is not None and v != theirs[k]}
            if clash:
                raise ValueError(f"mel settings contradict the Vocos config at {vocoder_path}: "
                                 + ", ".join(f"{k}={a} (vocos: {b})" for k, (a, b) in clash.items()))
            settings = theirs
        defaults = {"sample_rate": 24000, "n_fft": 1024, "hop_length": 256, "n_mels": 100}
        settings = {k: (v if v is not None else defaults[k]) for k, v in settings.items()}
        self.features = LogMelFeatures(win_length=win_length, f_min=f_min, f_max=f_max, log_floor=log_floor,
                                       **settings)
        self.sample_rate, self.hop_length = int(settings["sample_rate"]), int(settings["hop_length"])
        self.channels, self.n_mels = int(channels), int(settings["n_mels"])
        self.latent_dim = self.n_mels * self.channels
        self.vocoder = vocoder
        self.griffin_lim_iters, self.griffin_lim_momentum = int(griffin_lim_iters), float(griffin_lim_momentum)
        self.griffin_lim_seed = int(griffin_lim_seed)
        self.latent_mean, self.latent_std = self._stat(latent_mean, "latent_mean"), self._stat(latent_std, "latent_std")
        std = self.latent_std
        if not (std > 0 if isinstance(std, float) else bool((std > 0).all())):
            raise ValueError(f"latent_std must be positive, got {latent_std}")
        self.eval()

    def _stat(self, value: float | Sequence[float], name: str) -> float | torch.Tensor:
        """A number, or one value per mel band -> [C * M] in the latents' channel-major order."""
        if isinstance(value, (int, float)):
            return float(value)
        values = torch.tensor([float(v) for v in value], dtype=torch.float32, device="cpu")  # also under meta
        if values.shape != (self.n_mels,):
            raise ValueError(f"{name} must be a number or {self.n_mels} numbers (one per mel band), got "
                             f"{values.numel()}")
        return values.repeat(self.channels)

    def _as(self, stat: float | torch.Tensor, like: torch.Tensor) -> float | torch.Tensor:
        return stat if isinstance(stat, float) else stat.to(device=like.device, dtype=like.dtype)

    def log_mel(self, wav: torch.Tensor) -> torch.Tensor:
        """[B, C, N] -> raw log-mels [B, C, n_mels, N//hop + 1]."""
        return self.features(wav)

    @torch.no_grad()
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """[B, C, N] -> [B, N//hop + 1, n_mels * C] (normalised)."""
        if wav.dim() != 3 or wav.shape[1] != self.channels:
            raise ValueError(f"expected audio [batch, {self.channels}, samples], got {tuple(wav.shape)}")
        mel = self.log_mel(wav.to(self.features.mel_spec.mel_scale.fb.dtype))  # [B, C, M, T]
        z = mel.flatten(1, 2).transpose(1, 2)                       # [B, T, C*M], channel-major
        return (z - self._as(self.latent_mean, z)) / self._as(self.latent_std, z)

    def latents_to_log_mel(self, z: torch.Tensor) -> torch.Tensor:
        """[B, T, C*M] normalised latents -> raw log-mels [B, C, M, T]."""
        if z.dim() != 3 or z.shape[-1] != self.latent_dim:
            raise ValueError(f"expected latents [batch, frames, {self.latent_dim}], got {tuple(z.shape)}")
        z = z.to(self.features.mel_spec.mel_scale.fb.dtype)
        mel = z * self._as(self.latent_std, z) + self._as(self.latent_mean, z)
        return mel.transpose(1, 2).reshape(z.shape[0], self.channels, self.n_mels, z.shape[1])

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """[B, T, C*M] -> [B, C, T*hop]."""
        mel = self.latents_to_log_mel(z)
        b, c, m, t = mel.shape
        flat = mel.reshape(b * c, m, t)
        if self.vocos is not None:
            wav = self.vocos.decode(flat)
        else:
            spec = self.features.mel_spec.spectrogram
            linear = mel_to_linear(flat.exp(), self.features.mel_spec.mel_scale.fb)
            wav = griffin_lim(linear, spec.n_fft, spec.hop_length, spec.win_length, spec.window,
                              n_iter=self.griffin_lim_iters, momentum=self.griffin_lim_momentum,
                              seed=self.griffin_lim_seed)
        n = t * self.hop_length
        wav = F.pad(wav, (0, max(0, n - wav.shape[-1])))[..., :n]
        return wav.reshape(b, c, n)
