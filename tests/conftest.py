import os
import sys
from pathlib import Path

# Hub lookups retry for ~20 s each when offline; tests never download.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

# One thread: the tiny test models gain nothing from more, and subprocess tests (2-process DDP,
# data-loader workers) would otherwise oversubscribe the cores and spin.
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """The parity modules are marked `parity` by their name (tests/test_parity_<model>.py)."""
    import pytest

    for item in items:
        if item.path.name.startswith("test_parity_"):
            item.add_marker(pytest.mark.parity)
