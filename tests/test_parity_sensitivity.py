"""Parity tests that cannot pass by accident: on a copy of the fixtures whose expected outputs are shifted,
every parity module fails (the folded-Oobleck-weights test included)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from golden import REPO_ROOT, golden_root
from parity_shift import shifted_copy

pytestmark = [pytest.mark.parity, pytest.mark.slow]

MODULES = sorted(p.name for p in (REPO_ROOT / "tests").glob("test_parity_*.py")
                 if p.name != "test_parity_sensitivity.py")


@pytest.fixture(scope="module")
def shifted_root(tmp_path_factory):
    return shifted_copy(golden_root(), tmp_path_factory.mktemp("shifted") / "golden")


def run_module(module: str, root, *selectors: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TOOLKIT_GOLDEN_DIR": str(root)}
    target = [f"tests/{module}{sel}" for sel in selectors] or [f"tests/{module}"]
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *target],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)


def test_there_are_parity_modules():
    assert {"test_parity_diffrhythm.py", "test_parity_f5tts.py", "test_parity_oobleck.py",
            "test_parity_tokenizer.py", "test_parity_vocos.py"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_every_parity_module_fails_on_shifted_outputs(module, shifted_root):
    result = run_module(module, shifted_root)
    assert result.returncode == 1, f"{module} passed on shifted fixtures:\n{result.stdout[-2000:]}"


def test_folded_weights_test_fails_on_shifted_outputs(shifted_root):
    result = run_module("test_parity_oobleck.py", shifted_root, "::test_folded_state_dict_into_native")
    assert result.returncode == 1 and "1 failed" in result.stdout, result.stdout[-2000:]
