"""Render notes to audio with fluidsynth and a General MIDI soundfont (via a minimal MIDI file).

The notes are already in seconds (tempo and fermatas applied by the caller), so the MIDI file is
written at a fixed 120 bpm with 960 ticks per second. fluidsynth always runs under a timeout: a
stuck note on a looped instrument renders forever.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SOUNDFONTS = (  # smallest first: TimGM6mb is 6 MB and renders fastest
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/default.sf2",
)
TICKS_PER_QUARTER = 480
TEMPO_US = 500_000  # 120 bpm -> 960 ticks per second
TICKS_PER_SECOND = TICKS_PER_QUARTER * 1_000_000 // TEMPO_US


class RenderError(RuntimeError):
    """fluidsynth or the soundfont is missing, or rendering failed or timed out."""


@dataclass(frozen=True)
class Voice:
    """One MIDI channel: a GM program playing (onset s, duration s, pitch) notes."""

    program: int
    notes: Sequence[tuple[float, float, int]]
    velocity: int = 80
    pan: int = 64      # 0 left .. 127 right
    volume: int = 100  # CC7
    reverb: int = 40   # CC91


def find_soundfont(path: str | Path | None = None) -> Path:
    candidates = [path] if path else SOUNDFONTS
    for cand in candidates:
        if cand and Path(cand).is_file():
            return Path(cand)
    raise RenderError(f"no General MIDI soundfont found (looked for {', '.join(map(str, candidates))}); "
                      "install one: `apt-get install timgm6mb-soundfont` (or pass --soundfont)")


def _varlen(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    return bytes(reversed(out))


def midi_bytes(voices: Sequence[Voice], end_seconds: float) -> bytes:
    """A format-0 Standard MIDI File holding every voice on its own channel (at most 16)."""
    if len(voices) > 16:
        raise ValueError("at most 16 voices (MIDI channels)")
    events: list[tuple[int, int, bytes]] = []  # (tick, order, message); note-offs sort first
    for ch, voice in enumerate(voices):
        ch = ch if ch < 9 else ch + 1  # channel 10 (index 9) is percussion
        events += [(0, 1, bytes([0xC0 | ch, voice.program])),
                   (0, 1, bytes([0xB0 | ch, 7, voice.volume])),
                   (0, 1, bytes([0xB0 | ch, 10, voice.pan])),
                   (0, 1, bytes([0xB0 | ch, 91, voice.reverb]))]
        for onset, duration, pitch in voice.notes:
            on = int(round(onset * TICKS_PER_SECOND))
            off = max(on + 1, int(round((onset + duration) * TICKS_PER_SECOND)))
            events.append((on, 2, bytes([0x90 | ch, pitch, voice.velocity])))
            events.append((off, 0, bytes([0x80 | ch, pitch, 0])))
    events.sort(key=lambda e: (e[0], e[1]))
    track = bytearray(b"\x00\xff\x51\x03" + TEMPO_US.to_bytes(3, "big"))
    last = 0
    for tick, _, message in events:
        track += _varlen(tick - last) + message
        last = tick
    end = max(last, int(round(end_seconds * TICKS_PER_SECOND)))
    track += _varlen(end - last) + b"\xff\x2f\x00"
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, TICKS_PER_QUARTER)
    return header + b"MTrk" + struct.pack(">I", len(track)) + bytes(track)


def render(voices: Sequence[Voice], seconds: float, sample_rate: int = 44100, soundfont: str | Path | None = None,
           gain: float = 0.5, timeout: float | None = None) -> np.ndarray:
    """Render to float32 [2, round(seconds * sample_rate)] (fluidsynth's output cut or padded)."""
    import soundfile as sf

    if shutil.which("fluidsynth") is None:
        raise RenderError("fluidsynth is not installed: `apt-get install fluidsynth` (or run `make install`)")
    font = find_soundfont(soundfont)
    timeout = timeout if timeout is not None else 30.0 + 2.0 * seconds
    with tempfile.TemporaryDirectory(prefix="toolkit-fluid-") as tmp:
        mid, wav = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        mid.write_bytes(midi_bytes(voices, seconds))
        cmd = ["fluidsynth", "-ni", "-q", "-g", str(gain), "-r", str(sample_rate), "-T", "wav",
               "-F", str(wav), str(font), str(mid)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as err:
            raise RenderError(f"fluidsynth did not finish within {timeout:.0f} s (stuck note?)") from err
        if proc.returncode != 0 or not wav.exists():
            raise RenderError(f"fluidsynth failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        data, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    if sr != sample_rate:
        raise RenderError(f"fluidsynth wrote {sr} Hz instead of {sample_rate} Hz")
    data = data.T
    if data.shape[0] == 1:
        data = np.repeat(data, 2, axis=0)
    n = int(round(seconds * sample_rate))
    out = np.zeros((2, n), dtype=np.float32)
    m = min(n, data.shape[1])
    out[:, :m] = data[:2, :m]
    return out
