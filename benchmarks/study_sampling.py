"""Error of each sampling setting against a fine-grid fp32 reference, on the same noise and conditions.

    python benchmarks/study_sampling.py --golden                      # the parity model (tests/fixtures)
    python benchmarks/study_sampling.py --ckpt egs/diffrhythm/exp/default/checkpoints/last.pt --lrc X.lrc
        [--style-audio clip.wav] [--seconds 11] [--items 4] [--reference-steps 128]
    python benchmarks/study_sampling.py --pretrained DIR --lrc X.lrc --style-text "pop, female vocals" \
        --seconds 30 --reference-steps 256          # the published model: decides the defaults (see below)
    python benchmarks/study_sampling.py --ckpt TEACHER.pt --student DISTILLED.pt --lrc X.lrc ...
        [--rows "midpoint 8" bf16]                  # a guidance-distilled student beside its teacher's rows
    python benchmarks/study_sampling.py --f5 --golden   # F5-TTS: number formats at its upstream grid
    python benchmarks/study_sampling.py --f5 --ckpt egs/f5tts/exp/default/checkpoints/last.pt --text "..." \
        [--ref-audio clip.wav --ref-text "its transcript"]   # or --pretrained DIR (F5TTS_v1_Base + Vocos)

The reference is a 128-step midpoint integration in fp32 with the settings' guidance (cfg 4 for the parity
model, the checkpoint's otherwise); the header line gives its own error (half its steps against it).
Rows use a linear grid and guidance everywhere unless they say otherwise. Each row integrates the same
noise with one setting: solver, number of updates, time grid (linspace, sway), guidance interval, number
format. The error is the relative L2
distance of the final latents to the reference's (mean over items), and the NFE is model evaluations per
item (a guided evaluation counts two). Upstream DiffRhythm's setting is Euler on a 32-point linspace grid
(31 updates) with guidance everywhere: a setting is as good when its error is no larger than that row's.
Prints a markdown table (docs/dit_cfm.md quotes it) and, last, one line per setting.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

# (name, sampler options); the first is upstream's setting
SETTINGS = [
    ("upstream: euler 31, linspace", {"steps": 31, "method": "euler"}),
    ("euler 16, linspace", {"steps": 16, "method": "euler"}),
    ("euler 16, sway -1", {"steps": 16, "method": "euler", "sway_coef": -1.0}),
    ("euler 31, sway -1", {"steps": 31, "method": "euler", "sway_coef": -1.0}),
    ("midpoint 8, linspace", {"steps": 8, "method": "midpoint"}),
    ("midpoint 12, linspace", {"steps": 12, "method": "midpoint"}),
    ("midpoint 16, linspace", {"steps": 16, "method": "midpoint"}),
    ("midpoint 8, sway -1", {"steps": 8, "method": "midpoint", "sway_coef": -1.0}),
    ("midpoint 12, sway -1", {"steps": 12, "method": "midpoint", "sway_coef": -1.0}),
    # flow DPM-Solver++(2M): second order at one evaluation per update
    ("dpmpp 16, linspace", {"steps": 16, "method": "dpmpp"}),
    ("dpmpp 16, sway -1", {"steps": 16, "method": "dpmpp", "sway_coef": -1.0}),
    ("dpmpp 24, linspace", {"steps": 24, "method": "dpmpp"}),
    ("dpmpp 24, sway -1", {"steps": 24, "method": "dpmpp", "sway_coef": -1.0}),
    ("dpmpp 31, linspace", {"steps": 31, "method": "dpmpp"}),
    ("euler 31, guidance t in [0, 0.8]", {"steps": 31, "method": "euler", "guidance_interval": (0.0, 0.8)}),
    ("euler 31, guidance t in [0.1, 0.9]", {"steps": 31, "method": "euler", "guidance_interval": (0.1, 0.9)}),
    ("midpoint 12, guidance t in [0, 0.8]", {"steps": 12, "method": "midpoint", "guidance_interval": (0.0, 0.8)}),
    ("euler 31, bf16", {"steps": 31, "method": "euler", "dtype": torch.bfloat16}),
    ("midpoint 12, bf16", {"steps": 12, "method": "midpoint", "dtype": torch.bfloat16}),
    ("midpoint 8, sway -1, bf16", {"steps": 8, "method": "midpoint", "sway_coef": -1.0, "dtype": torch.bfloat16}),
    # upstream's inference as published runs the whole DiT, the time grid and the ODE state in fp16
    # (load_checkpoint calls model.half()); an fp16 model gets exactly that from the flow sampler
    ("upstream as published: euler 31, all fp16", {"steps": 31, "method": "euler", "dtype": torch.float16}),
    # the one lower precision a CPU without native bf16 has (1.9x fp32 on AVX2, 4.2x on AVX512-VNNI for one DiT
    # linear: benchmarks/bench_linear_formats.py); the blocks' linears only, as bf16 keeps the ends in fp32
    ("euler 31, int8 dynamic blocks", {"steps": 31, "method": "euler", "int8": True}),
]

# A guidance-distilled student (objective cfm_guidance_distill, `--student`) sampled unguided: one evaluation per
# velocity, against the teacher's reference; "vs upstream" is against the teacher's upstream row.
STUDENT_SETTINGS = [
    ("distilled: euler 31, linspace", {"steps": 31, "method": "euler"}),
    ("distilled: euler 31, sway -1", {"steps": 31, "method": "euler", "sway_coef": -1.0}),
    ("distilled: midpoint 16, sway -1", {"steps": 16, "method": "midpoint", "sway_coef": -1.0}),
    ("distilled: dpmpp 16, sway -1", {"steps": 16, "method": "dpmpp", "sway_coef": -1.0}),
    ("distilled: midpoint 8, sway -1", {"steps": 8, "method": "midpoint", "sway_coef": -1.0}),
]


# F5-TTS (`--f5`): its upstream inference (Euler on a 33-point grid with sway -1 = 32 updates, guidance 2), in fp32,
# in bf16 as `--dtype bf16` runs it (blocks in bf16, ends and residual stream in fp32), cast whole to bf16, and in
# fp16 as upstream runs it on a GPU (the whole model and the ODE state)
F5_SETTINGS = [
    ("upstream F5: euler 32, sway -1", {"steps": 32, "method": "euler", "sway_coef": -1.0}),
    ("euler 32, sway -1, bf16", {"steps": 32, "method": "euler", "sway_coef": -1.0, "dtype": torch.bfloat16}),
    ("euler 32, sway -1, bf16 cast whole", {"steps": 32, "method": "euler", "sway_coef": -1.0,
                                             "dtype": torch.bfloat16, "whole": True}),
    ("euler 32, sway -1, all fp16", {"steps": 32, "method": "euler", "sway_coef": -1.0, "dtype": torch.float16}),
    ("euler 16, sway -1", {"steps": 16, "method": "euler", "sway_coef": -1.0}),
    ("euler 16, sway -1, bf16", {"steps": 16, "method": "euler", "sway_coef": -1.0, "dtype": torch.bfloat16}),
]


def f5_golden_problem(items: int):
    """F5-TTS's parity model with the conditions of its guided golden sampling case (prompt, text, length)."""
    from golden import golden_file
    from test_parity_f5tts import build_model, cases

    name = "cfm_sample_cfg_sway_linspace"
    inputs = cases()[name]["inputs"]
    return (f"F5 parity model ({golden_file('f5tts', 'config.json').parent.name}, {name})", build_model(),
            *f5_inputs(inputs["cond"][0], {"text": inputs["text"][:1].expand(items, -1)}, int(inputs["duration"]),
                       float(inputs["cfg_strength"]), items))


def f5_model_problem(ckpt: str | None, pretrained: str | None, text: str, ref_audio: str | None, ref_text: str,
                     seconds: float, items: int):
    """A trained F5-TTS checkpoint or the published folder (loaded as the generate CLI loads them) with one
    request's text (and voice prompt), `items` noises."""
    from toolkit.generation import sources
    from toolkit.models.f5tts.inference import effective_durations, estimate_frames

    source = (sources.from_folder(pretrained, [], {}, None, recipe="f5tts") if pretrained
              else sources.from_checkpoint(ckpt, [], recipe="f5tts"))
    recipe = sources.build(source, torch.device("cpu"), torch.float32)
    # one chunk as F5TTS.generate makes it: the terminated transcript before the text, the length by upstream's
    # text-length ratio (or `seconds`), at least one frame more than the tokens and the prompt
    prompt, said = torch.zeros(0, recipe.codec.latent_dim), ""
    if ref_audio:
        prompt = recipe.codec.encode(recipe.load_prompt(ref_audio)[0][None])[0]
        said = recipe.terminated(ref_text)
    frames = (estimate_frames(prompt.shape[0], said, text) if ref_audio
              else int(seconds * recipe.frame_rate))
    ids = recipe.text.prepare(said + text)[None]
    frames = int(effective_durations(ids, torch.tensor([prompt.shape[0]]), frames)[0])
    prepared = recipe.request_values({"text": said + text}, recipe.span(frames))
    with torch.no_grad():
        values = recipe.conditions({k: recipe.conditions[k].collate([v] * items) for k, v in prepared.items()})
    return (f"published F5 model ({source.path})" if pretrained else f"trained F5 model ({ckpt})", recipe.routed,
            *f5_inputs(prompt, values, frames, float(recipe.sampler.cfg_strength), items))


def f5_inputs(prompt: torch.Tensor, conditions: dict, frames: int, cfg: float, items: int):
    """(sampler, problem) of F5's inference: the prompt's frames kept, the rest generated from `items` noises
    under `conditions` (batched to `items`)."""
    from toolkit.models.f5tts.inference import sampling_inputs
    from toolkit.objectives.samplers import FlowSampler

    lens = torch.tensor([prompt.shape[0]])
    cond, generate, _ = sampling_inputs(prompt[None], lens, torch.tensor([frames]))
    noise = torch.randn(items, frames, prompt.shape[-1], generator=torch.Generator().manual_seed(0))
    sampler = FlowSampler(cfg_strength=cfg, uncond_drop=("audio", "text"))
    return sampler, dict(noise=noise, cond=cond.expand(items, -1, -1), mask=generate.expand(items, -1),
                         conditions=conditions, negative_conditions=None)


def golden_problem(items: int):
    """The parity model with the conditions of a golden sampling case, `items` noises."""
    from golden import golden_file
    from test_parity_diffrhythm import all_cases, build, case_names

    from toolkit.objectives.samplers import FlowSampler

    name = next(n for n in case_names("sample_") if not n.startswith("sample_full") and "fp16" not in n)
    inputs = all_cases()[name]["inputs"]
    model = build(False)
    n = inputs["duration"]
    conditions = {k: v[:1].expand(items, *v.shape[1:]) for k, v in
                  {"lyrics": inputs["text"], "style": inputs["style_prompt"],
                   "start_time": inputs["start_time"]}.items()}
    sampler = FlowSampler(cfg_strength=float(inputs["cfg_strength"]), uncond_drop=("audio", "lyrics"))
    negative = {"style": inputs["negative_style_prompt"][:1].expand(items, -1)}
    noise = torch.randn(items, n, model.latent_dim, generator=torch.Generator().manual_seed(0))
    cond = torch.zeros(items, n, model.latent_dim)
    return f"parity model ({golden_file('diffrhythm', 'small_config.json').parent.name}, {name})", model, sampler, \
        dict(noise=noise, cond=cond, conditions=conditions, negative_conditions=negative)


def model_problem(ckpt: str | None, pretrained: str | None, variant: str | None, lrc: str,
                  style_audio: str | None, style_text: str | None, seconds: float, items: int):
    """A toolkit checkpoint or a published folder, loaded as the generate CLI loads it, with one request's
    conditions and `items` noises."""
    from toolkit.generation import sources
    from toolkit.models.diffrhythm.recipe import condition_values
    from toolkit.models.diffrhythm.request import SongRequest

    request = SongRequest(lrc=Path(lrc).read_text(encoding="utf-8"), style_audio=style_audio, style_text=style_text,
                          length=seconds)
    if pretrained:
        source = sources.from_folder(pretrained, [], {"variant": variant}, request, recipe="diffrhythm")
        title = f"published model ({source.path})"
    else:
        source = sources.from_checkpoint(ckpt, [], recipe="diffrhythm")
        title = f"trained model ({ckpt})"
    recipe = sources.build(source, torch.device("cpu"), torch.float32)
    frames = int(seconds * recipe.frame_rate)
    prepared = recipe.request_values(condition_values(request), recipe.span(frames))
    batched = {k: recipe.conditions[k].collate([v] * items) for k, v in prepared.items()}
    with torch.no_grad():
        values = recipe.conditions(batched)
    negative = recipe.conditions.negatives(items, frames)
    noise = torch.randn(items, frames, recipe.codec.latent_dim, generator=torch.Generator().manual_seed(0))
    cond = torch.zeros(items, frames, recipe.codec.latent_dim)
    return title, recipe.routed, recipe.sampler, \
        dict(noise=noise, cond=cond, conditions=values, negative_conditions=negative)


# What a row does not name is fixed here, not taken from the model's sampler config (the demo's has sway -1):
# a linear grid (sway 0 is the identity) and guidance everywhere.
ROW_DEFAULTS = {"time_grid": "linspace", "sway_coef": 0.0, "guidance_interval": (0.0, 1.0)}


def run(model, sampler, problem: dict, options: dict) -> tuple[torch.Tensor, int, float]:
    options = {**ROW_DEFAULTS, **options}
    dtype = options.pop("dtype", torch.float32)
    if options.pop("int8", False):
        model = int8_blocks(model)
    backbone = model.backbone if hasattr(model, "backbone") else model
    if options.pop("whole", False):
        backbone.to(dtype)
    else:
        backbone.to_compute_dtype(dtype)
    started = time.perf_counter()
    with torch.inference_mode():
        # the model computes in `dtype`; the sampler integrates in the dtype it picks for it (fp32 for bf16)
        out = sampler.sample(model, problem["noise"], problem["cond"], problem["conditions"],
                             negative_conditions=problem["negative_conditions"], mask=problem.get("mask"),
                             **options)
    seconds = time.perf_counter() - started
    backbone.to(torch.float32)
    return out.float(), sampler.last_nfe, seconds


def int8_blocks(model):
    """A copy of `model` whose transformer blocks' linear layers run in dynamic int8 (bench_common.int8_dynamic)."""
    import copy

    from bench_common import int8_dynamic

    from toolkit.modules.llama_block import LlamaBlock

    quantized = copy.deepcopy(model)
    for block in [m for m in quantized.modules() if isinstance(m, LlamaBlock)]:
        int8_dynamic(block, inplace=True)
    return quantized


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b).flatten(1).norm(dim=1) / b.flatten(1).norm(dim=1)).mean())


def verdict(rows: list[dict]) -> str:
    """The settings as accurate as upstream's (the first row) with fewer evaluations: the candidates for a
    default (docs/dit_cfm.md says where each default lives)."""
    upstream = rows[0]
    better = [r for r in rows[1:] if r["error"] <= upstream["error"] and r["nfe"] < upstream["nfe"]]
    if not better:
        return f"no setting matches upstream's error ({upstream['error']:.4f}) with fewer than {upstream['nfe']} " \
               "evaluations: keep upstream's defaults"
    better.sort(key=lambda r: (r["nfe"], r["error"]))
    return "as accurate as upstream with fewer evaluations: " + "; ".join(
        f"{r['setting']} (NFE {r['nfe']}, {r['error'] / upstream['error']:.2f}x)" for r in better)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--golden", action="store_true", help="the parity model of tests/fixtures/golden")
    parser.add_argument("--f5", action="store_true", help="F5-TTS instead of DiffRhythm: with --golden its parity "
                        "model, with --ckpt or --pretrained a trained or the published F5 model and --text "
                        "(--ref-audio, --ref-text)")
    parser.add_argument("--text", default="the quick brown fox jumps over the lazy dog.",
                        help="with --f5 --ckpt/--pretrained: what to say")
    parser.add_argument("--ref-audio", help="with --f5 --ckpt/--pretrained: a voice prompt")
    parser.add_argument("--ref-text", default="", help="with --ref-audio: its transcript")
    parser.add_argument("--ckpt", help="a trained toolkit checkpoint (e.g. the demo's)")
    parser.add_argument("--pretrained", metavar="DIR", help="a folder with the published DiffRhythm files "
                        "(docs/generate.md), loaded as `toolkit-generate --pretrained DIR` loads it")
    parser.add_argument("--variant", help="with --pretrained: base | full | v1.2-full when the keys cannot tell")
    parser.add_argument("--student", metavar="FILE", help="with --ckpt: a guidance-distilled checkpoint of that "
                        "model (objective cfm_guidance_distill), studied unguided against the model's reference")
    parser.add_argument("--lrc", help="with --ckpt or --pretrained: the lyrics of the request")
    parser.add_argument("--style-audio")
    parser.add_argument("--style-text")
    parser.add_argument("--seconds", type=float, default=11.0)
    parser.add_argument("--items", type=int, default=4, help="noises (items) averaged")
    parser.add_argument("--reference-steps", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows", nargs="+", metavar="TEXT", help="only the settings whose name contains one of "
                        "these (upstream's row is always run: the others are divided by it)")
    args = parser.parse_args()
    if args.student and not args.ckpt:
        parser.error("--student needs --ckpt (its teacher, whose reference it is measured against)")
    torch.set_num_threads(args.threads)
    from toolkit.eval.machine import machine_info

    settings = F5_SETTINGS if args.f5 else SETTINGS
    if args.f5 and args.golden:
        title, model, sampler, problem = f5_golden_problem(args.items)
    elif args.f5 and bool(args.ckpt) != bool(args.pretrained):
        title, model, sampler, problem = f5_model_problem(args.ckpt, args.pretrained, args.text, args.ref_audio,
                                                          args.ref_text, args.seconds, args.items)
    elif args.golden:
        title, model, sampler, problem = golden_problem(args.items)
    elif bool(args.ckpt) != bool(args.pretrained) and args.lrc:
        from toolkit.models.requests import RequestError

        try:
            title, model, sampler, problem = model_problem(args.ckpt, args.pretrained, args.variant, args.lrc,
                                                           args.style_audio, args.style_text, args.seconds,
                                                           args.items)
        except RequestError as err:  # a folder or checkpoint the generate CLI would refuse, with its reason
            parser.error(str(err))
    else:
        parser.error("give --golden, or one of --ckpt FILE / --pretrained DIR with --lrc")
    reference, _, _ = run(model, sampler, problem, {"steps": args.reference_steps, "method": "midpoint"})
    # The reference's own error, estimated from half its steps: rows below this floor are not resolved (a
    # model whose velocity oscillates fast in t, e.g. random time embeddings, needs a finer reference).
    half, _, _ = run(model, sampler, problem, {"steps": args.reference_steps // 2, "method": "midpoint"})
    machine = machine_info()
    print(f"# {title}; reference: midpoint {args.reference_steps} fp32; cfg {sampler.cfg_strength}; "
          f"{args.items} noises; midpoint {args.reference_steps // 2} vs the reference: {rel_l2(half, reference):.5f}")
    print(f"# {machine.get('cpu')}, {args.threads} threads, load {machine.get('load_average_now')}")
    print("| setting | NFE | rel. L2 error | vs upstream | seconds |")
    print("|---|---|---|---|---|")
    rows = []

    def row(name: str, model, sampler, problem: dict, options: dict) -> None:
        out, nfe, seconds = run(model, sampler, problem, options)
        error = rel_l2(out, reference)
        rows.append({"setting": name, "nfe": nfe, "error": error, "seconds": round(seconds, 2)})
        print(f"| {name} | {nfe} | {error:.4f} | {error / rows[0]['error']:.2f}x | {seconds:.1f} |")

    for i, (name, options) in enumerate(settings):
        if not i or not args.rows or any(text in name for text in args.rows):
            row(name, model, sampler, problem, options)
    if args.student:
        _, student, student_sampler, student_problem = model_problem(
            args.student, None, None, args.lrc, args.style_audio, args.style_text, args.seconds, args.items)
        for name, options in STUDENT_SETTINGS:
            row(name, student, student_sampler, student_problem, {**options, "cfg_strength": 0.0})
    print("# " + verdict(rows))
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
