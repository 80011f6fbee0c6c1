"""Outputs that are label maps (e.g. CMP Facades photo → labels): a colour palette of the classes,
snapping colours to class indices, and per-image pixel accuracy and mIoU."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, List, Optional, Tuple, Union

import numpy as np
import torch
from scipy.cluster.vq import ClusterError, kmeans2

from ..device import DeviceLike, resolve_device
from .images import FolderOrFiles, check_images01, files_of, load_image

#: Label maps: images on disk (a folder or a list of files) or an ``(N, 3, H, W)`` tensor in [0, 1].
LabelImages = Union[FolderOrFiles, torch.Tensor]


def _images(maps: LabelImages, half: Optional[str]) -> Tuple[int, Iterable[torch.Tensor]]:
    """How many maps there are, and the maps one by one as ``(3, H, W)`` tensors in [0, 1]
    (files are read as they are needed)."""
    if isinstance(maps, torch.Tensor):
        check_images01(maps)
        if half is not None:
            raise ValueError(f"half={half!r} applies to image files only: crop the tensor instead")
        return maps.shape[0], list(maps)
    files = files_of(maps)
    return len(files), (load_image(f, half) for f in files)


def _flat_pixels(image: torch.Tensor, tol: float) -> np.ndarray:
    # Pixels whose four neighbours all lie within tol in every channel: the inside of a label
    # region. JPEG blends colours along region borders and rings around them; with those pixels
    # k-means spends centroids on mixtures of two classes instead of on rare classes.
    x = image.permute(1, 2, 0).double().numpy()
    c = x[1:-1, 1:-1]
    spread = np.maximum.reduce([np.abs(c - n).max(axis=-1) for n in
                                (x[:-2, 1:-1], x[2:, 1:-1], x[1:-1, :-2], x[1:-1, 2:])])
    return c[spread < tol]


def label_palette(gt_maps: LabelImages, n_classes: int, seed: int = 0, restarts: int = 10,
                  max_pixels: int = 200_000, half: Optional[str] = None, flat_tol: float = 0.06) -> np.ndarray:
    """The ``(n_classes, 3)`` RGB colours (in [0, 1]) of the classes of ground-truth label maps,
    found by k-means, for maps whose exact palette is unknown or blurred by JPEG (CMP Facades:
    12 classes).

    Only pixels inside uniform regions are clustered (all four neighbours within ``flat_tol`` in
    every channel), at most ``max_pixels`` of them, drawn evenly over the maps. ``scipy``'s
    ``kmeans2`` (k-means++ seeding) runs ``restarts`` times and the run with the lowest mean
    squared distance wins. The colours are sorted by (R, G, B), so the class order does not
    depend on the order k-means returns its clusters in. Deterministic for a given ``seed``.
    ``gt_maps``: a folder, a list of files (``half``: ``'right'`` for the label half of Facades'
    ``A|B`` files) or an ``(N, 3, H, W)`` tensor in [0, 1]. An explicit palette (e.g. a
    dataset's documented colours, / 255) can be passed to :func:`snap_to_palette` instead.
    Raises ``ValueError`` when the maps hold fewer distinct uniform colours than ``n_classes``
    or an argument is out of range."""
    if n_classes < 2:
        raise ValueError(f"n_classes={n_classes}: need at least 2 classes")
    if restarts < 1 or max_pixels < n_classes:
        raise ValueError(f"restarts={restarts}, max_pixels={max_pixels}: need restarts >= 1 and "
                         f"max_pixels >= n_classes ({n_classes})")
    n_maps, maps = _images(gt_maps, half)
    per_map = math.ceil(max_pixels / n_maps)
    rng = np.random.default_rng(seed)
    chunks = []
    for image in maps:
        flat = _flat_pixels(image, flat_tol)
        chunks.append(flat if len(flat) <= per_map else flat[rng.choice(len(flat), per_map, replace=False)])
    pixels = np.concatenate(chunks)
    n_colours = len(np.unique(pixels, axis=0))
    if n_colours < n_classes:
        raise ValueError(f"the label maps hold {n_colours} distinct colours inside "
                         f"uniform regions, fewer than n_classes={n_classes}: check n_classes and half")
    best, best_distortion = None, np.inf
    for _ in range(restarts):
        try:
            centroids, labels = kmeans2(pixels, n_classes, iter=30, minit="++", missing="raise", seed=rng)
        except ClusterError:
            continue  # a cluster emptied: this restart is discarded, the others stand
        distortion = float(((pixels - centroids[labels]) ** 2).sum(axis=1).mean())
        if distortion < best_distortion:
            best, best_distortion = centroids, distortion
    if best is None:
        raise ValueError(f"k-means left a class empty in all {restarts} restarts: lower n_classes "
                         f"({n_classes}) or raise restarts")
    return best[np.lexsort(best.T[::-1])]


def snap_to_palette(images: LabelImages, palette, half: Optional[str] = None,
                    device: DeviceLike = "cpu") -> np.ndarray:
    """Class indices of label-map images: every pixel becomes the index of its nearest
    ``palette`` colour (Euclidean in RGB), an ``(N, H, W)`` int64 array. ``palette``:
    ``(K, 3)`` colours in [0, 1] (e.g. from :func:`label_palette`); ``images``: a folder, a list
    of files (with ``half``) or an ``(N, 3, H, W)`` tensor in [0, 1]. Snap the ground-truth maps
    with the same palette as the predictions: :func:`label_scores` compares class indices, not
    colours. The distances are computed in float64 on ``device``
    (:func:`~mggc_plugin.device.resolve_device`, default the CPU). Raises ``ValueError`` for a
    palette of another shape or range, or images of different sizes."""
    pal = torch.as_tensor(np.asarray(palette, dtype=np.float64))
    if pal.dim() != 2 or pal.shape[1] != 3 or pal.shape[0] < 1:
        raise ValueError(f"palette of shape {tuple(pal.shape)}: need (K, 3) RGB colours")
    if pal.min() < 0 or pal.max() > 1:
        raise ValueError(f"palette values span [{pal.min():.3g}, {pal.max():.3g}]: need [0, 1] "
                         "(divide 8-bit colours by 255)")
    dev = resolve_device(device)
    pal = pal.to(dev)
    out: List[np.ndarray] = []
    for image in _images(images, half)[1]:
        if out and image.shape[1:] != out[0].shape:
            raise ValueError(f"label map {len(out)} is {image.shape[2]}×{image.shape[1]} but the first "
                             f"is {out[0].shape[1]}×{out[0].shape[0]}: the maps must have one size")
        rgb = image.permute(1, 2, 0).reshape(-1, 3).to(dev, torch.float64)
        out.append(torch.cdist(rgb, pal).argmin(dim=1).reshape(image.shape[1:]).cpu().numpy())
    return np.stack(out).astype(np.int64)


@dataclass(frozen=True)
class LabelScores:
    """Label-map scores of N predicted maps against their ground truth over ``n_classes`` classes.

    Per image (arrays of length N): ``pixel_accuracy``, the share of pixels whose class is right;
    ``miou``, the mean IoU over the classes present in that image's ground truth *or* prediction
    (a class only predicted counts with IoU 0, a class in neither is left out).
    Over the whole set: ``class_iou[c]`` = intersection / union of class c summed over all pixels
    of all images (NaN for a class in no ground truth and no prediction) and ``dataset_miou``,
    its mean over the classes present — the usual segmentation mIoU, which weights large
    images and regions more than the mean of ``miou``; ``confusion[g, p]``, the pixels of class
    g predicted as p over all images."""
    pixel_accuracy: np.ndarray
    miou: np.ndarray
    class_iou: np.ndarray
    dataset_miou: float
    confusion: np.ndarray

    def matched_pixel_accuracy(self) -> float:
        """Pixel accuracy over all pixels after the one-to-one renaming of the predicted classes
        that maximises it (the Hungarian assignment on :attr:`confusion`,
        ``scipy.optimize.linear_sum_assignment``). Unpaired translation (CycleGAN) learns no fixed
        class-to-colour correspondence: when this is well above the plain pixel accuracy the
        predictor finds the regions but paints them the wrong colours; when it is not, the
        predicted classes carry little about the true ones."""
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(-self.confusion)
        return float(self.confusion[rows, cols].sum() / self.confusion.sum())


def label_scores(pred, gt, n_classes: int) -> LabelScores:
    """:class:`LabelScores` of predicted class maps ``pred`` against ground truth ``gt``, both
    ``(N, H, W)`` integer arrays of class indices in [0, n_classes) (e.g. from
    :func:`snap_to_palette` on the outputs and on the ground-truth maps, with one palette).
    Raises ``ValueError`` for different shapes, an empty set or an index out of range."""
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[0] == 0:
        raise ValueError(f"pred {pred.shape} and gt {gt.shape}: need two (N, H, W) class maps of one "
                         "shape with N >= 1")
    for name, m in (("pred", pred), ("gt", gt)):
        if m.min() < 0 or m.max() >= n_classes:
            raise ValueError(f"{name} holds class indices in [{m.min()}, {m.max()}]: need [0, {n_classes})")
    n = pred.shape[0]
    flat_pred, flat_gt = pred.reshape(n, -1).astype(np.int64), gt.reshape(n, -1).astype(np.int64)
    # One confusion matrix per image: counts[i, g, p] = pixels of image i with truth g predicted p.
    index = np.arange(n)[:, None] * n_classes ** 2 + flat_gt * n_classes + flat_pred
    counts = np.bincount(index.ravel(), minlength=n * n_classes ** 2).reshape(n, n_classes, n_classes)
    inter = np.diagonal(counts, axis1=1, axis2=2).astype(np.float64)
    union = counts.sum(axis=2) + counts.sum(axis=1) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = inter / union
        class_iou = inter.sum(axis=0) / union.sum(axis=0)
    miou = np.array([iou[i][union[i] > 0].mean() for i in range(n)])
    return LabelScores(pixel_accuracy=inter.sum(axis=1) / flat_gt.shape[1], miou=miou,
                       class_iou=class_iou, dataset_miou=float(np.nanmean(class_iou)), confusion=counts.sum(axis=0))


def majority_scores(gt, n_classes: int) -> LabelScores:
    """:func:`label_scores` of a constant prediction, the most frequent class of ``gt`` at every
    pixel: the floor a label-map generator must clear before its pixel accuracy and mIoU can rank
    anything (CMP Facades test maps at 64²: pixel accuracy 0.336, ``benchmarks/facades.py``)."""
    gt = np.asarray(gt)
    counts = np.bincount(gt.reshape(-1).astype(np.int64), minlength=n_classes)
    return label_scores(np.full_like(gt, int(counts.argmax())), gt, n_classes)

