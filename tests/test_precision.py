"""`--dtype auto|fp32|bf16|fp16`: the decision from injected capabilities (no timing), its reasons and errors."""

from __future__ import annotations

import warnings

import pytest
import torch

from toolkit.precision import (
    AUTO_LOW_PRECISION,
    Capabilities,
    LowPrecisionPolicy,
    choose_dtype,
    detect_capabilities,
    normalise_request,
    read_cpu_flags,
)

AMX_XEON = Capabilities("cpu", "AVX512", frozenset({"avx512f", "avx512_bf16", "amx_bf16", "amx_tile",
                                                      "avx512_fp16"}), device_name="Intel Xeon (AMX)")
AVX512_BF16_ONLY = Capabilities("cpu", "AVX512", frozenset({"avx512f", "avx512_bf16"}), device_name="Zen 4")
PLAIN_CPU = Capabilities("cpu", "AVX2", frozenset({"avx2", "fma"}), device_name="old laptop")
GPU_BF16 = Capabilities("cuda", cuda_bf16=True, device_name="A100")
GPU_NO_BF16 = Capabilities("cuda", cuda_bf16=False, device_name="T4")
BF16_WHERE_NATIVE = {"dit": LowPrecisionPolicy("bf16", "test evidence"),
                     "codec": LowPrecisionPolicy(None, "codec evidence")}


@pytest.mark.parametrize("caps, studied", [(AMX_XEON, "bf16"), (AVX512_BF16_ONLY, "bf16"), (PLAIN_CPU, "fp32"),
                                           (GPU_BF16, "bf16"), (GPU_NO_BF16, "fp32")])
def test_the_shipped_policy_runs_the_studied_dit_in_bf16_where_native(caps, studied):
    # The song-level study (docs/dit_cfm.md) found the DiffRhythm DiT in bf16 (fp32 ends and stream) as accurate
    # as fp32; other backbones and the codec have no such evidence. Each reason carries the evidence.
    assert AUTO_LOW_PRECISION["dit_diffrhythm"].dtype == "bf16"
    assert AUTO_LOW_PRECISION["dit"].dtype is None and AUTO_LOW_PRECISION["codec"].dtype is None
    assert AUTO_LOW_PRECISION["dit_f5"].dtype is None  # studied: 1-3 % more error than fp32, so opt-in
    for component, expected in (("dit_diffrhythm", studied), ("dit", "fp32"), ("dit_f5", "fp32"),
                                ("codec", "fp32")):
        choice = choose_dtype("auto", capabilities=caps, component=component)
        assert choice.name == expected and choice.dtype == {"bf16": torch.bfloat16, "fp32": torch.float32}[expected]
        assert choice.reason.startswith(f"auto: {expected} for the {component}")
        if component == "dit_diffrhythm" and expected == "fp32":  # bf16 would be emulated: the hardware decides
            assert "emulated and slower" in choice.reason
        else:
            assert AUTO_LOW_PRECISION[component].evidence in choice.reason


def test_front_ends_ask_for_the_backbone_s_own_entry():
    from toolkit.generation.devices import backbone_component

    assert backbone_component({"backbone": {"type": "dit_diffrhythm", "dim": 64}}) == "dit_diffrhythm"
    assert backbone_component({"backbone": "dit_f5"}) == "dit_f5"  # studied: its own entry and evidence
    assert backbone_component({"backbone": {"type": "dit_sao"}}) == "dit"  # not studied: the generic entry


def test_auto_with_bf16_policy_on_an_amx_cpu():
    dtype, name, reason = choose_dtype("auto", capabilities=AMX_XEON, policy=BF16_WHERE_NATIVE)[:3]
    assert (dtype, name) == (torch.bfloat16, "bf16")
    assert "amx_bf16 and avx512_bf16" in reason and "test evidence" in reason
    # the policy is per component: the codec entry still says fp32
    assert choose_dtype("auto", capabilities=AMX_XEON, policy=BF16_WHERE_NATIVE, component="codec").name == "fp32"


def test_auto_with_bf16_policy_on_avx512_bf16_cpu():
    assert choose_dtype("auto", capabilities=AVX512_BF16_ONLY, policy=BF16_WHERE_NATIVE).name == "bf16"


def test_auto_with_bf16_policy_on_a_cpu_without_bf16_stays_fp32():
    choice = choose_dtype("auto", capabilities=PLAIN_CPU, policy=BF16_WHERE_NATIVE)
    assert choice.dtype == torch.float32
    assert "lacks amx_bf16 / avx512_bf16" in choice.reason and "AVX2" in choice.reason
    assert "emulated" in choice.reason


@pytest.mark.parametrize("caps, expected", [(GPU_BF16, "bf16"), (GPU_NO_BF16, "fp32")])
def test_auto_with_bf16_policy_on_gpus(caps, expected):
    choice = choose_dtype("auto", "cuda", capabilities=caps, policy=BF16_WHERE_NATIVE)
    assert choice.name == expected
    assert caps.device_name in choice.reason


@pytest.mark.parametrize("requested, dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16),
                                              ("bfloat16", torch.bfloat16), (torch.bfloat16, torch.bfloat16)])
def test_forced_formats_are_obeyed_on_capable_hardware(requested, dtype):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # native: no warning
        choice = choose_dtype(requested, capabilities=AMX_XEON)
    assert choice.dtype == dtype
    assert choice.reason.startswith(f"forced: --dtype {choice.name}")
    assert choice.record() == {"dtype": choice.name, "dtype_reason": choice.reason, "dtype_requested": choice.name}


def test_forced_bf16_without_native_support_warns_but_obeys():
    with pytest.warns(UserWarning, match="emulated"):
        choice = choose_dtype("bf16", capabilities=PLAIN_CPU)
    assert choice.dtype == torch.bfloat16 and "not native" in choice.reason


@pytest.mark.parametrize("caps", [AMX_XEON, PLAIN_CPU])
def test_fp16_on_a_cpu_warns(caps):
    with pytest.warns(UserWarning, match="fp16"):
        choice = choose_dtype("fp16", capabilities=caps)
    assert choice.dtype == torch.float16


def test_fp16_on_a_gpu_is_quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert choose_dtype("fp16", "cuda", capabilities=GPU_NO_BF16).dtype == torch.float16


@pytest.mark.parametrize("bad", ["fp8", "int8", "", "float64"])
def test_unknown_names_fail_with_the_choices(bad):
    with pytest.raises(ValueError, match="choose one of auto, fp32, bf16, fp16"):
        normalise_request(bad)
    with pytest.raises(ValueError, match="unknown dtype"):
        choose_dtype(bad, capabilities=AMX_XEON)


def test_unknown_torch_dtype_and_component_fail_clearly():
    with pytest.raises(ValueError, match="torch.float64 is not supported"):
        choose_dtype(torch.float64, capabilities=AMX_XEON)
    with pytest.raises(ValueError, match="no precision policy for component 'vocoder'; known: codec, dit"):
        choose_dtype("auto", capabilities=AMX_XEON, component="vocoder")


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: X\nflags\t\t: fpu avx512f amx_bf16 avx512_bf16\n\n"
                    "processor\t: 1\nflags\t\t: fpu\n")
    assert read_cpu_flags(info) == frozenset({"fpu", "avx512f", "amx_bf16", "avx512_bf16"})
    assert read_cpu_flags(tmp_path / "missing") == frozenset()


def test_detection_on_this_machine_is_deterministic():
    # Reads flags only (no timing): two detections agree, and the decision is the same twice.
    first, second = detect_capabilities("cpu"), detect_capabilities("cpu")
    assert first == second and first.device_type == "cpu" and first.cpu_capability
    assert choose_dtype("auto", "cpu") == choose_dtype("auto", "cpu")


def test_a_bf16_time_embedding_takes_fp32_times():
    # bf16 keeps 8 significant bits: rounding the flow time itself moves the 1000 * t sinusoid by radians,
    # so a bf16 model should be handed fp32 times; the embedding casts to its MLP's dtype after the sinusoid.
    from toolkit.modules.timestep import TimestepEmbedding, sinusoidal_embedding

    torch.manual_seed(0)
    embed = TimestepEmbedding(32).to(torch.bfloat16)
    t = torch.tensor([0.794752, 0.31])
    out = embed(t)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, embed.time_mlp(sinusoidal_embedding(t, 256).to(torch.bfloat16)))
    rounded = embed(t.bfloat16())
    assert (sinusoidal_embedding(t.bfloat16().float(), 256) - sinusoidal_embedding(t, 256)).abs().max() > 0.5
    assert not torch.allclose(rounded.float(), out.float(), atol=1e-2)
