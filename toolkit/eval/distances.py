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


def frechet_distance(x: Any, y: Any) -> float:
    """||mu_x - mu_y||^2 + Tr(S_x) + Tr(S_y) - 2 Tr((S_x S_y)^(1/2)) of Gaussians fitted to the two sets.

    Computed exactly in the span of the items rather than with a d x d matrix square root: with
    centred sets Xc [n, d], Yc [m, d], S_x = Xc'Xc / (n-1) and S_y = Yc'Yc / (m-1), the non-zero
    eigenvalues of S_x S_y are the squared singular values of B = Xc Yc' / sqrt((n-1)(m-1)), so
    Tr((S_x S_y)^(1/2)) is B's nuclear norm. No regularising epsilon is needed (FID code adds one
    to make sqrtm of a singular product finite), and the cost is O(n m d), not O(d^3).
    Sets of one item have zero covariance (the distance is then the squared distance of the means).
    """
    x, y = _pair(x, y)
    mu_x, mu_y = x.mean(0), y.mean(0)
    xc, yc = x - mu_x, y - mu_y
    n, m = len(x), len(y)
    diff = mu_x - mu_y
    value = float(diff @ diff)
    if n > 1 and m > 1:
        cross = (xc @ yc.T) / np.sqrt((n - 1) * (m - 1))
        trace_sqrt = float(np.linalg.svd(cross, compute_uv=False).sum())
    else:
        trace_sqrt = 0.0
    trace_x = float((xc ** 2).sum() / (n - 1)) if n > 1 else 0.0
    trace_y = float((yc ** 2).sum() / (m - 1)) if m > 1 else 0.0
    value += trace_x + trace_y - 2.0 * trace_sqrt
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
