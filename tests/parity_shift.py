"""A copy of a fixture root whose EXPECTED outputs are shifted (inputs, weights and configs untouched).

Every parity module must fail on such a copy: tests/test_parity_sensitivity.py runs them against it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

# Keys of a case that hold what upstream produced (the diffrhythm set names them per case kind).
OUTPUT_KEYS = ("output", "outputs", "intermediates", "loss", "pred", "trajectory")


def shift(value: Any) -> Any:
    """Move every number: floats by 1 % of their scale + 1e-3, integers and bools flipped or +1."""
    if torch.is_tensor(value):
        if value.is_floating_point() or value.is_complex():
            return value + (0.01 * value.abs().max() + 1e-3).to(value.dtype)
        if value.dtype == torch.bool:
            return ~value
        return value + 1
    if isinstance(value, dict):
        return {k: shift(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(shift(v) for v in value)
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    return value  # strings (names, notes) stay


def shift_cases(path: Path) -> None:
    cases = torch.load(path, map_location="cpu", weights_only=True)
    for case in cases.values():
        if isinstance(case, dict):
            for key in OUTPUT_KEYS:
                if key in case:
                    case[key] = shift(case[key])
    torch.save(cases, path)


def shift_tokenizer_cases(path: Path) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    for case in data.get("lines", {}).values():
        for key in ("g2p_ids", "tokens"):
            if key in case:
                case[key] = shift(case[key])
    for case in data.get("lrc", {}).values():
        case["parsed"] = [[t + 0.01, text] for t, text in case["parsed"]]
        for placement in case.get("placements", {}).values():
            if "nonzero" in placement:
                placement["nonzero"] = [[i + 1, tok] for i, tok in placement["nonzero"]]
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def shifted_copy(root: Path, target: Path) -> Path:
    shutil.copytree(root, target)
    (target / "SHA256SUMS").unlink(missing_ok=True)  # the copy is altered on purpose
    for path in target.rglob("cases.pt"):
        shift_cases(path)
    for path in target.rglob("tokenizer_cases.json"):
        shift_tokenizer_cases(path)
    return target
