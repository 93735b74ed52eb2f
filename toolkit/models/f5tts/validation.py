"""Checking a speech request before any model is built (the CLI, request files and the web app share it): the
reference clip must hold a voice, and what the model will not hear of it is said."""

from __future__ import annotations

from typing import Any

from ...audio import AudioError, audio_duration, conversion_losses, is_silent, load_audio
from ..requests import Checked, RequestValidator, codec_geometry

MAX_REF_SECONDS = 12.0  # upstream clips the voice prompt to 12 s


class SpeechValidator(RequestValidator):
    """Checks SpeechRequests for one F5-TTS config (its codec's rate and channels, the prompt's length limit)."""

    def __init__(self, cfg: Any):
        super().__init__(cfg)
        geometry = codec_geometry(cfg["codec"])
        self.sample_rate, self.channels = int(geometry["sample_rate"]), int(geometry["channels"])
        self.max_ref_seconds = float(cfg.get("max_ref_seconds", MAX_REF_SECONDS))

    def check(self, request: Any) -> Checked:
        request.check()
        warnings = self.check_reference(request.ref_audio) if request.ref_audio else []
        return Checked(request, warnings)

    def check_reference(self, path: str) -> list[str]:
        """Errors for a clip without a voice in the part that is used; warnings for what is cut or lost."""
        duration = audio_duration(path)
        if duration < 0.05:
            raise AudioError(f"{path}: the reference clip holds {duration:.3f} s of samples (the file is empty or "
                             "truncated)")
        used = min(duration, self.max_ref_seconds)
        wav, sr = load_audio(path, duration=used)
        if is_silent(wav):
            raise AudioError(f"{path}: the reference clip is silent in its first {used:.1f} s, so there is no voice "
                             "to clone; give a clip of the speaker talking")
        warnings = []
        if duration > self.max_ref_seconds:
            warnings.append(f"the reference clip {path} is {duration:.1f} s; only its first {self.max_ref_seconds:g} "
                            "s are the voice prompt, so its transcript (ref_text) must be what is said in them: "
                            "cut the clip to a sentence or two and give that sentence's transcript")
        losses = conversion_losses(sr, wav.shape[0], self.sample_rate, self.channels)
        if losses:
            warnings.append(f"the reference clip {path} is {sr} Hz: the voice prompt has {' and '.join(losses)}, "
                            f"and the new speech imitates it; give the clip at {self.sample_rate} Hz or more for "
                            "full quality")
        return warnings
