"""What a reader needs to judge a speed or memory figure: the CPU, cores, threads, memory and load.

One description for reports, evaluation JSON, the comparison harness and the benchmarks.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def memory_gib() -> float | None:
    """Total RAM in GiB (Linux /proc/meminfo), None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError):
        pass
    return None


def load_average() -> list[float] | None:
    """The 1, 5 and 15-minute load averages, None where the OS has none."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def machine_info() -> dict[str, Any]:
    """CPU, cores, threads, memory, load and the numeric stack's versions, as a JSON-able record."""
    import numpy as np
    import torch

    import toolkit

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "usable_cores": usable,
            "torch_threads": torch.get_num_threads(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "memory_gib": memory_gib(), "load_average_now": load_average(), "python": platform.python_version(),
            "platform": platform.platform(), "machine": platform.machine(), "toolkit": toolkit.__version__,
            "torch": torch.__version__, "numpy": np.__version__}


def machine_line() -> str:
    """One line for a benchmark's output: CPU, cores, RAM, torch version and threads, load."""
    info = machine_info()
    memory = f", {info['memory_gib']} GiB RAM" if info["memory_gib"] else ""
    load = info["load_average_now"]
    return (f"machine: {info['cpu']} ({info['machine']}), {info['cpu_count']} logical CPUs{memory}, "
            f"torch {info['torch']}, {info['torch_threads']} threads, "
            f"load average {' '.join(map(str, load)) if load else 'n/a'}")
