"""How long a song is and which of its frames are generated: DiffRhythm's own planning, needing no model
(the recipe and the request validation both use it)."""

from __future__ import annotations

import torch

from ..requests import RequestError
from .request import SongRequest


def frames_for(seconds: float, frame_rate: float) -> int:
    return int(seconds * frame_rate)


def plan_frames(request: SongRequest, frame_rate: float, max_frames: int, default_seconds: float | None,
                ref_frames: int | None = None) -> int:
    """Latent frames to generate, checked against the model's window (no model needed)."""
    if request.continue_seconds:
        frames = (ref_frames or 0) + frames_for(request.continue_seconds, frame_rate)
    elif request.length is not None:
        frames = frames_for(request.length, frame_rate)
    elif ref_frames is not None:
        frames = min(ref_frames, max_frames)
    else:
        frames = frames_for(default_seconds or max_frames / frame_rate, frame_rate)
    if frames > max_frames:
        raise RequestError(f"the song would be {frames / frame_rate:.1f} s but this model generates at most "
                           f"{max_frames / frame_rate:.1f} s ({max_frames} frames); ask for a shorter length")
    if frames < 1:
        raise RequestError("the requested length is shorter than one latent frame")
    return frames


def edit_mask(request: SongRequest, frame_rate: float, num_frames: int, ref_frames: int | None) -> torch.Tensor:
    """[T] bool, True where frames are generated."""
    mask = torch.ones(num_frames, dtype=torch.bool)
    if request.segments:
        if ref_frames is not None and ref_frames < num_frames:
            raise RequestError(f"the reference song is {ref_frames / frame_rate:.1f} s but the edited song is "
                               f"{num_frames / frame_rate:.1f} s: give a longer reference or a shorter length")
        mask[:] = False
        for start, end in request.segments:
            s = 0 if start == -1 else frames_for(start, frame_rate)
            e = num_frames if end == -1 else frames_for(end, frame_rate)
            mask[s:min(e, num_frames)] = True
    elif request.continue_seconds:
        mask[:ref_frames] = False
    return mask
