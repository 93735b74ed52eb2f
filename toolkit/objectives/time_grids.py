"""Time grids of flow ODE samplers: `steps` updates need steps + 1 points from 0 to 1.

* linspace: uniform grid.
* epss: F5-TTS's empirically pruned step schedule (EPSS), a table of multiples of 1/32 for
  steps in {5, 6, 7, 10, 12, 16}; other step counts fall back to linspace.
* sway (applied after either): t + s * (cos(pi/2 t) - 1 + t); s < 0 crowds steps near t = 0.
"""

from __future__ import annotations

import math

import torch

# F5-TTS EPSS (f5_tts.model.utils.get_epss_timesteps): grid points in units of 1/32.
EPSS_TABLE = {
    5: (0, 2, 4, 8, 16, 32),
    6: (0, 2, 4, 6, 8, 16, 32),
    7: (0, 2, 4, 6, 8, 16, 24, 32),
    10: (0, 2, 4, 6, 8, 12, 16, 20, 24, 28, 32),
    12: (0, 2, 4, 6, 8, 10, 12, 14, 16, 20, 24, 28, 32),
    16: (0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32),
}
GRIDS = ("linspace", "epss")


def sway(t: torch.Tensor, coef: float) -> torch.Tensor:
    """Sway sampling: t + coef * (cos(pi/2 t) - 1 + t), computed in t's dtype."""
    return t + coef * (torch.cos(math.pi / 2 * t) - 1 + t)


def time_grid(steps: int, kind: str = "linspace", sway_coef: float | None = None,
              dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
    """[steps + 1] time points from 0 to 1 for `steps` ODE updates.

    dtype is the dtype the grid is built in (upstream DiffRhythm builds it in the model dtype, so an
    fp16 model gets an fp16 grid).
    """
    if steps < 1:
        raise ValueError(f"steps (the number of ODE updates) must be >= 1, got {steps}")
    if kind not in GRIDS:
        raise ValueError(f"unknown time grid '{kind}'; choose one of {GRIDS}")
    if kind == "epss" and steps in EPSS_TABLE:
        t = torch.tensor(EPSS_TABLE[steps], dtype=torch.float32, device=device).div(32).to(dtype)
    else:
        t = torch.linspace(0, 1, steps + 1, dtype=dtype, device=device)
    if sway_coef is not None:
        t = sway(t, sway_coef)
    return t
