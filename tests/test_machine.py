"""The one machine description behind reports, evaluation JSON, the comparison harness and benchmarks."""

import json

import torch

from toolkit.eval.machine import load_average, machine_info, machine_line


def test_machine_record_and_line_name_cpu_threads_and_load():
    info = machine_info()
    json.dumps(info)  # JSON-able as written into evaluation.json and comparison.json
    assert info["cpu"] and info["cpu_count"] >= 1 and info["torch_threads"] == torch.get_num_threads()
    assert info["memory_gib"] is None or info["memory_gib"] > 0
    loads = load_average()
    assert loads is None or (len(loads) == 3 and all(x >= 0 for x in loads))
    line = machine_line()
    assert line.startswith(f"machine: {info['cpu']}") and f"{info['torch_threads']} threads" in line
    assert "logical CPUs" in line and "load average" in line
