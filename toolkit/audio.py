"""Audio files in and out: load, resample, channel layout, silence, peak normalisation, atomic save.

Reading goes through soundfile (wav, flac, ogg, mp3 with libsndfile >= 1.1) and falls back to
torchcodec (FFmpeg) for what libsndfile cannot decode (m4a/aac and odd mp3s).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from .io import atomic_path

SAVE_FORMATS = {"wav": ("WAV", "FLOAT"), "flac": ("FLAC", "PCM_24"), "ogg": ("OGG", "VORBIS"),
                "mp3": ("MP3", "MPEG_LAYER_III")}
SILENCE_DB = -60.0


class AudioError(ValueError):
    """An audio file that is missing, unreadable, empty or unsuitable."""


def audio_duration(path: str | Path) -> float:
    """Duration in seconds, read from the header (no decoding)."""
    path = _existing(path)
    import mutagen
    import soundfile as sf

    try:
        return float(sf.info(str(path)).duration)
    except Exception:
        pass
    try:
        info = mutagen.File(str(path))
    except Exception as err:
        raise AudioError(f"{path}: cannot read the audio header ({err}); is the file corrupt?") from err
    if info is None or getattr(info, "info", None) is None or not getattr(info.info, "length", 0):
        raise AudioError(f"{path}: not a readable audio file (unknown format or corrupt header)")
    return float(info.info.length)


def load_audio(path: str | Path, sample_rate: int | None = None, channels: int | None = None,
               offset: float = 0.0, duration: float | None = None) -> tuple[torch.Tensor, int]:
    """Load [C, N] float32; optionally resample and set the channel count. Raises AudioError."""
    path = _existing(path)
    wav, sr = _read(path, offset, duration)
    if wav.numel() == 0 or wav.shape[-1] == 0:
        raise AudioError(f"{path}: the file holds no audio samples (empty or truncated)")
    if not torch.isfinite(wav).all():
        raise AudioError(f"{path}: the audio contains NaN or infinite samples (corrupt file)")
    if sample_rate is not None and sr != sample_rate:
        wav, sr = resample(wav, sr, sample_rate), sample_rate
    if channels is not None:
        wav = to_channels(wav, channels)
    return wav, sr


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"audio file not found: {path}")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: the file is empty (0 bytes)")
    return path


def _read(path: Path, offset: float, duration: float | None) -> tuple[torch.Tensor, int]:
    import soundfile as sf

    try:
        with sf.SoundFile(str(path)) as fh:
            sr = fh.samplerate
            start = int(round(offset * sr))
            frames = -1 if duration is None else int(round(duration * sr))
            if start:
                fh.seek(min(start, fh.frames))
            data = fh.read(frames, dtype="float32", always_2d=True)
        return torch.from_numpy(np.ascontiguousarray(data.T)), sr
    except Exception as sf_err:
        try:
            from torchcodec.decoders import AudioDecoder

            decoder = AudioDecoder(str(path))
            stop = None if duration is None else offset + duration
            samples = decoder.get_samples_played_in_range(offset, stop)
            return samples.data.float().contiguous(), int(samples.sample_rate)
        except Exception as ff_err:
            raise AudioError(
                f"{path}: cannot decode the audio (soundfile: {sf_err}; ffmpeg: {ff_err}); "
                "the file is corrupt or not an audio format") from ff_err


def resample(wav: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Band-limited resampling along the last axis (torchaudio's sinc interpolation)."""
    if orig_sr == new_sr:
        return wav
    import torchaudio.functional as AF

    return AF.resample(wav, orig_sr, new_sr)


def to_channels(wav: torch.Tensor, channels: int) -> torch.Tensor:
    """[C, N] -> [channels, N]: mono is duplicated, mono downmix averages, extra channels are dropped (as upstream)."""
    current = wav.shape[0]
    if current == channels:
        return wav
    if channels == 1:
        return wav.mean(0, keepdim=True)
    if current == 1:
        return wav.expand(channels, -1).clone()
    if current > channels:
        return wav[:channels].clone()
    raise AudioError(f"cannot turn {current}-channel audio into {channels} channels")


def conversion_losses(sample_rate: int, channels: int, target_rate: int, target_channels: int) -> list[str]:
    """What `resample` and `to_channels` cannot give back when audio of `sample_rate` / `channels` becomes
    `target_rate` / `target_channels`, as phrases ("nothing above 4 kHz"); empty when nothing is lost."""
    losses = []
    if sample_rate < target_rate:
        losses.append(f"nothing above {sample_rate / 2000:g} kHz")
    if 1 == channels < target_channels:
        losses.append(f"the same sound in all {target_channels} channels")
    if channels > target_channels > 1:
        losses.append(f"only {target_channels} of its {channels} channels")
    return losses


def rms_db(wav: torch.Tensor) -> float:
    rms = wav.double().pow(2).mean().sqrt().item()
    return 20.0 * np.log10(max(rms, 1e-12))


def is_silent(wav: torch.Tensor, threshold_db: float = SILENCE_DB) -> bool:
    return wav.numel() == 0 or rms_db(wav) < threshold_db


def peak_normalize(wav: torch.Tensor, peak_db: float = -1.0) -> torch.Tensor:
    """Scale so the largest absolute sample sits at `peak_db` dBFS (never clips)."""
    peak = wav.abs().max()
    if peak <= 0:
        return wav
    return wav * (10.0 ** (peak_db / 20.0) / peak)


def middle_start(duration: float, clip_seconds: float) -> float:
    """Upstream DiffRhythm's start of the style clip: floor(duration / 2) - clip / 2 (seconds), never < 0.

    Upstream computes `audio_len // 2 - 5` for a 10 s clip, i.e. the floor of half the duration (a whole
    second); a song of at least `clip_seconds` always gets a full clip inside it.
    """
    return max(0.0, math.floor(duration / 2.0) - clip_seconds / 2.0)


def fit_level(wav: torch.Tensor, *, peak_db: float | None = None, gain: float = 1.0,
              ceiling_db: float = -1.0) -> tuple[torch.Tensor, str]:
    """The output level of generated audio -> (audio, what was done).

    peak_db: peak-normalise to it. Otherwise the audio is scaled by `gain` (1: as generated; an edit passes
    the inverse of the gain its reference was encoded with, so the kept part keeps its level) and lowered
    as a whole only if its peak would pass `ceiling_db`, so nothing ever clips.
    """
    if peak_db is not None:
        return peak_normalize(wav, peak_db), f"peak-normalised to {peak_db:g} dBFS"
    wav = wav * gain
    peak = float(wav.abs().max()) if wav.numel() else 0.0
    ceiling = 10.0 ** (ceiling_db / 20.0)
    if peak > ceiling:
        lowered = 20.0 * math.log10(peak / ceiling)
        return wav * (ceiling / peak), f"lowered by {lowered:.2f} dB so its peak stays at {ceiling_db:g} dBFS"
    return wav, "level kept" if gain == 1.0 else f"level kept (gain {20.0 * math.log10(gain):+.2f} dB)"


def save_audio(path: str | Path, wav: torch.Tensor, sample_rate: int, format: str | None = None) -> Path:
    """Write [C, N] audio atomically: float32 WAV, 24-bit FLAC, Vorbis OGG or MP3 (by suffix or `format`)."""
    import soundfile as sf

    path = Path(path)
    fmt = (format or path.suffix.lstrip(".")).lower()
    if fmt not in SAVE_FORMATS:
        raise AudioError(f"cannot write '{fmt}' audio; choose one of {', '.join(SAVE_FORMATS)}")
    container, subtype = SAVE_FORMATS[fmt]
    data = wav.detach().float().cpu().clamp(-1.0, 1.0).numpy().T
    with atomic_path(path) as tmp:
        sf.write(str(tmp), data, sample_rate, format=container, subtype=subtype)
    return path
