"""Training-time distributions of the noise level t (t = 1 pure noise) and the length-dependent shift.

stable-audio-tools' timestep samplers (DiffusionCondTrainingWrapper), as pure transforms of their random
draws so a caller can draw them however it likes (keyed generators here, recorded draws in parity tests):
  * "sobol" (upstream's "uniform"): a scrambled 1-d Sobol sequence over the batch (quasi-random, not rand).
  * "uniform": plain U(0, 1) per item.
  * "logit_normal": sigmoid(z), z ~ N(0, 1).
  * "trunc_logit_normal": 1 - truncated_logit_normal(z): the logit-normal with its lowest `left` quantile mass
    (t < 0.075) cut away and rescaled to [0, 1) -- then flipped, as upstream's training step does; Stable
    Audio Open Small's setting.
  * "log_snr": sigmoid(-(z * std + mean)) clamped to [1e-4, 1 - 1e-4] (a Gaussian log-SNR).
DistributionShift (rectified flow, Stable Audio Open Small) moves t towards the noise end for longer
sequences: mu = -(base + (max - base) (L - min_len) / (max_len - min_len)),
t' = 1 - e^mu / (e^mu + 1/(1 - t) - 1), optionally sin(t' pi/2).
"""

from __future__ import annotations

import math

import torch

TIME_DISTRIBUTIONS = ("sobol", "uniform", "logit_normal", "trunc_logit_normal", "log_snr")
NORMAL_DRAWS = ("logit_normal", "trunc_logit_normal", "log_snr")  # distributions fed by one N(0, 1) per item


def logit_normal(z: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(z)


def truncated_logit_normal(z: torch.Tensor, left: float = 0.075, right: float = 1.0) -> torch.Tensor:
    """Upstream `truncated_logistic_normal_rescaled` from its normal draws z (NOT flipped)."""
    normal = torch.distributions.Normal(0, 1)
    lower = normal.cdf(torch.logit(torch.tensor(left)))
    upper = normal.cdf(torch.logit(torch.tensor(right)))
    quantile = lower + (upper - lower) * normal.cdf(z)
    samples = torch.sigmoid(normal.icdf(quantile))
    return (samples - left) / (right - left)


def log_snr_times(z: torch.Tensor, mean: float = -1.2, std: float = 2.0) -> torch.Tensor:
    logsnr = z * std + mean
    return torch.sigmoid(-logsnr).clamp(1e-4, 1 - 1e-4)


def sobol_uniform(batch: int, seed: int) -> torch.Tensor:
    """[batch] quasi-random times from a scrambled Sobol engine seeded `seed` (upstream draws one per step)."""
    return torch.quasirandom.SobolEngine(1, scramble=True, seed=seed).draw(batch)[:, 0]


def times_from_draws(kind: str, draws: torch.Tensor, *, trunc_left: float = 0.075, log_snr_mean: float = -1.2,
                     log_snr_std: float = 2.0) -> torch.Tensor:
    """Training times from the distribution's raw draws: uniforms for "sobol" / "uniform", normals otherwise."""
    if kind in ("sobol", "uniform"):
        return draws
    if kind == "logit_normal":
        return logit_normal(draws)
    if kind == "trunc_logit_normal":
        return 1 - truncated_logit_normal(draws, left=trunc_left)
    if kind == "log_snr":
        return log_snr_times(draws, log_snr_mean, log_snr_std)
    raise ValueError(f"unknown time distribution {kind!r}; choose one of {TIME_DISTRIBUTIONS}")


class DistributionShift:
    """Length-dependent shift of t (stable-audio-tools' DistributionShift; defaults are upstream's)."""

    def __init__(self, base_shift: float = 0.5, max_shift: float = 1.15, max_length: int = 4096,
                 min_length: int = 256, use_sine: bool = False):
        if max_length == min_length:
            raise ValueError("distribution shift: max_length and min_length must differ")
        self.base_shift, self.max_shift = base_shift, max_shift
        self.max_length, self.min_length, self.use_sine = max_length, min_length, use_sine

    def mu(self, seq_len: int) -> float:
        span = (self.max_shift - self.base_shift) * (seq_len - self.min_length) / (self.max_length - self.min_length)
        return -(self.base_shift + span)

    def time_shift(self, t: torch.Tensor, seq_len: int) -> torch.Tensor:
        """t [...] -> shifted t for a sequence of seq_len latent frames (t = 0 and 1 stay)."""
        shift = math.exp(self.mu(seq_len))
        out = 1 - shift / (shift + (1 / (1 - t) - 1) ** 1.0)
        if self.use_sine:
            out = torch.sin(out * math.pi / 2)
        return out

    def __repr__(self) -> str:
        return (f"DistributionShift(base_shift={self.base_shift}, max_shift={self.max_shift}, "
                f"max_length={self.max_length}, min_length={self.min_length}, use_sine={self.use_sine})")
