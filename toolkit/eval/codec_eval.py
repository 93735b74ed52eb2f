"""Encode and decode a folder of audio with registered codecs; reconstruction figures, speed and memory.

Per codec: each file is loaded at the codec's sample rate and channel count, encoded and decoded
(timed separately), and compared with the input (mono mixes, trimmed to the shorter length):
SI-SDR, multi-resolution STFT distance, mel distance, STOI, wideband PESQ, MCD. Speed is given as
real-time factors (processing seconds per audio second, < 1 is faster than real time); memory is the
process's peak RSS while the codec runs (includes the interpreter, torch and the codec's weights).
A codec with random weights (`random_weights` attribute, or named in `random_weights=`) is timed but
its quality columns are left blank: the figures of a random decoder say nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .aggregate import NAN_NOTE, summarise, with_counts
from .codec_metrics import QUALITY_FIGURES, reconstruction_figures
from .manifests import AUDIO_SUFFIXES
from .memory import peak_rss_mb, reset_peak
from .tables import markdown_table, write_json

JSON_NAME = "codec_evaluation.json"
MARKDOWN_NAME = "codec_evaluation.md"
RANDOM_LABEL = "random weights"
COLUMNS = (("si_sdr", "SI-SDR dB"), ("stft_distance", "MR-STFT dist."), ("mel_distance", "mel dist."),
           ("stoi", "STOI"), ("pesq_wb", "PESQ-WB"), ("mcd", "MCD dB"), ("encode_rtf", "encode RTF"),
           ("decode_rtf", "decode RTF"), ("peak_rss_mb", "peak MiB"))


def codec_label(node: Any) -> str:
    from ..registry import split_node

    name, kwargs = split_node(node, "codec")
    if not kwargs:
        return name
    return name + "(" + ", ".join(f"{k}={v}" for k, v in sorted(kwargs.items())) + ")"


def audio_files(folder: str | os.PathLike, max_files: int | None = None) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"--audio-dir: folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise FileNotFoundError(f"--audio-dir: no audio files ({', '.join(AUDIO_SUFFIXES)}) under {folder}")
    return files[:max_files] if max_files else files


def evaluate_codec(codec: Any, files: Sequence[Path], label: str, random_weights: bool = False,
                   max_seconds: float | None = None, save_dir: Path | None = None, log=print) -> dict[str, Any]:
    """One codec over `files` -> {"codec", "label", "random_weights", figures..., "files": [...]}."""
    import torch

    from ..audio import load_audio, save_audio

    random_weights = bool(random_weights or getattr(codec, "random_weights", False))
    sr, channels = int(codec.sample_rate), int(codec.channels)
    per_file: list[dict[str, Any]] = []
    total_audio = total_encode = total_decode = 0.0
    reset_peak()
    for path in files:
        wav, _ = load_audio(path, sample_rate=sr, channels=channels, duration=max_seconds)
        seconds = wav.shape[-1] / sr
        with torch.no_grad():
            t0 = time.perf_counter()
            z = codec.encode(wav[None])
            t1 = time.perf_counter()
            out = codec.decode(z)
            t2 = time.perf_counter()
        out = out[0].detach().float().cpu()
        row: dict[str, Any] = {"file": str(path), "seconds": seconds, "frames": int(z.shape[1]),
                               "encode_rtf": (t1 - t0) / seconds, "decode_rtf": (t2 - t1) / seconds}
        if not random_weights:
            row.update(reconstruction_figures(wav.numpy(), out.numpy(), sr))
        if save_dir is not None:
            save_audio(save_dir / f"{path.stem}.wav", out, sr)
        per_file.append(row)
        total_audio += seconds
        total_encode += t1 - t0
        total_decode += t2 - t1
        log(f"{label}: {path.name} encode RTF {row['encode_rtf']:.3f}, decode RTF {row['decode_rtf']:.3f}")
    result: dict[str, Any] = {"label": label + (f" ({RANDOM_LABEL})" if random_weights else ""),
                              "codec": label, "random_weights": random_weights, "sample_rate": sr,
                              "channels": channels, "files": per_file, "audio_seconds": total_audio,
                              "encode_rtf": total_encode / total_audio, "decode_rtf": total_decode / total_audio,
                              "peak_rss_mb": peak_rss_mb()}
    result["n"], result["nan"] = {}, {}
    for key in QUALITY_FIGURES:
        if random_weights:
            result[key] = None
            continue
        # a figure a file could not get (PESQ finding no utterance: NaN) is counted beside the mean, not hidden
        counts = summarise(r.get(key, float("nan")) for r in per_file)
        result[key], result["n"][key], result["nan"][key] = counts["mean"], counts["n"], counts["nan"]
    return result


def evaluate_codecs(nodes: Iterable[Any], audio_dir: str | os.PathLike, out_dir: str | os.PathLike,
                    random_weight_names: Iterable[str] = (), max_files: int | None = None,
                    max_seconds: float | None = None, save_audio: bool = True, log=print) -> dict[str, Any]:
    """Every codec node over the folder; writes codec_evaluation.json / .md (and decoded audio) into out_dir."""
    from ..registry import CODECS, split_node
    from .machine import machine_info

    out_dir = Path(out_dir)
    files = audio_files(audio_dir, max_files)
    marked = set(random_weight_names)
    rows = []
    seen: dict[str, int] = {}
    for node in nodes:
        label = codec_label(node)
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:  # the same codec twice (e.g. to check timing noise): keep the rows apart
            label = f"{label}#{seen[label]}"
        name, _ = split_node(node, "codec")
        codec = CODECS.build(node)
        if hasattr(codec, "eval"):
            codec.eval()
        save_dir = out_dir / "audio" / _safe(label) if save_audio else None
        rows.append(evaluate_codec(codec, files, label, random_weights=name in marked or label in marked,
                                   max_seconds=max_seconds, save_dir=save_dir, log=log))
        del codec
    doc = {"kind": "codecs", "audio_dir": str(audio_dir), "files": [str(f) for f in files],
           "max_seconds": max_seconds, "codecs": rows, "machine": machine_info(),
           "decoded_audio": str(out_dir / "audio") if save_audio else None}
    write_json(out_dir / JSON_NAME, doc)
    from ..io import atomic_write_text

    atomic_write_text(out_dir / MARKDOWN_NAME, codec_markdown(doc))
    return doc


def codec_table(doc: dict[str, Any]) -> str:
    """One row per codec; each quality mean carries its file count and NaN count."""
    def cell(row: dict[str, Any], key: str) -> Any:
        if key in QUALITY_FIGURES and key in (row.get("n") or {}):
            return with_counts(row.get(key), row["n"][key], row["nan"][key])
        return row.get(key)

    return markdown_table(["codec"] + [t for _, t in COLUMNS],
                          [[r["label"]] + [cell(r, k) for k, _ in COLUMNS] for r in doc["codecs"]])


def codec_markdown(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    lines = ["# Codec evaluation", "",
             f"{len(doc['files'])} files from `{doc['audio_dir']}`"
             + (f" (first {doc['max_seconds']} s of each)" if doc.get("max_seconds") else "")
             + f"; {m.get('cpu_count')} CPUs, {m.get('torch_threads')} torch threads, torch {m.get('torch')}.", "",
             codec_table(doc),
             "RTF: processing seconds per second of audio (lower is faster). Peak MiB: the process's peak RSS "
             "while the codec ran. Rows marked \"random weights\" are timed only. " + NAN_NOTE.replace("songs", "files")
             + ". See docs/evaluation.md.", ""]
    if doc.get("decoded_audio"):
        lines += [f"Listen: the decoded files are in `{doc['decoded_audio']}/<codec>/`, the inputs in "
                  f"`{doc['audio_dir']}`.", ""]
    return "\n".join(lines)


def _safe(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in label)
