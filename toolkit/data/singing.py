"""A monotone-robot singer: espeak-ng voices each syllable at a flat pitch, librosa fits it to the note.

espeak's `-p` pitch is relative and its intonation moves, but a voice *variant* file with
`pitch F F` (base = top) gives a flat tone near F Hz. The tone sits ~9 Hz below F, so each pitch
is calibrated once: synthesise a vowel, measure its f0 with librosa.pyin and correct F.
A syllable is voiced once per pitch of its notes; the voiced nucleus is time-stretched (phase
vocoder, which keeps the pitch) to fill the notes while the consonants keep their natural length;
a syllable sung over several notes (a melisma) switches between the per-pitch renderings at the
note boundaries with short cross-fades.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io import atomic_write_text

ESPEAK = "espeak-ng"
ESPEAK_RATE = 22050  # espeak-ng always synthesises at 22.05 kHz
_PUNCT = re.compile(r"[^\w'’-]+", re.UNICODE)


class SingerError(RuntimeError):
    """espeak-ng is missing or failed."""


def midi_to_hz(pitch: float) -> float:
    return 440.0 * 2.0 ** ((pitch - 69) / 12.0)


def cents(f: np.ndarray | float, ref: np.ndarray | float) -> np.ndarray:
    return 1200.0 * np.log2(np.asarray(f, dtype=np.float64) / np.asarray(ref, dtype=np.float64))


def espeak_data_dir() -> Path:
    """The installed espeak-ng-data folder (as reported by `espeak-ng --version`)."""
    if shutil.which(ESPEAK) is None:
        raise SingerError("espeak-ng is not installed: `apt-get install espeak-ng` (or run `make install`)")
    out = subprocess.run([ESPEAK, "--version"], capture_output=True, text=True, timeout=30).stdout
    match = re.search(r"Data at:\s*(\S+)", out)
    if not match or not Path(match.group(1)).is_dir():
        raise SingerError(f"cannot locate espeak-ng-data from `espeak-ng --version`: {out.strip()!r}")
    return Path(match.group(1))


def singable(text: str) -> str:
    """A lyric syllable as espeak should say it: no punctuation or hyphens, lower case (so that an
    all-caps word such as HERR is read as a word, not spelled out)."""
    return _PUNCT.sub(" ", text.replace("’", "'")).replace("-", " ").replace("'", "").strip().lower()


@dataclass(frozen=True)
class SungSyllable:
    """One syllable held over one or more notes (more than one = a melisma)."""

    onset: float                 # seconds
    text: str
    pitches: tuple[int, ...]     # MIDI note numbers
    durations: tuple[float, ...]  # seconds, one per pitch


class EspeakSinger:
    """Sings syllables at exact pitches with espeak-ng; output is mono float32 at `sample_rate`.

    Not thread-safe; make one per process. `calibration_file` caches the measured espeak pitch
    for each MIDI note (safe to share between processes: writes are atomic and deterministic).
    """

    def __init__(self, language: str = "de", gender: str = "female", sample_rate: int = 44100,
                 calibration_file: str | Path | None = None, gap: float = 0.04):
        self.language = language
        self.gender = gender
        self.sample_rate = sample_rate
        self.gap = gap
        self.calibration_file = Path(calibration_file) if calibration_file else None
        self._root = Path(tempfile.mkdtemp(prefix="toolkit-espeak-"))
        self._variants = self._make_data_dir()
        self._calibration: dict[int, int] = self._read_calibration()
        self._lock = threading.Lock()

    # -- espeak plumbing -------------------------------------------------------------------
    def _make_data_dir(self) -> Path:
        """A private espeak-ng-data: links to the installed files plus a folder for our variants."""
        src = espeak_data_dir()
        data = self._root / "espeak-ng-data"
        data.mkdir()
        for entry in src.iterdir():
            if entry.name != "voices":
                os.symlink(entry, data / entry.name)
        variants = data / "voices" / "!v"
        variants.mkdir(parents=True)
        return variants

    def close(self) -> None:
        shutil.rmtree(self._root, ignore_errors=True)

    def __del__(self):  # best effort; the folder is small
        try:
            self.close()
        except Exception:
            pass

    def _variant(self, hz: int) -> str:
        name = f"flat{hz}"
        path = self._variants / name
        if not path.exists():
            path.write_text(f"language variant\nname {name}\ngender {self.gender}\n"
                            f"pitch {hz} {hz}\nflutter 0\n", encoding="utf-8")
        return name

    def synth(self, text: str, espeak_hz: int) -> np.ndarray:
        """espeak-ng's rendering of `text` on a flat pitch setting; float32 at 22.05 kHz."""
        import soundfile as sf

        out = self._root / "out.wav"
        cmd = [ESPEAK, f"--path={self._root}", "-v", f"{self.language}+{self._variant(espeak_hz)}",
               "-w", str(out), "--", text]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired as err:
            raise SingerError(f"espeak-ng timed out on {text!r}") from err
        if proc.returncode != 0 or not out.exists():
            raise SingerError(f"espeak-ng failed on {text!r}: {proc.stderr.strip()}")
        wav, sr = sf.read(str(out), dtype="float32")
        assert sr == ESPEAK_RATE, sr
        return wav if wav.ndim == 1 else wav.mean(1)

    # -- pitch calibration -----------------------------------------------------------------
    def _read_calibration(self) -> dict[int, int]:
        if self.calibration_file and self.calibration_file.is_file():
            try:
                data = json.loads(self.calibration_file.read_text())
                if data.get("language") == self.language and data.get("gender") == self.gender:
                    return {int(k): int(v) for k, v in data["espeak_hz"].items()}
            except (ValueError, KeyError):
                pass
        return {}

    def _write_calibration(self) -> None:
        if self.calibration_file is None:
            return
        merged = self._read_calibration()
        merged.update(self._calibration)
        atomic_write_text(self.calibration_file, json.dumps(
            {"language": self.language, "gender": self.gender,
             "espeak_hz": {str(k): v for k, v in sorted(merged.items())}}, indent=1) + "\n")

    def measure_f0(self, wav: np.ndarray, sr: int, around_hz: float) -> float:
        """Median f0 (Hz) of the voiced frames, searched within an octave of `around_hz`."""
        import librosa
        f0, voiced, _ = librosa.pyin(wav, fmin=around_hz / 2, fmax=around_hz * 2, sr=sr,
                                     frame_length=2048 if sr <= 24000 else 4096)
        f0 = f0[voiced & np.isfinite(f0)]
        return float(np.median(f0)) if f0.size else float("nan")

    def espeak_pitch(self, pitch: int) -> int:
        """The `pitch F F` setting whose tone is closest to MIDI `pitch` (measured once, cached)."""
        if pitch in self._calibration:
            return self._calibration[pitch]
        target = midi_to_hz(pitch)
        setting = int(round(target + 9.0))  # espeak's tone sits ~9 Hz below the setting
        for _ in range(3):
            measured = self.measure_f0(self.synth("a", setting), ESPEAK_RATE, target)
            if not math.isfinite(measured):
                break
            error = target - measured
            if abs(error) < 0.5:
                break
            setting = int(round(setting + error))
        self._calibration[pitch] = setting
        self._write_calibration()
        return setting

    # -- singing -------------------------------------------------------------------------------
    def sing_syllable(self, text: str, pitches: Sequence[int], durations: Sequence[float]) -> tuple[np.ndarray, int]:
        """One syllable over its notes -> (mono audio at `sample_rate`, samples of lead-in consonant).

        The audio lasts sum(durations) (minus a short breath gap) plus the lead-in, which the caller
        places before the note onset so that the vowel starts on the beat.
        """
        import librosa
        word = singable(text) or "a"
        sr = ESPEAK_RATE
        total = sum(durations)
        sung = max(total - min(self.gap, 0.2 * total), 0.05)
        renders = [librosa.effects.trim(self.synth(word, self.espeak_pitch(p)), top_db=40)[0] for p in pitches]
        first = renders[0]
        onset, nucleus_end = _nucleus(first, sr)
        lead = min(onset, int(0.08 * sr))  # consonants sung before the beat (at most 80 ms)
        target = int(round(sung * sr)) + lead
        # Every rendering is the same phonemes at another pitch, with (nearly) the same timing.
        fitted = [_fit_length(r, target, sr, librosa) for r in renders]
        out = fitted[0]
        if len(pitches) > 1:
            bounds = lead + np.round(np.cumsum(durations)[:-1] * sr).astype(int)
            out = _switch(fitted, bounds, int(0.015 * sr))
        out = _fade(out, int(0.005 * sr), int(0.03 * sr))
        rms = math.sqrt(float(np.mean(out ** 2)) + 1e-12)
        out = out * (0.1 / rms)
        return _resample(out, sr, self.sample_rate), int(round(lead * self.sample_rate / sr))

    def sing(self, syllables: Sequence[SungSyllable], total_seconds: float) -> np.ndarray:
        """Place every syllable at its onset in a mono track of `total_seconds`."""
        n = int(round(total_seconds * self.sample_rate))
        track = np.zeros(n, dtype=np.float32)
        for syl in syllables:
            audio, lead = self.sing_syllable(syl.text, syl.pitches, syl.durations)
            start = int(round(syl.onset * self.sample_rate)) - lead
            if start < 0:
                audio, start = audio[-start:], 0
            stop = min(n, start + len(audio))
            if stop > start:
                track[start:stop] += audio[: stop - start]
        return track


def _frame_rms(wav: np.ndarray, hop: int) -> np.ndarray:
    frames = len(wav) // hop
    if frames == 0:
        return np.zeros(1)
    return np.sqrt(np.mean(wav[: frames * hop].reshape(frames, hop) ** 2, axis=1))


def _nucleus(wav: np.ndarray, sr: int) -> tuple[int, int]:
    """[start, end) samples of the loudest sustained part (the vowel), by frame energy."""
    hop = int(0.01 * sr)
    rms = _frame_rms(wav, hop)
    loud = rms > 0.3 * rms.max() if rms.max() > 0 else np.ones_like(rms, dtype=bool)
    best, run_start, best_span = (0, len(rms)), None, -1
    for i, flag in enumerate(list(loud) + [False]):
        if flag and run_start is None:
            run_start = i
        elif not flag and run_start is not None:
            if i - run_start > best_span:
                best, best_span = (run_start, i), i - run_start
            run_start = None
    return best[0] * hop, min(len(wav), best[1] * hop)


def _fit_length(wav: np.ndarray, target: int, sr: int, librosa) -> np.ndarray:
    """Stretch the vowel (consonants kept) or, when the notes are too short, the whole syllable."""
    start, end = _nucleus(wav, sr)
    head, vowel, tail = wav[:start], wav[start:end], wav[end:]
    room = target - len(head) - len(tail)
    if len(vowel) >= 2048 and room >= 0.4 * target:
        vowel = librosa.effects.time_stretch(vowel, rate=len(vowel) / room)
        out = np.concatenate([head, librosa.util.fix_length(vowel, size=room), tail])
    else:
        out = librosa.effects.time_stretch(wav, rate=len(wav) / target) if len(wav) >= 2048 else wav
    return librosa.util.fix_length(out.astype(np.float32), size=target)


def _switch(renders: list[np.ndarray], bounds: np.ndarray, fade: int) -> np.ndarray:
    """Take rendering k between bounds[k-1] and bounds[k], cross-fading at each boundary."""
    n = len(renders[0])
    weights = np.zeros((len(renders), n), dtype=np.float32)
    edges = [0, *[int(b) for b in bounds], n]
    for k in range(len(renders)):
        weights[k, edges[k]:edges[k + 1]] = 1.0
    if fade > 1:
        kernel = np.ones(fade, dtype=np.float32) / fade
        weights = np.stack([np.convolve(w, kernel, mode="same") for w in weights])
        weights /= np.maximum(weights.sum(0, keepdims=True), 1e-6)
    return np.sum(weights * np.stack(renders), axis=0).astype(np.float32)


def _fade(wav: np.ndarray, fade_in: int, fade_out: int) -> np.ndarray:
    wav = wav.copy()
    fade_in, fade_out = min(fade_in, len(wav) // 2), min(fade_out, len(wav) // 2)
    if fade_in:
        wav[:fade_in] *= np.linspace(0, 1, fade_in, dtype=np.float32)
    if fade_out:
        wav[-fade_out:] *= np.linspace(1, 0, fade_out, dtype=np.float32)
    return wav


def _resample(wav: np.ndarray, sr: int, new_sr: int) -> np.ndarray:
    if sr == new_sr:
        return wav.astype(np.float32)
    from scipy.signal import resample_poly

    g = math.gcd(sr, new_sr)
    return resample_poly(wav, new_sr // g, sr // g).astype(np.float32)
