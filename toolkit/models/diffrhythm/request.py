"""What a user asks DiffRhythm for, checked before any heavy work starts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


class RequestError(ValueError):
    """A generation request that cannot be served; the message says what to change."""


@dataclass
class SongRequest:
    """One song (or a batch of variations of it).

    lrc: time-stamped lyrics text; lyrics: plain lyrics, timed automatically; instrumental: no lyrics.
    style_audio / style_text: the style prompt (one of them; a recipe whose style conditioner needs no
    prompt accepts neither). length: seconds. ref_song + segments: edit the frames inside the
    segments ([start, end] seconds; -1 = song start / end) and keep the rest; continue_seconds: extend
    ref_song by that many seconds (the reference is kept, the new part generated).
    drop_conditions: generate with lyrics and style dropped and guidance off (the unconditional model;
    evaluation uses it to show that the conditions matter).
    """

    lrc: str | None = None
    lyrics: str | None = None
    instrumental: bool = False
    style_audio: str | None = None
    style_text: str | None = None
    length: float | None = None
    steps: int | None = None
    cfg: float | None = None
    sway: float | None = None
    solver: str | None = None
    seed: int = 0
    batch: int = 1
    ref_song: str | None = None
    segments: list[tuple[float, float]] | None = None
    continue_seconds: float | None = None
    title: str | None = None
    drop_conditions: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def check(self) -> "SongRequest":
        given = [n for n in ("lrc", "lyrics") if getattr(self, n)]
        if len(given) > 1:
            raise RequestError("give either time-stamped lyrics (lrc) or plain lyrics, not both")
        if self.instrumental and given:
            raise RequestError("an instrumental song takes no lyrics: drop --instrumental or the lyrics")
        if self.lrc is not None and not self.lrc.strip() and not self.instrumental:
            raise RequestError("the LRC is empty: give lyrics, or ask for an instrumental song (--instrumental)")
        if self.style_audio and self.style_text:
            raise RequestError("give one style prompt: a reference clip (style_audio) or a text (style_text)")
        if self.style_audio and not Path(self.style_audio).is_file():
            raise RequestError(f"style audio not found: {self.style_audio}")
        if self.length is not None and not self.length > 0:
            raise RequestError(f"length must be a positive number of seconds, got {self.length}")
        if self.steps is not None and self.steps < 1:
            raise RequestError(f"steps must be at least 1, got {self.steps}")
        if self.cfg is not None and self.cfg < 0:
            raise RequestError(f"cfg (guidance strength) must be >= 0, got {self.cfg}")
        if self.batch < 1:
            raise RequestError(f"batch must be at least 1, got {self.batch}")
        if (self.segments or self.continue_seconds) and not self.ref_song:
            raise RequestError("editing (segments) and continuation need a reference song (ref_song)")
        if self.segments and self.continue_seconds:
            raise RequestError("edit segments and continuation are separate modes: give one")
        if self.ref_song and not Path(self.ref_song).is_file():
            raise RequestError(f"reference song not found: {self.ref_song}")
        if self.ref_song and not (self.segments or self.continue_seconds):
            raise RequestError("a reference song needs edit segments or a continuation length")
        for seg in self.segments or []:
            if len(seg) != 2:
                raise RequestError(f"an edit segment is [start, end] in seconds, got {seg}")
            start, end = seg
            if start != -1 and end != -1 and not start < end:
                raise RequestError(f"edit segment {list(seg)} must start before it ends")
        if self.continue_seconds is not None and not self.continue_seconds > 0:
            raise RequestError(f"continue_seconds must be positive, got {self.continue_seconds}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SongRequest":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise RequestError(f"unknown request field(s) {unknown}; known: {sorted(known)}")
        return cls(**data)
