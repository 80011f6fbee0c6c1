"""Paired per-image metrics between two aligned image sets: L1 and PSNR, e.g. a student's outputs
against the ground truth or against the teacher's outputs on the same inputs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple, Union

import numpy as np
import torch

from ..device import DeviceLike, resolve_device
from .images import FolderOrFiles, check_images01, files_of, load_image, matched_files

#: One side of a pair: images on disk (a folder or a list of files) or an ``(N, 3, H, W)`` tensor
#: in [0, 1].
ImageSet = Union[FolderOrFiles, torch.Tensor]


@dataclass(frozen=True)
class PairedScores:
    """Per-image scores of aligned pairs, one entry per pair in ``names`` order: ``l1``, the mean
    absolute difference over pixels and channels in [0, 1] units (half the L1 of images in
    [-1, 1], pix2pix's loss scale); ``psnr`` in dB with peak 1 on [0, 1] images, ``inf`` for
    identical images. ``names``: the matched file stems, or ``'0'``, ``'1'``, ... for tensors."""
    names: Tuple[str, ...]
    l1: np.ndarray
    psnr: np.ndarray


def _items(images: ImageSet) -> list:
    if isinstance(images, torch.Tensor):
        check_images01(images)
        return list(images)
    return files_of(images)


def _pairs(a: ImageSet, b: ImageSet) -> Tuple[Tuple[str, ...], list, list]:
    # Files on both sides are matched by file stem so that '1.jpg' (dataset) pairs with '1.png'
    # (outputs); a tensor on either side is matched by position.
    if not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor):
        return matched_files(a, b)
    items_a, items_b = _items(a), _items(b)
    if len(items_a) != len(items_b):
        raise ValueError(f"{len(items_a)} images against {len(items_b)}: paired metrics need two "
                         "sets of the same size, image i of one aligned with image i of the other")
    return tuple(str(i) for i in range(len(items_a))), items_a, items_b


def paired(a: ImageSet, b: ImageSet, half_a: Optional[str] = None,
           half_b: Optional[str] = None, device: DeviceLike = "cpu") -> PairedScores:
    """Per-image L1 and PSNR (see :class:`PairedScores`) between aligned image sets ``a`` and
    ``b``: two folders (or lists of files) whose files are matched by name without extension,
    or tensors ``(N, 3, H, W)`` in [0, 1] (a generator's output mapped with ``(x + 1) / 2``)
    matched by position, also against files. ``half_a``/``half_b`` (``'left'``/``'right'``) take
    that half of each file of that side (upstream's aligned ``A|B`` pairs).

    PSNR is 10·log10(1 / MSE), the MSE over all pixels and channels of one image; averaging it
    over images is the common "mean PSNR", not the PSNR of the mean MSE. Written here rather
    than taken from torchmetrics, an optional dependency, because each is one line. The
    differences are taken in float64 on ``device`` (:func:`~mggc_plugin.device.resolve_device`,
    default the CPU; images are read on the CPU). Raises
    ``ValueError`` naming the mismatch for different names or counts, and for two images of a
    pair with different sizes."""
    for side, images, half in (("a", a, half_a), ("b", b, half_b)):
        if half is not None and isinstance(images, torch.Tensor):
            raise ValueError(f"half_{side}={half!r} applies to image files only: crop the tensor instead")
    names, items_a, items_b = _pairs(a, b)
    if not names:
        raise ValueError("both image sets are empty: paired metrics need at least one pair")
    dev = resolve_device(device)
    l1, psnr = np.empty(len(names)), np.empty(len(names))
    for i, (x, y) in enumerate(zip(items_a, items_b)):
        x = x if isinstance(x, torch.Tensor) else load_image(x, half_a)
        y = y if isinstance(y, torch.Tensor) else load_image(y, half_b)
        if x.shape != y.shape:
            raise ValueError(f"pair {names[i]}: image sizes {tuple(x.shape)} and {tuple(y.shape)} differ; "
                             "resize one set to the other's size (or pick the half of an A|B pair)")
        diff = x.to(dev, torch.float64) - y.to(dev, torch.float64)
        l1[i] = float(diff.abs().mean())
        mse = float((diff ** 2).mean())
        psnr[i] = np.inf if mse == 0 else 10 * np.log10(1 / mse)
    return PairedScores(names=names, l1=l1, psnr=psnr)
