"""Checking a Stable Audio request before any model is built: the CLI, request files and the web app share it."""

from __future__ import annotations

from typing import Any

from ...audio import AudioError, audio_duration, conversion_losses, load_audio
from ...io import describe_file
from ...registry import split_node
from ..requests import Checked, RequestError, RequestValidator, codec_geometry
from .planning import plan_frames, total_seconds
from .request import AudioRequest

# Sampling methods of each sampler the recipe runs on.
SAMPLER_METHODS = {"v_diffusion": ("dpmpp-3m-sde", "dpmpp-2m", "v-ddim"),
                   "rectified_flow": ("pingpong", "euler", "dpmpp")}


class AudioValidator(RequestValidator):
    """Checks AudioRequests for one stable_audio config (its codec geometry, window and sampler)."""

    def __init__(self, cfg: Any):
        super().__init__(cfg)
        geometry = codec_geometry(cfg["codec"])
        self.frame_rate = float(geometry["frame_rate"])
        self.sample_rate, self.channels = int(geometry["sample_rate"]), int(geometry["channels"])
        self.max_frames = int(cfg.get("max_frames", 1024))
        self.default_seconds = cfg.get("default_seconds")
        self.sampler, _ = split_node(cfg.get("sampler", "v_diffusion"), "sampler")

    def check(self, request: AudioRequest) -> Checked:
        request.check()
        methods = SAMPLER_METHODS.get(self.sampler)
        if request.sampler and methods is not None and request.sampler not in methods:
            raise RequestError(f"sampler {request.sampler!r} does not fit this model's {self.sampler} sampler; "
                               f"choose one of {', '.join(methods)}")
        frames = plan_frames(request, self.frame_rate, self.max_frames, self.default_seconds)
        total = total_seconds(request, self.default_seconds, self.max_frames, self.frame_rate)
        warnings = []
        if request.init_audio:
            duration = audio_duration(request.init_audio)
            if duration < 0.05:
                raise AudioError(f"{request.init_audio}: the init audio holds {duration:.3f} s of samples")
            if duration < frames / self.frame_rate:
                warnings.append(f"the init audio ({duration:.1f} s) is shorter than the output "
                                f"({frames / self.frame_rate:.1f} s): the rest starts from silence")
            wav, sr = load_audio(request.init_audio, duration=min(1.0, duration))
            losses = conversion_losses(sr, wav.shape[0], self.sample_rate, self.channels)
            if losses:
                warnings.append(f"the init audio {request.init_audio} is {sr} Hz with {wav.shape[0]} channel(s): "
                                f"the output starts from audio with {' and '.join(losses)}; give it at "
                                f"{self.sample_rate} Hz with {self.channels} channel(s) for full quality")
        tags = {"PROMPT": request.prompt or "", "SECONDS_START": f"{request.seconds_start:g}",
                "SECONDS_TOTAL": f"{total:g}"}
        if request.negative_prompt:
            tags["NEGATIVE_PROMPT"] = request.negative_prompt
        if request.init_audio:
            tags["INIT_AUDIO"] = describe_file(request.init_audio)
        # the manifest keeps the prompt even when it was dropped: evaluation compares the audio with it
        record = {"style": {"audio": None, "text": request.prompt}, "seconds_start": request.seconds_start,
                  "seconds_total": total}
        return Checked(request, warnings, None, tags, record=record)
