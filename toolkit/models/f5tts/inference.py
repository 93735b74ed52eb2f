"""F5-TTS inference arithmetic around the shared flow sampler: lengths, noise, prompt masks, durations.

upstream CFM.sample (golden/f5tts/README.txt) in pieces the recipe and the parity tests share:
  * effective length per item: max(max(#text tokens, prompt frames) + 1, requested duration);
  * noise: per item a generator restarted at `seed`, randn(length_i, D), zero-padded;
  * the prompt: frames [0, prompt_len_i) are given (copied to the output), the rest generated;
    the frame mask goes to the backbone only for batches > 1 (upstream passes None for one item);
  * the duration of a new utterance: prompt frames * (1 + target chars / prompt chars) (upstream's
    infer_process estimate, with its speed factor), where Chinese characters count 3 bytes' worth.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

MAX_FRAMES = 65536  # upstream clamps durations to this


def text_lengths(text: torch.Tensor) -> torch.Tensor:
    """[B, n] indices padded with -1 -> [B] number of tokens."""
    return (text != -1).sum(dim=-1)


def effective_durations(text: torch.Tensor, prompt_lens: torch.Tensor, duration: int | torch.Tensor) -> torch.Tensor:
    """Frames per item: max(max(text tokens, prompt frames) + 1, duration), clamped to 65536."""
    b = text.shape[0]
    duration = torch.as_tensor(duration, dtype=torch.long)
    if duration.ndim == 0:
        duration = duration.expand(b)
    floor = torch.maximum(text_lengths(text).cpu(), prompt_lens.cpu().long()) + 1
    return torch.maximum(floor, duration.cpu()).clamp(max=MAX_FRAMES)


def item_noise(durations: Sequence[int] | torch.Tensor, dim: int, seed: int) -> torch.Tensor:
    """[B, max(d), dim]: item i is randn(d_i, dim) from a generator restarted at `seed`, zero-padded."""
    durations = [int(d) for d in durations]
    out = torch.zeros(len(durations), max(durations), dim)
    for i, d in enumerate(durations):
        out[i, :d] = torch.randn(d, dim, generator=torch.Generator().manual_seed(int(seed)))
    return out


def sampling_inputs(prompt: torch.Tensor, prompt_lens: torch.Tensor, durations: torch.Tensor):
    """Pad the prompt to the longest duration -> (cond [B, T, D], generate mask [B, T] bool (True = generate),
    frame mask [B, T] bool or None for a single item)."""
    b, n, d = prompt.shape
    frames = int(durations.max())
    pos = torch.arange(frames)[None, :]
    given = pos < prompt_lens.cpu()[:, None]
    cond = torch.zeros(b, frames, d, dtype=prompt.dtype, device=prompt.device)
    cond[:, :min(n, frames)] = prompt[:, :frames]
    cond = torch.where(given.to(prompt.device)[..., None], cond, torch.zeros_like(cond))
    frame_mask = (pos < durations.cpu()[:, None]) if b > 1 else None
    dev = prompt.device
    return cond, (~given).to(dev), None if frame_mask is None else frame_mask.to(dev)


def estimate_frames(prompt_frames: int, prompt_text: str, target_text: str, speed: float = 1.0) -> int:
    """Total frames (prompt + new speech) by the text-length ratio, as upstream's infer_process:
    prompt_frames + int(prompt_frames / len(prompt) * len(target) / speed) with len = UTF-8 bytes."""
    ref = max(1, len(prompt_text.encode("utf-8")))
    gen = len(target_text.encode("utf-8"))
    return prompt_frames + int(prompt_frames / ref * gen / speed)
