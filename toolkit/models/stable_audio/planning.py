"""How long an output is: Stable Audio's own planning, needing no model (the recipe and the validation use it)."""

from __future__ import annotations

from ..requests import RequestError
from .request import AudioRequest

FRAME_EPS = 1e-6  # 3.4 s - 3.0 s is 0.3999... s: a length computed in seconds still gets its whole frames


def total_seconds(request: AudioRequest, default_seconds: float | None, max_frames: int, frame_rate: float) -> float:
    """seconds_total as given, else seconds_start + the model's default length (its whole window without one)."""
    if request.seconds_total is not None:
        return float(request.seconds_total)
    return float(request.seconds_start) + float(default_seconds or max_frames / frame_rate)


def plan_frames(request: AudioRequest, frame_rate: float, max_frames: int, default_seconds: float | None) -> int:
    """Latent frames of the output [seconds_start, seconds_total], checked against the model's window."""
    seconds = total_seconds(request, default_seconds, max_frames, frame_rate) - float(request.seconds_start)
    frames = int(seconds * frame_rate + FRAME_EPS)
    if frames > max_frames:
        raise RequestError(f"the output [{request.seconds_start:g}, {seconds + request.seconds_start:g}] s would be "
                           f"{seconds:.1f} s but this model generates at most {max_frames / frame_rate:.1f} s "
                           f"({max_frames} frames); lower seconds_total or raise seconds_start")
    if frames < 1:
        raise RequestError("the output [seconds_start, seconds_total] is shorter than one latent frame")
    return frames
