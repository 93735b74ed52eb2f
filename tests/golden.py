"""Access to the golden fixtures and reference files (the parity-test contract, docs/contributing.md).

The fixture root is $TOOLKIT_GOLDEN_DIR, else the repository's own copy `tests/fixtures/golden/` (the public
sets, checksummed in its SHA256SUMS), so a clone tests itself. Key lists and other reference files the tests
read are in `tests/fixtures/reference/`. A missing root, set or file fails the test (never a skip).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT / "tests" / "fixtures"
REPO_GOLDEN = FIXTURES / "golden"
CHECKSUMS = "SHA256SUMS"


def golden_root() -> Path:
    root = Path(os.environ.get("TOOLKIT_GOLDEN_DIR") or REPO_GOLDEN)
    if not root.is_dir():
        pytest.fail(f"golden fixture root {root} does not exist (unset TOOLKIT_GOLDEN_DIR to use the "
                    f"repository's copy {REPO_GOLDEN})")
    return root


def reference_file(name: str) -> Path:
    """A reference file the tests read (key lists, released configs) from tests/fixtures/reference/."""
    path = FIXTURES / "reference" / name
    if not path.is_file():
        pytest.fail(f"reference file {path} is missing")
    return path


def golden_file(set_name: str, file_name: str) -> Path:
    path = golden_root() / set_name / file_name
    if not path.is_file():
        pytest.fail(f"golden fixture {path} is missing")
    return path


def load_golden_weights(path: Path) -> dict[str, torch.Tensor]:
    """{"q": int8, "scale_log2": int, "buffers": float (optional)} -> state dict (q * 2**scale_log2 + buffers)."""
    raw = torch.load(path, map_location="cpu", weights_only=True)
    state = {k: q.float() * 2.0 ** raw["scale_log2"][k] for k, q in raw["q"].items()}
    state.update(raw.get("buffers", {}) or {})
    return state


def load_cases(set_name: str, file_name: str = "cases.pt") -> dict:
    return torch.load(golden_file(set_name, file_name), map_location="cpu", weights_only=True)


def select_cases(cases: dict, prefix: str) -> list[str]:
    """Case names starting with `prefix`; zero cases is a failure."""
    names = sorted(k for k, v in cases.items() if k.startswith(prefix) and isinstance(v, dict))
    if not names:
        pytest.fail(f"no golden case starts with '{prefix}'")
    return names


def rel_err(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """max|ours - theirs| / max|theirs|."""
    ours, theirs = ours.detach().double(), theirs.detach().double()
    assert ours.shape == theirs.shape, f"shape {tuple(ours.shape)} != {tuple(theirs.shape)}"
    denom = theirs.abs().max().clamp_min(1e-30)
    return float((ours - theirs).abs().max() / denom)
