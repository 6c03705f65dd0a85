"""Confidence intervals over test scenes, and the verdicts read from them.

Every number nerfvae reports over a set of test scenes is a mean over scenes, and scenes differ
far more than the models being compared, so a table row carries a 95% bootstrap interval over
scenes and a comparison of two models is the *paired* difference per scene (same scenes, same
views), whose interval is much narrower than the two rows' intervals suggest. A claim "holds" only
when its interval excludes zero in the claimed direction. The Fréchet distance between two feature
sets (how far samples of a generative model lie from real data) lives here too. Imports only numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from nerfvae.errors import NerfVAEError

DEFAULT_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """A mean over scenes with its bootstrap (percentile) confidence interval."""

    mean: float
    low: float
    high: float
    count: int
    confidence: float = DEFAULT_CONFIDENCE

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def to_json(self) -> dict[str, float]:
        return {
            "mean": self.mean,
            "low": self.low,
            "high": self.high,
            "count": self.count,
            "confidence": self.confidence,
        }

    def __str__(self) -> str:
        return f"{self.mean:.2f} [{self.low:.2f}, {self.high:.2f}]"


def bootstrap_interval(
    values,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> Interval:
    """The mean of per-scene ``values [N]`` with a seeded percentile-bootstrap interval: the
    ``(1 ± confidence) / 2`` quantiles of the means of ``resamples`` resamples of the scenes
    with replacement."""
    data = np.asarray(values, dtype=np.float64).reshape(-1)
    if data.size == 0:
        raise NerfVAEError("bootstrap interval of no values")
    if not np.isfinite(data).all():
        raise NerfVAEError("bootstrap interval of non-finite values")
    if resamples < 1000:
        raise NerfVAEError(f"use at least 1,000 bootstrap resamples, got {resamples}")
    if not 0 < confidence < 1:
        raise NerfVAEError(f"confidence must lie in (0, 1), got {confidence}")
    generator = np.random.default_rng(seed)
    picks = generator.integers(0, data.size, size=(resamples, data.size))
    means = data[picks].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Interval(float(data.mean()), float(low), float(high), int(data.size), confidence)


def paired_difference(
    first,
    second,
    **options,
) -> Interval:
    """``first - second`` per scene (both ``[N]``, the same scenes in the same order), with its
    bootstrap interval (options as :func:`bootstrap_interval`)."""
    a = np.asarray(first, dtype=np.float64).reshape(-1)
    b = np.asarray(second, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise NerfVAEError(
            f"a paired difference needs the same scenes on both sides, got {a.size} and {b.size}"
        )
    return bootstrap_interval(a - b, **options)


def verdict(interval: Interval, direction: Literal["greater", "less"] = "greater") -> str:
    """``"holds"`` when the interval of a difference lies entirely on the claimed side of zero
    (``greater``: above it), ``"not shown"`` otherwise."""
    if direction == "greater":
        return "holds" if interval.low > 0 else "not shown"
    if direction == "less":
        return "holds" if interval.high < 0 else "not shown"
    raise NerfVAEError(f"direction must be 'greater' or 'less', got {direction!r}")


def _covariance_square_root(covariance: np.ndarray) -> np.ndarray:
    """The symmetric positive semi-definite square root of a symmetric ``[D, D]`` matrix (its
    negative eigenvalues, rounding noise of a singular covariance, are taken as zero)."""
    values, vectors = np.linalg.eigh(covariance)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(features_a, features_b) -> float:
    """Fréchet distance between the Gaussians fitted to two feature sets ``[N, D]`` and
    ``[M, D]`` (the FID formula): ``||μa − μb||² + Tr(Σa + Σb − 2 (Σa^½ Σb Σa^½)^½)``.

    Computed in float64 through symmetric eigendecompositions: ``Σa^½ Σb Σa^½`` is symmetric
    positive semi-definite, so the trace of its square root is the sum of the square roots of its
    (clipped) eigenvalues. This stays real and finite where ``scipy.linalg.sqrtm(Σa Σb)`` returns
    complex noise, e.g. for singular covariances (fewer samples than dimensions, constant
    features). The result is symmetric in its arguments up to rounding, and zero for two sets with
    the same mean and covariance. Needs at least two samples per set (a covariance)."""
    first = np.asarray(features_a, dtype=np.float64)
    second = np.asarray(features_b, dtype=np.float64)
    if first.ndim != 2 or second.ndim != 2 or first.shape[1] != second.shape[1]:
        raise NerfVAEError(
            f"Fréchet distance needs two feature sets [N, D] and [M, D], got {first.shape} and "
            f"{second.shape}"
        )
    if min(first.shape[0], second.shape[0]) < 2:
        raise NerfVAEError(
            f"Fréchet distance needs at least 2 samples per set, got {first.shape[0]} and "
            f"{second.shape[0]}"
        )
    if not (np.isfinite(first).all() and np.isfinite(second).all()):
        raise NerfVAEError("Fréchet distance of non-finite features")
    mean_gap = first.mean(axis=0) - second.mean(axis=0)
    covariance_a = np.atleast_2d(np.cov(first, rowvar=False))
    covariance_b = np.atleast_2d(np.cov(second, rowvar=False))
    root_a = _covariance_square_root(covariance_a)
    middle = root_a @ covariance_b @ root_a
    middle = (middle + middle.T) / 2.0  # symmetric up to rounding; eigvalsh wants it exactly
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(middle), 0.0, None)).sum()
    distance = mean_gap @ mean_gap + np.trace(covariance_a) + np.trace(covariance_b) - 2.0 * cross
    return float(max(distance, 0.0))
