"""Checking a song request before any model is built: the CLI, request files and the web app share it.

Errors (RequestError, AudioError, LrcError) say what is wrong and how to fix it; warnings are kept with the
request and go into the song's manifest. Lyrics never vanish silently: every line that will not be sung,
and why (after the song's end, the base model's end marker, nothing voiceable, cut to fit), is named.
"""

from __future__ import annotations

import math
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

from ...audio import AudioError, audio_duration, conversion_losses, is_silent, load_audio
from ...conditions import ConditionSet
from ...io import describe_file
from ...lrc import LrcLine, format_lrc, format_time, parse_lrc, plain_lines, time_evenly
from ...protocols import OUT_FRAME_IDS
from ..requests import Checked, LineNote, RequestError, RequestValidator, codec_geometry
from .planning import edit_mask, plan_frames
from .request import SongRequest

BASE_MAX_FRAMES = 2048  # the base model reads an LRC's last line as the end-of-song marker


def line_name(line: Any) -> str:
    text = line.text if len(line.text) <= 60 else line.text[:57] + "..."
    return f"[{format_time(line.time)}]{text}"


def line_note(r: Any, seconds: float) -> LineNote:
    """One lyric line's fate (a LinePlacement of the lyrics conditioner's report) as the web app shows it."""
    if r.status == "after_end":
        return LineNote("lrc", r.time, r.text, "warning", "after the end",
                        f"starts after the end of the {seconds:.1f} s song: not sung (raise the length or fix "
                        "the time)")
    if r.status == "end_marker":
        return LineNote("lrc", r.time, r.text, "warning" if r.text else "info", "end marker",
                        "the base model reads the last line as the end of the song: not sung"
                        + (" (add an empty final line to have it sung)" if r.text else ""))
    if r.status == "gap":
        return LineNote("lrc", r.time, r.text, "info", "gap", "no text: an instrumental gap")
    if r.status == "silent":
        script = f"{r.script} script" if r.script else "only punctuation or symbols"
        return LineNote("lrc", r.time, r.text, "warning", "not voiceable",
                        f"nothing the lyrics tokenizer can voice ({script}): not sung")
    if r.status == "cut":
        return LineNote("lrc", r.time, r.text, "warning", "cut",
                        f"{r.placed} of its {r.tokens} phoneme tokens fit before the next line or the song's end")
    return LineNote("lrc", r.time, r.text, "ok", "sung", f"{r.tokens} phoneme tokens")


class SongValidator(RequestValidator):
    """Checks SongRequests for one DiffRhythm config (its codec geometry, window, lyrics and style)."""

    def __init__(self, cfg: Any):
        super().__init__(cfg)
        geometry = codec_geometry(cfg["codec"])
        self.frame_rate = float(geometry["frame_rate"])
        self.sample_rate, self.channels = int(geometry["sample_rate"]), int(geometry["channels"])
        self.max_frames = int(cfg.get("max_frames", 2048))
        self.default_seconds = cfg.get("default_seconds")
        conditions = ConditionSet.for_codec(cfg["conditions"], SimpleNamespace(**geometry), self.max_frames)
        by_request = {spec.request: name for name, spec in conditions.specs.items()}
        self.lyrics = conditions[by_request["lyrics"]] if "lyrics" in by_request else None
        if self.lyrics is not None and self.lyrics.output_kind != OUT_FRAME_IDS:
            self.lyrics = None
        self.style = conditions[by_request["style"]] if "style" in by_request else None

    def check(self, request: SongRequest) -> Checked:
        request.check()
        warnings: list[str] = []
        if self.style is not None and not request.drop_conditions and not (request.style_text or request.style_audio):
            raise RequestError("give a style prompt: --style-text TEXT or --style-audio FILE")
        ref_frames = self.check_reference(request, warnings) if request.ref_song else None
        frames = plan_frames(request, self.frame_rate, self.max_frames, self.default_seconds, ref_frames)
        edit_mask(request, self.frame_rate, frames, ref_frames)
        seconds = frames / self.frame_rate
        lrc = self.timed_lyrics(request, seconds)
        notes: list[LineNote] = []
        sung_lrc = self.check_lyrics(lrc, frames, warnings, notes) if lrc else None
        if request.style_audio and not request.drop_conditions:
            self.check_style_audio(request.style_audio)
        if self.style is not None and not request.drop_conditions and not self.style.loads_weights:
            self.style.prepare({"audio": request.style_audio} if request.style_audio else {"text": request.style_text})
        tags = {"PROMPT": request.style_text or (describe_file(request.style_audio) if request.style_audio else "")}
        if request.ref_song:
            tags["REFERENCE"] = describe_file(request.ref_song)
        run = replace(request, lrc=None if request.instrumental else lrc, lyrics=None)
        # the manifest keeps the LRC even when it was dropped: evaluation compares the song with it
        return Checked(run, warnings, None if request.drop_conditions else sung_lrc, tags, record={"lrc": run.lrc},
                       notes=notes)

    # ------------------------------------------------------------------------------------------ lyrics
    def timed_lyrics(self, request: SongRequest, seconds: float) -> str | None:
        """The request's lyrics as an LRC: plain lyrics spread evenly (with the base model's end line)."""
        if request.instrumental or not (request.lrc or request.lyrics):
            return None
        if request.lrc:
            return request.lrc
        lines = plain_lines(request.lyrics)
        if not lines:
            raise RequestError("the plain lyrics hold no lyric lines (only blank lines or section labels)")
        timed = time_evenly(lines, 0.0, seconds)
        if self.max_frames == BASE_MAX_FRAMES:
            timed.append(LrcLine(math.floor((seconds - 0.01) * 100) / 100, ""))
        return format_lrc(timed)

    def check_lyrics(self, lrc: str, frames: int, warnings: list[str], notes: list[LineNote] | None = None) -> str:
        """Errors for lyrics nothing would sing, warnings for each line that is left out or cut, and (into `notes`)
        every line's fate; -> the LRC of the lines that are sung (what the synced-lyrics tag may show)."""
        seconds = frames / self.frame_rate
        parsed = parse_lrc(lrc).lines
        if not any(line.text for line in parsed):
            raise RequestError("the LRC has no timed lyric lines ([mm:ss.xx]text); for plain lyrics use --lyrics, "
                               "for no lyrics --instrumental")
        if self.lyrics is None:  # a config without a lyrics condition: the text is kept for the tags only
            return format_lrc([line for line in parsed if line.text and line.time < seconds])
        report = self.lyrics.report(lrc, frames)
        notes = [] if notes is None else notes
        notes += [line_note(r, seconds) for r in report]
        texts = [r for r in report if r.text]
        late = [r for r in texts if r.status == "after_end"]
        if len(late) == len(texts):
            raise RequestError(f"every lyric line starts after the end of the {seconds:.1f} s song (first: "
                               f"{line_name(late[0])}); no voice would sing them: raise --length or fix the "
                               "timestamps", notes)
        if late:
            warnings.append(f"{len(late)} lyric line(s) start after the end of the {seconds:.1f} s song and are not "
                            f"sung (first: {line_name(late[0])})")
        marker = [r for r in texts if r.status == "end_marker"]
        sung = [r for r in texts if r.sung]
        silent = [r for r in texts if r.status == "silent"]
        for r in silent:
            script = f"{r.script} script" if r.script else "only punctuation or symbols"
            warnings.append(f"lyric line {line_name(r)} has nothing the lyrics tokenizer can voice ({script}); it "
                            "is not sung")
        if not sung:
            if silent:
                raise RequestError("no lyric line has anything the lyrics tokenizer can voice (first: "
                                   f"{line_name(silent[0])}); romanise the lyrics, or ask for an instrumental song "
                                   "(--instrumental)", notes)
            raise RequestError("no lyric line is sung: this base model takes the LRC's last line as the end-of-song "
                               "marker; add a final timestamp line (e.g. an empty one) after the last lyric", notes)
        if marker:
            warnings.append(f"the last line {line_name(marker[0])} marks the end of the song for this base model and "
                            "is not sung; add an empty final line to have it sung")
        for r in sung:
            if r.status == "cut":
                warnings.append(f"lyric line {line_name(r)} is cut to fit: {r.placed} of its {r.tokens} phoneme "
                                f"tokens fit before the next line or the song's end ({r.tokens - r.placed} cut)")
        return format_lrc([LrcLine(r.time, r.text) for r in sung])

    # ------------------------------------------------------------------------------------------- audio
    @staticmethod
    def check_style_audio(path: str) -> None:
        from ...conditioners.style_common import load_middle_clip

        duration = audio_duration(path)
        if duration < 0.05:
            raise AudioError(f"{path}: the style audio holds {duration:.3f} s of samples (the file is empty or "
                             "truncated)")
        load_middle_clip(path, 16000, clip_seconds=10.0, min_seconds=1.0)  # unreadable, short, silent

    def check_reference(self, request: SongRequest, warnings: list[str]) -> int:
        """Frames the reference song gives (conservative), after checking it decodes and covers the edit spans;
        a song of another sample rate or channel count is converted, and `warnings` says what that loses."""
        path = request.ref_song
        duration = audio_duration(path)
        wav, sr = load_audio(path, offset=max(0.0, duration / 2 - 0.5), duration=min(1.0, duration))
        if wav.shape[-1] < 2:
            raise AudioError(f"{path}: the file is truncated (its header says {duration:.1f} s)")
        converted = self.conversion_note(path, sr, wav.shape[0])
        if converted:
            warnings.append(converted)
        if is_silent(load_audio(path)[0]):
            raise AudioError(f"{path}: the reference song is silent")
        for start, end in request.segments or []:
            if max(start, end) > duration:
                raise RequestError(f"the reference song {path} is {duration:.1f} s, shorter than the edit span "
                                   f"[{start:g}, {end:g}] s: give a longer song or an earlier span")
        return int(duration * self.frame_rate)

    def conversion_note(self, path: str, sample_rate: int, channels: int) -> str | None:
        """What converting a reference song to the codec's rate and channels loses in the spans that are kept."""
        losses = conversion_losses(sample_rate, channels, self.sample_rate, self.channels)
        if not losses:
            return None
        return (f"the reference song {path} is {sample_rate} Hz with {channels} channel(s): the song keeps "
                f"{' and '.join(losses)} where it is not regenerated; give the song at {self.sample_rate} Hz with "
                f"{self.channels} channel(s) for full quality")
