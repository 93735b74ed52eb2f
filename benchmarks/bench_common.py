"""What the benchmarks share: the machine line, matmul throughput beside a measurement, memory, random weights.

Imported by the scripts in this folder (run as `python benchmarks/bench_x.py`, so this folder is on sys.path);
the repository root is put on sys.path too, so `import toolkit` finds this checkout.
"""

from __future__ import annotations

import math
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def peak_rss_gib() -> float:
    """The process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def current_rss_gib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**30


def load_now() -> float:
    return os.getloadavg()[0]


def matmul_gflops(dtype: torch.dtype = torch.float32, m: int = 2048, k: int = 2048, n: int = 8192,
                  repeats: int = 3) -> float:
    """GFLOP/s of one [m, k] @ [k, n] matmul in `dtype` (best of `repeats` after a warm-up)."""
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    torch.mm(a, b)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * m * k * n / best / 1e9


def timed_against_matmul(fn, dtype: torch.dtype = torch.float32) -> tuple[float, float]:
    """(seconds of fn(), the larger of the matmul rates measured right before and after it).

    Measuring the reference rate beside each run makes the fraction robust on a machine shared with
    other work: a busy machine slows both alike.
    """
    before = matmul_gflops(dtype)
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    return elapsed, max(before, matmul_gflops(dtype))


def median_seconds(fn, *args, repeats: int = 5) -> float:
    """Median wall time of fn(*args) over `repeats` calls after one warm-up, under inference mode."""
    with torch.inference_mode():
        fn(*args)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn(*args)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def int8_dynamic(module: torch.nn.Module, per_channel: bool = True, inplace: bool = False) -> torch.nn.Module:
    """`module` with every nn.Linear in dynamic int8: weights int8 (per output channel or per tensor), activations
    quantised per tensor at run time (torch.ao's quantize_dynamic, the engine torch picks for the CPU). Benchmarks
    and studies only: the toolkit does not offer it (docs/performance.md, docs/dit_cfm.md say why)."""
    import warnings

    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic

    qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao
        warnings.simplefilter("ignore")
        return quantize_dynamic(module, {torch.nn.Linear: qconfig}, dtype=torch.qint8, inplace=inplace)


def spread(values: list[float]) -> str:
    """'median (min-max)' of a list of numbers."""
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def randomize_(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Fill every parameter with scale-preserving random values (no zero-initialised layer stays zero).

    Matrices and kernels: U(-1/sqrt(fan_in), 1/sqrt(fan_in)); 1-d weights (norm gains): 1 + N(0, 0.1);
    other 1-d parameters (biases, log-scales): U(-0.1, 0.1). Speed does not depend on the values, but
    error measurements (bf16 vs fp32) need a network whose output is not identically zero.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() >= 2:
                bound = 1 / math.sqrt(max(1, p[0].numel()))
                p.uniform_(-bound, bound, generator=gen)
            elif name.endswith("weight"):
                p.normal_(1.0, 0.1, generator=gen)
            else:
                p.uniform_(-0.1, 0.1, generator=gen)
    return module


def materialize_(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """A module built on the meta device -> real CPU tensors with random values (faster than a real init)."""
    module.to_empty(device="cpu")
    if hasattr(module, "reset_buffers"):  # recomputes the non-persistent tables (RoPE, positions)
        module.reset_buffers()
    return randomize_(module, seed)


def relative_errors(ours: torch.Tensor, reference: torch.Tensor) -> tuple[float, float]:
    """(max |d| / max |ref|, mean |d| / mean |ref|) in float64."""
    ours, reference = ours.double(), reference.double()
    diff = (ours - reference).abs()
    return float(diff.max() / reference.abs().max()), float(diff.mean() / reference.abs().mean())


def header(extra: str = "") -> None:
    from toolkit.eval.machine import machine_line

    print(machine_line())
    from toolkit.precision import detect_capabilities

    caps = detect_capabilities("cpu")
    print(f"cpu precision flags: {', '.join(caps.as_dict()['cpu_flags']) or 'none'}; "
          f"torch dispatch {caps.cpu_capability}; threads {torch.get_num_threads()}{extra}")
    print(f"load average {os.getloadavg()[0]:.2f} (figures are upper bounds unless it is below ~1.2 "
          f"with this benchmark running)", flush=True)
