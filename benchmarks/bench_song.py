"""One song end to end on the CPU: released-size DiT and VAE (random weights), per-stage time, NFE, dtype, memory.

The DiffRhythm recipe is built from a config through the public API (toolkit.models.factory.build_recipe)
with the released base DiT (1.1 B parameters, built on the meta device and filled with random values:
speed does not depend on them) and the released-size Oobleck VAE, the weight-free `style_tags` style
and English LRC lyrics; `recipe.generate(SongRequest(...), decode=False)` then `recipe.decode(latents)`.
Stages: conditioning (everything in generate outside the sampler: lyric tokens, style, noise),
sampling (the DiT evaluations), decode. NFE counts DiT evaluations per song item (a batched guidance
pass of 2 items counts 2). `--dtype auto` is resolved by toolkit.precision.choose_dtype for the DiT
and the codec (printed with the reasons). The LAST line is machine-readable:

    song_frames=<int> wall_s=<float> dit_s=<float> decode_s=<float> nfe=<int> dtype=<str> peak_rss_gib=<float>

    .venv/bin/python benchmarks/bench_song.py                      # 2048 frames (95 s), upstream's 31 updates
    .venv/bin/python benchmarks/bench_song.py --frames 512 --steps 8 --dtype bf16 --threads 2

A 95-s song takes tens of minutes in fp32 on 2 cores; --depth N (fewer DiT blocks) for a quick check.
"""

from __future__ import annotations

import argparse
import time

import torch
from bench_common import header, materialize_, peak_rss_gib

FRAME_RATE = 44100 / 2048


def song_config(frames: int, steps: int | None, chunk_frames: int, depth: int | None, solver: str = "euler",
                sway: float | None = None) -> dict:
    from toolkit.models.diffrhythm import pretrained
    from toolkit.models.diffrhythm.checkpoints import released_config

    variant = "base" if frames <= 2048 else "full"
    backbone = {k: v for k, v in released_config(variant).items() if k not in ("latent_dim", "max_frames")}
    if depth:
        backbone["depth"] = depth
    sampler = {"type": "flow", "steps": 31, "cfg_strength": 4.0}  # upstream DiffRhythm's (steps=32 there)
    if steps:
        sampler["steps"] = steps
    sampler.update(method=solver, sway_coef=sway)  # upstream: euler on a linear grid (docs/dit_cfm.md error table)
    cfg = {"recipe": "diffrhythm", "max_frames": 2048 if variant == "base" else 6144,
           "codec": {"type": "oobleck", "chunk_frames": chunk_frames, "overlap_frames": 32},
           "backbone": {"type": "dit_diffrhythm", **backbone}, "sampler": sampler}
    lyrics, style = {"type": "lyrics_lrc", "language": "en"}, {"type": "style_tags"}
    if hasattr(pretrained, "published_conditions"):  # the recipe configured by a `conditions:` section
        conditions = pretrained.published_conditions(style, backbone.get("duration_embed", False))
        conditions["lyrics"]["conditioner"] = lyrics
        conditions["style"]["uncond"] = "dropped"  # style_tags has no negative embedding: guide against the null
        return {**cfg, "conditions": conditions}
    return {**cfg, "negative_style": "null", "lyrics": lyrics, "style": style}  # the older recipe signature


def song_lrc(seconds: float, every: float = 6.0) -> str:
    """A time-stamped lyric line every `every` seconds, the last one an end marker."""
    words = "walking down the river in the morning light singing to the open sky".split()
    lines, t, i = [], 1.0, 0
    while t < seconds - 1.0:
        line = " ".join(words[(i + j) % len(words)] for j in range(6))
        lines.append(f"[{int(t // 60):02d}:{t % 60:05.2f}]{line}")
        t, i = t + every, i + 3
    lines.append(f"[{int(t // 60):02d}:{t % 60:05.2f}]")
    return "\n".join(lines)


def build(cfg: dict):
    """The recipe with random weights: the DiT built on the meta device then filled; the codec built for real."""
    from toolkit.models.factory import build_recipe
    from toolkit.registry import CODECS

    with torch.device("meta"):
        recipe = build_recipe(cfg)
    materialize_(recipe)  # every parameter of the module tree (DiT, style embedding); RoPE/position tables
    recipe.transformer.reset_buffers()
    recipe.set_codec(CODECS.build(cfg["codec"]))
    return recipe.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=2048, help="latent frames (2048 = 95.1 s)")
    parser.add_argument("--steps", type=int, default=None, help="ODE updates (default: the sampler config's, 31)")
    parser.add_argument("--solver", default="euler", choices=("euler", "midpoint"),
                        help="ODE solver (midpoint: 2 evaluations per update)")
    parser.add_argument("--sway", type=float, default=None, help="sway coefficient of the time grid (e.g. -1)")
    parser.add_argument("--dtype", default="auto", help="auto | fp32 | bf16 for the DiT (and the codec)")
    parser.add_argument("--codec-dtype", default=None, help="the codec's format if it differs from --dtype")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--chunk-frames", type=int, default=256, help="VAE decode chunk (overlap 32)")
    parser.add_argument("--depth", type=int, default=None, help="fewer DiT blocks than released (quick checks)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from toolkit.models.diffrhythm.request import SongRequest
    from toolkit.precision import choose_dtype

    header()
    dit_choice = choose_dtype(args.dtype, "cpu", component="dit_diffrhythm")
    codec_choice = choose_dtype(args.codec_dtype or args.dtype, "cpu", component="codec")
    print(f"DiT dtype {dit_choice.name}: {dit_choice.reason}")
    print(f"codec dtype {codec_choice.name}: {codec_choice.reason}", flush=True)

    cfg = song_config(args.frames, args.steps, args.chunk_frames, args.depth, args.solver, args.sway)
    start = time.perf_counter()
    recipe = build(cfg)
    recipe.transformer.to_compute_dtype(dit_choice.dtype)
    recipe.codec.set_compute_dtype(codec_choice.dtype)
    params = sum(p.numel() for p in recipe.transformer.parameters())
    vae_params = sum(p.numel() for p in recipe.codec.parameters())
    print(f"built in {time.perf_counter() - start:.1f} s: DiT {params / 1e9:.3f} B params "
          f"(depth {cfg['backbone']['depth']}), Oobleck {vae_params / 1e6:.0f} M params, chunk {args.chunk_frames} "
          f"frames; sampler {cfg['sampler']}", flush=True)

    # NFE: items evaluated by the DiT per song item; sampling time: the sampler's own span.
    evaluated = [0]
    recipe.transformer.register_forward_pre_hook(lambda module, inputs: evaluated.__setitem__(
        0, evaluated[0] + inputs[0].shape[0]))
    spans = {"sampling": 0.0}
    sample = recipe.sampler.sample

    def timed_sample(*a, **kw):
        begin = time.perf_counter()
        try:
            return sample(*a, **kw)
        finally:
            spans["sampling"] += time.perf_counter() - begin

    recipe.sampler.sample = timed_sample
    steps_done = [0]

    def progress(i, n, t, x):
        steps_done[0] = i + 1
        if (i + 1) % max(1, n // 8) == 0 or i + 1 == n:
            print(f"  update {i + 1}/{n} at t={float(t):.3f}: {time.perf_counter() - wall_start:.0f} s since the "
                  f"start of generation", flush=True)

    seconds = args.frames / FRAME_RATE
    request = SongRequest(lrc=song_lrc(seconds), style_text="pop, piano, happy",
                          length=(args.frames + 0.5) / FRAME_RATE, seed=0)
    wall_start = time.perf_counter()
    result = recipe.generate(request, progress=progress, decode=False)
    generate_s = time.perf_counter() - wall_start
    decode_start = time.perf_counter()
    latents = result.latents  # [B, T, D], or a list of [T, D] items
    latents = torch.stack(list(latents)) if isinstance(latents, (list, tuple)) else latents
    audio = recipe.decode(latents)
    decode_s = time.perf_counter() - decode_start
    wall_s = time.perf_counter() - wall_start
    dit_s = spans["sampling"]
    conditioning_s = generate_s - dit_s
    frames = int(latents.shape[1])
    nfe = round(evaluated[0] / request.batch)
    peak = peak_rss_gib()

    print(f"\nsong: {frames} frames = {frames / FRAME_RATE:.1f} s of audio, {steps_done[0]} updates, NFE {nfe}, "
          f"audio {tuple(audio.shape)} finite={bool(torch.isfinite(audio).all())}")
    print("| stage | s | share |")
    print("|---|---|---|")
    for name, value in (("conditioning", conditioning_s), ("sampling (DiT)", dit_s), ("decode (VAE)", decode_s)):
        print(f"| {name} | {value:.1f} | {value / wall_s:.1%} |")
    print(f"| total | {wall_s:.1f} | 100% |")
    print(f"DiT {dit_s / max(nfe, 1):.2f} s per evaluation; decode {decode_s / (frames / FRAME_RATE):.2f} s per audio "
          f"second; peak RSS {peak:.2f} GiB; load average now {__import__('os').getloadavg()[0]:.2f}")
    print(f"song_frames={frames} wall_s={wall_s:.1f} dit_s={dit_s:.1f} decode_s={decode_s:.1f} nfe={nfe} "
          f"dtype={dit_choice.name} peak_rss_gib={peak:.2f}")


if __name__ == "__main__":
    main()
