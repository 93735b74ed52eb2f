"""Distances between two sets of embeddings: Frechet distance and the kernel (KID-style) distance.

Both compare a generated set X [n, d] with a reference set Y [m, d]. With few songs they are biased
estimates (the Frechet distance strongly so: it fits a d-dimensional Gaussian to n points), so
compare figures only between runs with the same set sizes and the same embedding.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..protocols import Metric
from ..registry import METRICS


def _as_set(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"{name}: expected an embedding set of shape [n, d] with n >= 1, got {list(arr.shape)}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: the embeddings hold NaN or infinite values")
    return arr


def _pair(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    x, y = _as_set(x, "generated"), _as_set(y, "reference")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"embedding sizes differ: generated {x.shape[1]}, reference {y.shape[1]}; "
                         "embed both sets with the same embedding")
    return x, y


def frechet_distance(x: Any, y: Any, eps: float = 1e-6) -> float:
    """||mu_x - mu_y||^2 + Tr(S_x + S_y - 2 (S_x S_y)^(1/2)) of Gaussians fitted to the two sets.

    Sets of one item have zero covariance (the distance is then the squared distance of the means).
    When the covariance product is singular (fewer items than dimensions), `eps` is added to the
    diagonals before the matrix square root, as in the reference FID code.
    """
    from scipy import linalg

    x, y = _pair(x, y)
    mu_x, mu_y = x.mean(0), y.mean(0)
    d = x.shape[1]
    s_x = np.cov(x, rowvar=False) if len(x) > 1 else np.zeros((d, d))
    s_y = np.cov(y, rowvar=False) if len(y) > 1 else np.zeros((d, d))
    s_x, s_y = np.atleast_2d(s_x), np.atleast_2d(s_y)
    with np.errstate(all="ignore"):
        covmean = linalg.sqrtm(s_x @ s_y)
    if not np.isfinite(covmean).all():
        offset = np.eye(d) * eps
        covmean = linalg.sqrtm((s_x + offset) @ (s_y + offset))
    covmean = np.real(covmean)
    diff = mu_x - mu_y
    value = float(diff @ diff + np.trace(s_x) + np.trace(s_y) - 2.0 * np.trace(covmean))
    # Round-off can leave a tiny negative value for identical sets.
    return max(value, 0.0)


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None,
                      coef0: float = 1.0) -> np.ndarray:
    """(gamma * x.y + coef0) ** degree, gamma = 1 / d by default (the KID kernel)."""
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (gamma * (x @ y.T) + coef0) ** degree


def kernel_distance(x: Any, y: Any, degree: int = 3, gamma: float | None = None, coef0: float = 1.0) -> float:
    """Unbiased MMD^2 between the sets with a polynomial kernel (the Kernel Inception Distance estimator).

    mean_{i!=j} k(x_i, x_j) + mean_{i!=j} k(y_i, y_j) - 2 mean_{i,j} k(x_i, y_j). Unbiased, so it can
    be slightly negative (e.g. identical sets give a small negative value); it is not clipped.
    Needs at least two items in each set.
    """
    x, y = _pair(x, y)
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError(f"the kernel distance needs at least 2 items per set (got {n} generated, {m} reference)")
    k_xx = polynomial_kernel(x, x, degree, gamma, coef0)
    k_yy = polynomial_kernel(y, y, degree, gamma, coef0)
    k_xy = polynomial_kernel(x, y, degree, gamma, coef0)
    term_x = (k_xx.sum() - np.trace(k_xx)) / (n * (n - 1))
    term_y = (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(term_x + term_y - 2.0 * k_xy.mean())


def cosine_similarity(a: Any, b: Any) -> float:
    """Cosine of the angle between two vectors (0 when either is all zeros)."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"cannot compare embeddings of sizes {a.size} and {b.size}")
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / norm) if norm > 0 else 0.0


@METRICS.register("frechet")
class FrechetDistance(Metric):
    """Frechet distance between Gaussians fitted to generated and reference embeddings."""

    def compute(self, *, generated: Any, reference: Any, **_: Any) -> dict[str, float]:
        return {"frechet": frechet_distance(generated, reference)}


@METRICS.register("kernel_distance")
class KernelDistance(Metric):
    """Unbiased polynomial-kernel MMD^2 (KID-style) between generated and reference embeddings."""

    def __init__(self, degree: int = 3, gamma: float | None = None, coef0: float = 1.0):
        self.degree, self.gamma, self.coef0 = degree, gamma, coef0

    def compute(self, *, generated: Any, reference: Any, **_: Any) -> dict[str, float]:
        return {"kernel_distance": kernel_distance(generated, reference, self.degree, self.gamma, self.coef0)}


@METRICS.register("style_adherence")
class StyleAdherence(Metric):
    """Cosine between the style embedding of the prompt and that of the generated song."""

    def compute(self, *, prompt: Any, output: Any, **_: Any) -> dict[str, float]:
        return {"style_adherence": cosine_similarity(prompt, output)}
