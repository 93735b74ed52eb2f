"""Which number format a component computes in: `--dtype auto|fp32|bf16|fp16`, decided from the hardware.

The decision reads only what the device HAS (CPU flags such as `amx_bf16` / `avx512_bf16` from
/proc/cpuinfo, the SIMD level torch dispatches to, CUDA's bf16 support), never a timing, so the same
seed gives the same song on the same machine. Capabilities can be injected (tests, reports about
another machine).

`auto` prefers fp32 unless the component's entry in `AUTO_LOW_PRECISION` names a low-precision format
AND the hardware runs it natively. That table is the one switch to flip once the song-level error
study (docs/dit_cfm.md) shows a format is as accurate as fp32 for a component; its `evidence` text
goes into the reason printed and recorded in the manifest.

Usage (the choice is a NamedTuple, so `dtype, name, reason = choose_dtype(...)` works too):

    choice = choose_dtype("auto", "cpu", component="dit")
    model.to(choice.dtype); manifest.update(choice.record())
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
ALIASES = {"float32": "fp32", "float": "fp32", "bfloat16": "bf16", "float16": "fp16", "half": "fp16"}
REQUESTS = ("auto", *DTYPES)

# CPU flags (Linux /proc/cpuinfo names) that mean bf16 / fp16 arithmetic runs in hardware.
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
FP16_CPU_FLAGS = ("amx_fp16", "avx512_fp16")


@dataclass(frozen=True)
class LowPrecisionPolicy:
    """What `auto` may pick for one component on hardware that runs `dtype` natively (None: always fp32)."""

    dtype: str | None
    evidence: str


# The switch: an entry is "bf16" (with its evidence) once the song-level error study shows bf16 is as accurate
# as fp32 for that component; otherwise `auto` is fp32 for it and bf16 is opt-in.
# Keys: "codec", a backbone's registry name where it was studied, "dit" for any other backbone.
AUTO_LOW_PRECISION: dict[str, LowPrecisionPolicy] = {
    "dit": LowPrecisionPolicy(None, "bf16 is not yet shown to sample this backbone's songs as accurately as fp32 "
                                    "(benchmarks/study_sampling.py measures it; docs/dit_cfm.md)"),
    "dit_diffrhythm": LowPrecisionPolicy(
        "bf16", "a bf16 DiT (blocks in bf16; ends, residual stream and flow times in fp32) samples a song as close "
                "to a fine fp32 reference as fp32 does: 1.00x upstream's grid error on the released-layout model "
                "(its own fp16 inference 1.03x), 0.96x-1.00x on the trained demo model (docs/dit_cfm.md, error table)"),
    "dit_f5": LowPrecisionPolicy(
        None, "a bf16 F5-TTS DiT (blocks in bf16; ends, residual stream and flow times in fp32) adds 1-3 % to "
              "fp32's sampling error on the trained demo model (1.01x-1.03x; upstream's own fp16 inference 1.01x; "
              "1.00x on the parity model): not as accurate as fp32, so bf16 is opt-in (--dtype bf16; "
              "docs/f5tts.md)"),
    "codec": LowPrecisionPolicy(None, "bf16 VAE convolutions differ from fp32 by 4e-3 mean / 1e-2 max relative "
                                      "(released size, random weights) and were not reliably faster than the fast "
                                      "fp32 decode on an AMX Xeon (docs/codecs.md)"),
}


@dataclass(frozen=True)
class Capabilities:
    """What a device can do, as far as the number format is concerned.

    device_type: "cpu" or "cuda" (others are treated as "no native low precision known");
    cpu_capability: torch's SIMD dispatch level ("AVX512", "AVX2", "DEFAULT", ...);
    cpu_flags: the CPU's feature flags (only the precision-related ones matter);
    cuda_bf16: whether the CUDA device computes bf16 natively (None off CUDA);
    device_name: a human name for the reason text.
    """

    device_type: str
    cpu_capability: str = ""
    cpu_flags: frozenset[str] = field(default_factory=frozenset)
    cuda_bf16: bool | None = None
    device_name: str = ""

    def native(self, name: str) -> tuple[bool, str]:
        """(does the hardware run `name` natively, why) for name in DTYPES."""
        if name == "fp32":
            return True, "fp32 runs everywhere"
        if self.device_type == "cuda":
            label = f"CUDA device {self.device_name}".rstrip()
            if name == "bf16":
                return bool(self.cuda_bf16), f"{label} {'supports' if self.cuda_bf16 else 'lacks'} bf16"
            return True, f"{label} computes fp16 natively"
        if self.device_type != "cpu":
            return False, f"no native {name} known for device type '{self.device_type}'"
        wanted = BF16_CPU_FLAGS if name == "bf16" else FP16_CPU_FLAGS
        found = [f for f in wanted if f in self.cpu_flags]
        if found:
            return True, f"CPU has {' and '.join(found)}"
        return False, f"CPU lacks {' / '.join(wanted)} (torch dispatch level {self.cpu_capability or 'unknown'})"

    def as_dict(self) -> dict[str, Any]:
        relevant = sorted(f for f in self.cpu_flags if f in BF16_CPU_FLAGS + FP16_CPU_FLAGS + ("amx_tile",))
        return {"device_type": self.device_type, "cpu_capability": self.cpu_capability, "cpu_flags": relevant,
                "cuda_bf16": self.cuda_bf16, "device_name": self.device_name}


def read_cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The `flags` of the first processor in /proc/cpuinfo (empty where the file does not exist)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def detect_capabilities(device: str | torch.device = "cpu") -> Capabilities:
    """Read what `device` has (no timing, no computation)."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return Capabilities("cuda", cuda_bf16=bool(torch.cuda.is_bf16_supported()),
                            device_name=torch.cuda.get_device_name(index))
    if device.type == "cpu":
        from .eval.machine import cpu_model

        return Capabilities("cpu", cpu_capability=torch.backends.cpu.get_cpu_capability(),
                            cpu_flags=read_cpu_flags(), device_name=cpu_model())
    return Capabilities(device.type, device_name=str(device))


def normalise_request(requested: str | torch.dtype) -> str:
    """'auto' / a format name / an alias / a torch dtype -> one of REQUESTS; a clear error otherwise."""
    if isinstance(requested, torch.dtype):
        for name, dtype in DTYPES.items():
            if dtype == requested:
                return name
        raise ValueError(f"dtype {requested} is not supported; choose one of {', '.join(REQUESTS)}")
    name = str(requested).strip().lower()
    name = ALIASES.get(name, name)
    if name not in REQUESTS:
        raise ValueError(f"unknown dtype '{requested}'; choose one of {', '.join(REQUESTS)} "
                         f"(aliases: {', '.join(ALIASES)})")
    return name


class DtypeChoice(NamedTuple):
    """The decision: the torch dtype, its short name, and the reason (printed and written to the manifest)."""

    dtype: torch.dtype
    name: str
    reason: str
    requested: str = "auto"
    component: str = "dit"
    capabilities: Capabilities | None = None

    def record(self, prefix: str = "") -> dict[str, Any]:
        """Manifest fields: {prefix}dtype, {prefix}dtype_reason, {prefix}dtype_requested."""
        return {f"{prefix}dtype": self.name, f"{prefix}dtype_reason": self.reason,
                f"{prefix}dtype_requested": self.requested}


def choose_dtype(requested: str | torch.dtype = "auto", device: str | torch.device = "cpu",
                 capabilities: Capabilities | None = None, *, component: str = "dit",
                 policy: Mapping[str, LowPrecisionPolicy] | None = None) -> DtypeChoice:
    """Decide the compute dtype of `component` ("dit", "codec", ...) on `device`.

    requested: "auto" (policy + hardware), or a forced "fp32" / "bf16" / "fp16" (a warning if the hardware
    does not run it natively: it works, slowly). capabilities: inject to decide for another machine
    (tests); by default read from `device`. policy: replaces AUTO_LOW_PRECISION (tests, experiments).
    """
    name = normalise_request(requested)
    caps = capabilities if capabilities is not None else detect_capabilities(device)
    where = caps.device_name or caps.device_type
    if name != "auto":
        native, why = caps.native(name)
        reason = f"forced: --dtype {name} ({why})"
        if not native:
            warnings.warn(f"--dtype {name} on {where}: {why}, so {name} is emulated and likely much slower than "
                          f"fp32; use --dtype fp32 or auto", stacklevel=2)
            reason += "; not native here, likely slower than fp32"
        elif name == "fp16" and caps.device_type == "cpu":
            warnings.warn(f"--dtype fp16 on the CPU {where}: torch's CPU fp16 kernels are no faster than fp32 "
                          f"(fp16 matmul measured at fp32's rate on an AMX Xeon) and fp16's range is narrow; "
                          f"prefer --dtype bf16 or auto", stacklevel=2)
            reason += "; fp16 on a CPU is not faster than fp32"
        return DtypeChoice(DTYPES[name], name, reason, name, component, caps)

    table = AUTO_LOW_PRECISION if policy is None else policy
    rule = table.get(component)
    if rule is None:
        raise ValueError(f"no precision policy for component '{component}'; known: {', '.join(sorted(table))}")
    if rule.dtype is None:
        return DtypeChoice(torch.float32, "fp32", f"auto: fp32 for the {component} ({rule.evidence})",
                           "auto", component, caps)
    native, why = caps.native(rule.dtype)
    if native:
        reason = f"auto: {rule.dtype} for the {component}: {why}, and {rule.evidence}"
        return DtypeChoice(DTYPES[rule.dtype], rule.dtype, reason, "auto", component, caps)
    return DtypeChoice(torch.float32, "fp32", f"auto: fp32 for the {component}: {why} (so {rule.dtype} would be "
                                              f"emulated and slower)", "auto", component, caps)
