"""What a user asks DiffRhythm for; its fields declare the options every front end offers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...objectives.samplers import METHODS
from ..requests import RequestError, option


@dataclass
class SongRequest:
    """One song (or a batch of variations of it).

    lrc: time-stamped lyrics text; lyrics: plain lyrics, timed automatically; instrumental: no lyrics.
    style_audio / style_text: the style prompt (one of them). length: seconds. ref_song + segments: edit the
    frames inside the segments ([start, end] seconds; -1 = song start / end) and keep the rest;
    continue_seconds: extend ref_song by that many seconds. drop_conditions: lyrics and style dropped and
    guidance off (the unconditional model; evaluation uses it to show that the conditions matter).
    conditions: values of further conditions a config adds, by their `request` names. extra: notes that only
    the manifest records (the evaluation reads a control's group there).
    """

    lrc: str | None = field(default=None, metadata=option(
        "time-stamped lyrics ([mm:ss.xx]line)", kind="text_file", flag="--lrc", group="lyrics (one of)",
        metavar="FILE", editor="lrc"))
    lyrics: str | None = field(default=None, metadata=option(
        "plain lyrics, one line per line; timed evenly over the song", kind="text_file", group="lyrics (one of)",
        metavar="FILE", fills="lrc", fill_label="time evenly"))
    instrumental: bool = field(default=False, metadata=option("no lyrics", kind="flag", group="lyrics (one of)"))
    style_text: str | None = field(default=None, metadata=option(
        'a text prompt, e.g. "folk, acoustic guitar, touching"', group="style (one of)", metavar="TEXT"))
    style_audio: str | None = field(default=None, metadata=option(
        "a reference song (a 10 s clip from its middle is used)", kind="path", group="style (one of)",
        metavar="FILE"))
    length: float | None = field(default=None, metadata=option(
        "song length in seconds (default: the model's default)", kind="float", metavar="SECONDS"))
    steps: int | None = field(default=None, metadata=option(
        "ODE updates (upstream's 32-point grid is 31 updates)", kind="int"))
    cfg: float | None = field(default=None, metadata=option(
        "classifier-free guidance strength (0: off)", kind="float", metavar="STRENGTH"))
    sway: float | None = field(default=None, metadata=option(
        "sway sampling coefficient (e.g. -1)", kind="float", metavar="COEF"))
    solver: str | None = field(default=None, metadata=option(
        "ODE solver: euler, midpoint (2 evaluations per update) or dpmpp (multistep, 1 per update)", kind="choice",
        choices=METHODS))
    seed: int | None = field(default=None, metadata=option(
        "random seed (default: a fresh one, written to the manifest); item i of a batch uses seed + i", kind="int"))
    batch: int = field(default=1, metadata=option("songs per request (all saved)", kind="int", metavar="N"))
    ref_song: str | None = field(default=None, metadata=option(
        "the song to edit or continue", kind="path", group="editing and continuation", metavar="FILE", tab="edit"))
    segments: list[tuple[float, float]] | None = field(default=None, metadata=option(
        'spans to regenerate, in seconds: "[[10,20],[45,-1]]" or "10:20,45:-1" (-1 = start/end)', kind="spans",
        group="editing and continuation", metavar="SPANS", tab="edit"))
    continue_seconds: float | None = field(default=None, metadata=option(
        "extend --ref-song by this many seconds", kind="float", flag="--continue", group="editing and continuation",
        metavar="SECONDS", aliases=("continue",), tab="edit"))
    title: str | None = field(default=None, metadata=option("song title (tags and file name)", group="output"))
    drop_conditions: bool = field(default=False, metadata=option(
        "generate with lyrics and style dropped and no guidance (the unconditional model)", kind="flag"))
    conditions: dict[str, Any] = field(default_factory=dict, metadata=option(
        "a value of a further condition the model's config adds (repeatable)", kind="mapping", flag="--condition",
        metavar="NAME=VALUE"))
    extra: dict[str, Any] = field(default_factory=dict, metadata=option(
        "notes recorded in the manifest and nowhere else, e.g. an evaluation group (repeatable)", kind="mapping",
        group="output", metavar="NAME=VALUE"))

    def check(self) -> SongRequest:
        """What can be checked without the model or the config."""
        given = [n for n in ("lrc", "lyrics") if getattr(self, n)]
        if len(given) > 1:
            raise RequestError("give either time-stamped lyrics (lrc) or plain lyrics, not both")
        if self.instrumental and given:
            raise RequestError("an instrumental song takes no lyrics: drop --instrumental or the lyrics")
        if self.lrc is not None and not self.lrc.strip() and not self.instrumental:
            raise RequestError("the LRC is empty: give lyrics, or ask for an instrumental song (--instrumental)")
        if self.lyrics is not None and not self.lyrics.strip():
            raise RequestError("the plain lyrics are empty: give lyrics, or ask for an instrumental song "
                               "(--instrumental)")
        if not self.drop_conditions and not (self.lrc or self.lyrics or self.instrumental):
            raise RequestError("give lyrics (--lrc FILE or --lyrics FILE) or ask for an instrumental song "
                               "(--instrumental)")
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
        for name in ("conditions", "extra"):
            if not isinstance(getattr(self, name), dict):
                raise RequestError(f"{name} must be a mapping of name -> value, not {getattr(self, name)!r}")
        return self
