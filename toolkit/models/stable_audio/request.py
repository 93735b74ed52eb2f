"""What a user asks Stable Audio for; its fields declare the options every front end offers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..requests import RequestError, option

METHODS = ("dpmpp-3m-sde", "dpmpp-2m", "v-ddim", "pingpong", "euler", "dpmpp")  # v_diffusion's, then rectified_flow's


@dataclass
class AudioRequest:
    """One piece of audio (or a batch of variations of it) from a text prompt and its timing.

    The output covers [seconds_start, seconds_total] of a piece seconds_total long (stable-audio-tools' timing
    conditions; diffusers calls them audio_start_in_s / audio_end_in_s). init_audio + init_noise_level: a
    variation of an existing clip (noised to that level, then denoised). drop_conditions: prompt dropped and
    guidance off (the unconditional model; evaluation uses it to show that the prompt matters). conditions:
    values of further conditions a config adds, by their `request` names.
    """

    prompt: str | None = field(default=None, metadata=option(
        'what to make, e.g. "baroque chorale, organ, 84 BPM, major key"', group="prompt", metavar="TEXT"))
    negative_prompt: str | None = field(default=None, metadata=option(
        "what to steer away from (guidance's unconditional half gets it instead of nothing)", group="prompt",
        metavar="TEXT"))
    seconds_start: float = field(default=0.0, metadata=option(
        "where the output starts in the piece, in seconds (a timing condition)", kind="float", group="timing",
        metavar="SECONDS"))
    seconds_total: float | None = field(default=None, metadata=option(
        "the piece's length in seconds; the output ends there (default: the model's default length)", kind="float",
        group="timing", metavar="SECONDS"))
    steps: int | None = field(default=None, metadata=option("sampler steps (network calls)", kind="int"))
    cfg: float | None = field(default=None, metadata=option(
        "classifier-free guidance scale (1: off; Stable Audio Open 1.0 uses 7)", kind="float", metavar="SCALE"))
    cfg_rescale: float | None = field(default=None, metadata=option(
        "guidance rescale amount phi in [0, 1] (0: off)", kind="float", metavar="PHI"))
    sampler: str | None = field(default=None, metadata=option(
        "sampling method (v models: dpmpp-3m-sde, dpmpp-2m, v-ddim; rectified-flow models: pingpong, euler, dpmpp)",
        kind="choice", choices=METHODS))
    seed: int | None = field(default=None, metadata=option(
        "random seed (default: a fresh one, written to the manifest); item i of a batch uses seed + i", kind="int"))
    batch: int = field(default=1, metadata=option("outputs per request (all saved)", kind="int", metavar="N"))
    init_audio: str | None = field(default=None, metadata=option(
        "a clip to make a variation of", kind="path", group="variation", metavar="FILE"))
    init_noise_level: float | None = field(default=None, metadata=option(
        "how far init_audio is noised before denoising, in (0, 1] (default 0.7; 1 keeps nothing of it)",
        kind="float", group="variation", metavar="LEVEL"))
    title: str | None = field(default=None, metadata=option("title (tags and file name)", group="output"))
    drop_conditions: bool = field(default=False, metadata=option(
        "generate with the prompt dropped and no guidance (the unconditional model)", kind="flag"))
    conditions: dict[str, Any] = field(default_factory=dict, metadata=option(
        "a value of a further condition the model's config adds (repeatable)", kind="mapping", flag="--condition",
        metavar="NAME=VALUE"))

    def check(self) -> AudioRequest:
        """What can be checked without the model or the config."""
        if not self.drop_conditions and not (self.prompt and self.prompt.strip()):
            raise RequestError('give a text prompt (--prompt "...")')
        if self.seconds_start is None or not self.seconds_start >= 0:
            raise RequestError(f"seconds_start must be >= 0 seconds, got {self.seconds_start}")
        if self.seconds_total is not None and not self.seconds_total > self.seconds_start:
            raise RequestError(f"seconds_total ({self.seconds_total}) must be greater than seconds_start "
                               f"({self.seconds_start}): the output covers [seconds_start, seconds_total]")
        if self.steps is not None and self.steps < 1:
            raise RequestError(f"steps must be at least 1, got {self.steps}")
        if self.cfg is not None and self.cfg < 0:
            raise RequestError(f"cfg (guidance scale) must be >= 0, got {self.cfg}")
        if self.cfg_rescale is not None and not 0 <= self.cfg_rescale <= 1:
            raise RequestError(f"cfg_rescale must be in [0, 1], got {self.cfg_rescale}")
        if self.batch < 1:
            raise RequestError(f"batch must be at least 1, got {self.batch}")
        if self.init_noise_level is not None and not self.init_audio:
            raise RequestError("init_noise_level applies to a variation: give init_audio too")
        if self.init_noise_level is not None and not 0 < self.init_noise_level <= 1:
            raise RequestError(f"init_noise_level must be in (0, 1], got {self.init_noise_level}")
        if self.init_audio and not Path(self.init_audio).is_file():
            raise RequestError(f"init audio not found: {self.init_audio}")
        if not isinstance(self.conditions, dict):
            raise RequestError(f"conditions must be a mapping of name -> value, not {self.conditions!r}")
        return self
