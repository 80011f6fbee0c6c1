"""KID: the unbiased squared MMD with a cubic polynomial kernel between the Inception features of
two image sets (Bińkowski et al., "Demystifying MMD GANs", ICLR 2018)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
import torch

from .inception import EVAL_EXTRA_HINT, ImagesOrFeatures, as_features, count_images

#: The subset size of the KID papers and libraries, used when both sets are at least this large.
DEFAULT_SUBSET_SIZE = 1000


@dataclass(frozen=True)
class KID:
    """A KID estimate: ``mean`` and population ``std`` of the unbiased MMD² over ``subsets``
    random subsets of ``subset_size`` images from each side (raw MMD², not scaled by 1000), and
    the sizes ``n_real``, ``n_fake`` of the two sets."""
    mean: float
    std: float
    subset_size: int
    subsets: int
    n_real: int
    n_fake: int

    def __str__(self) -> str:
        return f"KID {self.mean:.6f} ± {self.std:.6f}"


def _poly_mmd():
    # torchmetrics is an optional dependency (the eval extra): imported only when KID is asked for.
    try:
        from torchmetrics.image.kid import poly_mmd
    except ImportError as err:
        raise ValueError(f"KID needs torchmetrics, which is not installed: {EVAL_EXTRA_HINT}") from err
    return poly_mmd


def kid(real: ImagesOrFeatures, fake: ImagesOrFeatures, subsets: int = 100,
        subset_size: Optional[int] = None, seed: int = 0, batch_size: int = 50,
        device: Union[str, torch.device, None] = None, progress: bool = True) -> KID:
    """Kernel Inception Distance between two image sets.

    For each of ``subsets`` subsets, ``subset_size`` feature rows are drawn without replacement
    from each side and their unbiased MMD² is taken with the kernel k(x, y) = (x·y/d + 1)³, d =
    2048 (``torchmetrics.image.kid.poly_mmd``, the estimator of torch-fidelity and of the KID
    paper; a module-level function outside torchmetrics' documented API, so the tests check it
    against a direct pair-by-pair computation); the
    result is the mean and population standard deviation over subsets. The unbiased estimator
    has expectation 0 for two samples of one distribution, so it can be slightly negative.
    Comparing a set with itself is not such a pair (the diagonal of the kernel matrix is dropped
    within a side but not across), which gives 2·(mean off-diagonal − mean diagonal k)/m ≤ 0.

    ``real``/``fake``: a folder, a list of image files, an ``(N, 3, H, W)`` tensor in [0, 1], or
    an ``(N, 2048)`` feature array (see :func:`~.inception.as_features`). ``subset_size``
    defaults to ``min(1000, n_real, n_fake)`` — the libraries' 1000 cannot be drawn from a
    106-image test set — and must be at least 2 and at most the smaller set. When it equals a
    set's size, every subset of that set is the whole set. ``seed`` seeds the subset draws
    (NumPy ``default_rng``), so a call is reproducible. Raises ``ValueError`` for a bad argument,
    a missing torchmetrics (the ``eval`` extra) and as :func:`~.inception.inception_features`."""
    n_real, n_fake = count_images(real), count_images(fake)
    if subsets < 1:
        raise ValueError(f"subsets={subsets}: need at least 1")
    size = min(DEFAULT_SUBSET_SIZE, n_real, n_fake) if subset_size is None else subset_size
    if not 2 <= size <= min(n_real, n_fake):
        raise ValueError(f"subset_size={size} with {n_real} real and {n_fake} fake images: need "
                         f"2 <= subset_size <= {min(n_real, n_fake)} (the smaller set)")
    poly_mmd = _poly_mmd()
    real_f = torch.from_numpy(as_features(real, batch_size, device, progress))
    fake_f = torch.from_numpy(as_features(fake, batch_size, device, progress))
    rng = np.random.default_rng(seed)
    values = np.empty(subsets)
    for i in range(subsets):
        r = torch.from_numpy(rng.choice(n_real, size, replace=False))
        f = torch.from_numpy(rng.choice(n_fake, size, replace=False))
        values[i] = float(poly_mmd(real_f[r], fake_f[f], degree=3, gamma=None, coef=1.0))
    return KID(mean=float(values.mean()), std=float(values.std()), subset_size=size, subsets=subsets,
               n_real=n_real, n_fake=n_fake)
