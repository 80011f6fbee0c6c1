"""``mggc eval``: evaluation metrics between folders of images, one sub-command per metric."""
from __future__ import annotations

import argparse

import numpy as np

from .. import metrics
from ..device import add_device_argument, resolve_device


def _configure_fid(p: argparse.ArgumentParser) -> None:
    p.add_argument("--real", required=True, metavar="DIR", help="folder of real images")
    p.add_argument("--fake", required=True, metavar="DIR", help="folder of generated images")
    p.add_argument("--batch_size", type=int, default=50, help="images per Inception forward pass")
    add_device_argument(p, "the Inception network runs there (float32 without TF32 on either)")


def _configure_kid(p: argparse.ArgumentParser) -> None:
    _configure_fid(p)
    p.add_argument("--subsets", type=int, default=100, help="random subsets averaged over")
    p.add_argument("--subset_size", type=int, default=None,
                   help="images per subset and side (default: min(1000, n_real, n_fake))")
    p.add_argument("--seed", type=int, default=0, help="seed of the subset draws")


def _run_kid(args: argparse.Namespace) -> int:
    value = metrics.kid(args.real, args.fake, subsets=args.subsets, subset_size=args.subset_size,
                        seed=args.seed, batch_size=args.batch_size, device=str(resolve_device(args.device)))
    print(f"real: {value.n_real} images in {args.real}; fake: {value.n_fake} images in {args.fake}; "
          f"{value.subsets} subsets of {value.subset_size}; unbiased MMD², not scaled")
    print(value)
    return 0


def _configure_paired(p: argparse.ArgumentParser) -> None:
    p.add_argument("--a", required=True, metavar="DIR", help="folder of images (e.g. outputs)")
    p.add_argument("--b", required=True, metavar="DIR",
                   help="folder of the images to compare with, same file names (extensions may differ)")
    for side in ("a", "b"):
        p.add_argument(f"--half_{side}", choices=metrics.HALVES, default=None,
                       help=f"use this half of each image of --{side} (aligned A|B pairs)")
    add_device_argument(p, "the per-pixel differences are computed there (images are read on the CPU)")


def _run_paired(args: argparse.Namespace) -> int:
    scores = metrics.paired(args.a, args.b, half_a=args.half_a, half_b=args.half_b,
                            device=resolve_device(args.device))
    finite = scores.psnr[np.isfinite(scores.psnr)]
    identical = len(scores.psnr) - len(finite)
    psnr = f"{finite.mean():.3f} dB" if len(finite) else "inf"
    note = f" ({identical} identical pair(s) left out of the PSNR mean)" if identical else ""
    print(f"{len(scores.names)} pairs: L1 {scores.l1.mean():.5f} (pixels in [0, 1]), PSNR {psnr}{note}")
    return 0


def _configure_labels(p: argparse.ArgumentParser) -> None:
    p.add_argument("--real", required=True, metavar="DIR", help="folder of ground-truth label maps")
    p.add_argument("--fake", required=True, metavar="DIR",
                   help="folder of predicted label maps, same file names (extensions may differ)")
    p.add_argument("--n_classes", type=int, required=True, help="number of classes (CMP Facades: 12)")
    p.add_argument("--real_half", choices=metrics.HALVES, default=None,
                   help="use this half of each ground-truth image (Facades' A|B files: right)")
    p.add_argument("--seed", type=int, default=0, help="seed of the palette's k-means")
    add_device_argument(p, "the snapping of pixels to the palette runs there (the palette's k-means runs on the "
                           "CPU, with scipy)")


def _run_labels(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    names, real, fake = metrics.matched_files(args.real, args.fake)
    palette = metrics.label_palette(real, args.n_classes, seed=args.seed, half=args.real_half)
    scores = metrics.label_scores(metrics.snap_to_palette(fake, palette, device=device),
                                  metrics.snap_to_palette(real, palette, half=args.real_half, device=device),
                                  args.n_classes)
    print(f"{len(names)} label maps, {args.n_classes} classes: pixel accuracy "
          f"{scores.pixel_accuracy.mean():.4f}, mIoU per image {scores.miou.mean():.4f}, "
          f"mIoU over the set {scores.dataset_miou:.4f}")
    return 0


def _run_fid(args: argparse.Namespace) -> int:
    device = str(resolve_device(args.device))
    n_real, n_fake = len(metrics.image_files(args.real)), len(metrics.image_files(args.fake))
    value = metrics.fid(args.real, args.fake, batch_size=args.batch_size, device=device)
    print(f"FID {value:.3f} (real: {n_real} images in {args.real}; fake: {n_fake} images in {args.fake})")
    return 0


_EVAL_METRICS = {
    "fid": ("Fréchet Inception Distance between two folders of images (offline, pytorch-fid "
            "preprocessing)", _configure_fid, _run_fid),
    "kid": ("Kernel Inception Distance between two folders of images (unbiased MMD², mean ± std "
            "over random subsets)", _configure_kid, _run_kid),
    "paired": ("mean per-image L1 and PSNR between two folders of aligned images matched by name",
               _configure_paired, _run_paired),
    "labels": ("pixel accuracy and mIoU of predicted label maps against ground-truth maps (palette "
               "by k-means on the ground truth)", _configure_labels, _run_labels),
}


def configure(parser: argparse.ArgumentParser) -> None:
    """Adds the metrics of ``mggc eval`` to ``parser`` as sub-commands (``mggc eval fid --real DIR
    --fake DIR [--batch_size N]``, ``kid`` likewise with ``[--subsets N] [--subset_size N]
    [--seed N]``, ``paired --a DIR --b DIR``, ``labels --real DIR --fake DIR --n_classes N``), each
    with ``--device`` (:func:`~mggc_plugin.device.add_device_argument`); the chosen one is
    ``args.metric``."""
    sub = parser.add_subparsers(dest="metric", required=True, metavar="METRIC")
    for name, (help_text, configure, _) in _EVAL_METRICS.items():
        configure(sub.add_parser(name, help=help_text, description=help_text))


def run(args: argparse.Namespace) -> int:
    """Runs the metric chosen in ``args`` (parsed by a parser set up with
    :func:`configure`), prints its result and returns the exit status 0. Errors the
    user can fix are raised as ``ValueError``/``FileNotFoundError``."""
    return _EVAL_METRICS[args.metric][2](args)
