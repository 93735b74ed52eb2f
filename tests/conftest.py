import os
import sys
from pathlib import Path

# Hub lookups retry for ~20 s each when offline; tests never download.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))
