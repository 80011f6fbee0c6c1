"""Confidence intervals for the difference between two students: a paired bootstrap over test
images, and a Student-t interval over seeds."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np
import scipy.stats


@dataclass(frozen=True)
class Difference:
    """A mean difference with its confidence interval: ``mean_diff`` (mean of a − b), ``interval``
    (low, high) at confidence ``level``, from ``n`` paired values, by ``method``
    (``'paired bootstrap'`` or ``'student t'``)."""
    mean_diff: float
    interval: Tuple[float, float]
    level: float
    n: int
    method: str

    def excludes_zero(self) -> bool:
        """Whether the interval lies entirely on one side of 0."""
        return self.interval[0] > 0 or self.interval[1] < 0


def _check_level(ci: float) -> None:
    if not 0 < ci < 1:
        raise ValueError(f"ci={ci}: need a confidence level strictly between 0 and 1, e.g. 0.95")


def _as_finite_1d(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{name} of shape {x.shape}: need a 1-D array, one value per image or seed")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} holds NaN or infinite values (e.g. the PSNR of identical images): "
                         "drop or cap them first")
    return x


def paired_bootstrap(a, b, n_boot: int = 10000, seed: int = 0, ci: float = 0.95) -> Difference:
    """Mean of ``a − b`` for per-image metric arrays of two students on the same test images
    (``a[i]`` and ``b[i]`` from image i), with a percentile bootstrap interval: the images are
    resampled with replacement ``n_boot`` times (NumPy ``default_rng(seed)``), keeping pairs
    together, and the interval is the (1 − ci)/2 and (1 + ci)/2 quantiles of the resampled mean
    differences. It covers the spread due to *which images* were tested, not due to training
    seeds (for that see :func:`seed_interval`).

    Written here rather than with ``scipy.stats.bootstrap``, whose seed argument was renamed
    (``random_state`` → ``rng``) within the SciPy versions this package accepts. Raises
    ``ValueError`` for arrays of different lengths, fewer than 2 images, non-finite values or a
    bad ``n_boot``/``ci``."""
    a, b = _as_finite_1d(a, "a"), _as_finite_1d(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a has {a.size} values and b {b.size}: the paired bootstrap needs one value "
                         "per test image from each student, on the same images")
    if a.size < 2:
        raise ValueError(f"{a.size} paired value(s): the bootstrap needs at least 2 images")
    if n_boot < 1:
        raise ValueError(f"n_boot={n_boot}: need at least 1 resample (10000 is usual)")
    _check_level(ci)
    diffs = a - b
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    # Resampled in chunks so that n_boot × n indices never need more than a few MB.
    chunk = max(1, 2_000_000 // diffs.size)
    for start in range(0, n_boot, chunk):
        stop = min(start + chunk, n_boot)
        means[start:stop] = diffs[rng.integers(0, diffs.size, size=(stop - start, diffs.size))].mean(axis=1)
    low, high = np.quantile(means, [(1 - ci) / 2, (1 + ci) / 2])
    return Difference(mean_diff=float(diffs.mean()), interval=(float(low), float(high)), level=ci,
                      n=int(diffs.size), method="paired bootstrap")


def seed_interval(diffs, ci: float = 0.95) -> Difference:
    """Mean of paired per-seed differences (``diffs[s]`` = metric of student A minus student B,
    both trained with seed s) with :func:`t_interval`'s Student-t interval. Assumes the per-seed
    differences are roughly normal; with 2–3 seeds the interval is wide, as it should be.

    Raises ``ValueError`` for fewer than 2 seeds (one difference has no spread to estimate), a
    non-1-D or non-finite input or a bad ``ci``."""
    d = _as_finite_1d(diffs, "diffs")
    if d.size < 2:
        raise ValueError(f"{d.size} seed difference(s): a t-interval needs at least 2 seeds "
                         "(one difference says nothing about the spread between seeds)")
    return t_interval(d, ci)


def t_interval(values, ci: float = 0.95) -> Difference:
    """Mean of ``values`` (paired per-seed differences, per-process speed-up ratios, …) with a
    Student-t interval: mean ± t_{(1+ci)/2, n−1} · sd / √n, the sample standard deviation with
    n − 1 in the denominator and ``scipy.stats.t`` with n − 1 degrees of freedom. Raises
    ``ValueError`` for fewer than 2 values, a non-1-D or non-finite input or a bad ``ci``."""
    v = _as_finite_1d(values, "values")
    if v.size < 2:
        raise ValueError(f"{v.size} value(s): a t-interval needs at least 2 (one value has no spread)")
    _check_level(ci)
    mean = float(v.mean())
    half = float(scipy.stats.t.ppf((1 + ci) / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
    return Difference(mean_diff=mean, interval=(mean - half, mean + half), level=ci, n=int(v.size),
                      method="student t")
