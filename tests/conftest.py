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
