"""The embedded default speech set: short English sentences voiced offline by espeak-ng, at 24 kHz.

Every utterance is `<id>.wav` (mono, 24 kHz, peak -3 dBFS) with its transcript `<id>.txt` beside it, the
layout `toolkit.bin.prepare` reads (the transcript becomes the manifest's `lyrics`). Speakers are espeak-ng
voice variants, each saying every n-th sentence, so a held-out sentence of a speaker can be prompted with
another of the same speaker. Nothing is downloaded; espeak-ng is a Debian package (`make install`).
Voicing is deterministic: a rebuild gives identical files.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

SAMPLE_RATE = 24000
SENTENCES = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It is easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
    "The small pup gnawed a hole in the sock.",
    "The fish twisted and turned on the bent hook.",
    "Press the pants and sew a button on the vest.",
    "The swan dive was far short of perfect.",
    "The beauty of the view stunned the young boy.",
    "Two blue fish swam in the tank.",
    "Her purse was full of useless trash.",
    "The colt reared and threw the tall rider.",
    "It snowed, rained, and hailed the same morning.",
    "Read verse out loud for pleasure.",
    "Hoist the load to your left shoulder.",
    "Take the winding path to reach the lake.",
)
VOICES = ("en-us+m3", "en-us+f2")


class SpeechSetError(RuntimeError):
    """The speech set cannot be built (espeak-ng missing or failing)."""


@dataclass
class Utterance:
    id: str
    text: str
    voice: str
    seconds: float


def espeak_binary() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        raise SpeechSetError("espeak-ng is not installed: `apt-get install espeak-ng` (or `make install`)")
    return path


def voice(text: str, voice_name: str, words_per_minute: int = 150, timeout: float = 30.0) -> torch.Tensor:
    """One sentence -> mono waveform [1, N] at 24 kHz (espeak-ng renders 22.05 kHz; resampled)."""
    from ..audio import load_audio

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "u.wav"
        cmd = [espeak_binary(), "-v", voice_name, "-s", str(words_per_minute), "-w", str(out), text]
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=timeout)
        except subprocess.CalledProcessError as err:
            raise SpeechSetError(f"espeak-ng failed for voice {voice_name!r}: "
                                 f"{err.stderr.decode(errors='replace')}") from err
        except subprocess.TimeoutExpired:
            raise SpeechSetError(f"espeak-ng took longer than {timeout} s for one sentence") from None
        wav, _ = load_audio(out, SAMPLE_RATE, 1)
    peak = wav.abs().max()
    return wav if peak == 0 else wav * (10 ** (-3 / 20) / peak)


def build_speech_set(out_dir: str | Path, num_utterances: int = len(SENTENCES), voices: tuple[str, ...] = VOICES,
                     words_per_minute: int = 150) -> list[Utterance]:
    """Write `num_utterances` sentences (voices taking turns) as wav + txt, and a manifest.jsonl listing them."""
    from ..audio import save_audio
    from ..io import atomic_write_text

    if not 1 <= num_utterances <= len(SENTENCES):
        raise ValueError(f"num_utterances must be in 1..{len(SENTENCES)}, got {num_utterances}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    utterances = []
    for i, text in enumerate(SENTENCES[:num_utterances]):
        speaker = voices[i % len(voices)]
        uid = f"{speaker.replace('+', '_').replace('-', '')}_{i:03d}"
        wav_path = out / f"{uid}.wav"
        if not wav_path.is_file():
            wav = voice(text, speaker, words_per_minute)
            save_audio(wav_path, wav, SAMPLE_RATE)
        atomic_write_text(out / f"{uid}.txt", text + "\n")
        from ..audio import audio_duration

        utterances.append(Utterance(uid, text, speaker, audio_duration(wav_path)))
    atomic_write_text(out / "manifest.jsonl", "".join(
        json.dumps({"id": u.id, "path": f"{u.id}.wav", "text": u.text, "voice": u.voice,
                    "seconds": round(u.seconds, 3)})
        + "\n" for u in utterances))
    return utterances
