"""Training sets in upstream's folder layouts and their deterministic preprocessing.

Nothing here imports upstream: datasets are read in upstream's folder layouts (``aligned``: A|B
side by side in ``<dataroot>/<phase>``; ``unaligned``: ``<phase>A``, ``<phase>B``) with upstream's
file order, so index i here is index i in upstream's datasets (and in D'_y, Eq. 1).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image

from .errors import MGGCFileNotFoundError, MGGCUserError
from .fileio import json_digest

PathLike = Union[str, Path]

# upstream's data/image_folder.py IMG_EXTENSIONS, case-sensitive as there, so that index i here
# is index i in upstream's datasets
IMG_EXTENSIONS = (".jpg", ".JPG", ".jpeg", ".JPEG", ".png", ".PNG", ".ppm", ".PPM", ".bmp", ".BMP",
                  ".tif", ".TIF", ".tiff", ".TIFF")
DATASET_MODES = ("aligned", "unaligned")
DIRECTIONS = ("AtoB", "BtoA")


def list_images(folder: PathLike) -> List[Path]:
    """Image files under ``folder`` (recursively) in upstream's order: ``sorted`` full paths, as
    ``AlignedDataset``/``UnalignedDataset`` sort ``make_dataset``'s list."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder: check --dataroot and --phase")
    found = [os.path.join(root, f) for root, _, files in os.walk(folder) for f in files
             if f.endswith(IMG_EXTENSIONS)]
    if not found:
        raise FileNotFoundError(f"{folder} holds no images ({', '.join(IMG_EXTENSIONS)})")
    return [Path(p) for p in sorted(found)]


def open_image(path: PathLike) -> Image.Image:
    """The image file at ``path``, decoded completely and converted to RGB. A file PIL cannot
    read (truncated, not an image, a format it does not know) is an :class:`MGGCUserError`
    that names it."""
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        if isinstance(err, FileNotFoundError):
            raise MGGCFileNotFoundError(f"image {path} does not exist (any more): check --dataroot") from None
        raise MGGCUserError(f"cannot read the image {path} ({type(err).__name__}: {err}): replace it with a "
                            f"complete copy, or remove it from the dataset folder") from None


@dataclass(frozen=True)
class ImageRef:
    """One image of a dataset: a file, or the ``left`` (A) / ``right`` (B) half of an aligned
    A|B file."""

    path: Path
    half: Optional[str] = None

    def load(self) -> Image.Image:
        """The image as RGB (upstream converts every file to RGB before splitting A|B)."""
        image = open_image(self.path)
        if self.half is None:
            return image
        w, h = image.size
        return image.crop((0, 0, w // 2, h) if self.half == "left" else (w // 2, 0, w, h))


@dataclass(frozen=True)
class DatasetSpec:
    """A training set in an upstream layout. ``direction`` picks the source side x (A for
    ``AtoB``) and the target side y, as upstream's datasets and models do. ``max_size`` keeps the
    first images of each side only, like upstream's ``--max_dataset_size`` (None: all)."""

    dataroot: Path
    dataset_mode: str = "aligned"
    direction: str = "AtoB"
    phase: str = "train"
    max_size: Optional[int] = None

    def __post_init__(self) -> None:
        if self.dataset_mode not in DATASET_MODES:
            raise ValueError(f"unknown dataset_mode {self.dataset_mode!r}: choose one of {', '.join(DATASET_MODES)}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {self.direction!r}: choose AtoB or BtoA")
        if self.max_size is not None and self.max_size < 1:
            raise ValueError(f"max_size={self.max_size}: keep at least one image, or None for all")

    def _side(self, side: str) -> List[ImageRef]:
        if self.dataset_mode == "aligned":
            half = "left" if side == "A" else "right"
            refs = [ImageRef(p, half) for p in list_images(Path(self.dataroot) / self.phase)]
        else:
            refs = [ImageRef(p) for p in list_images(Path(self.dataroot) / f"{self.phase}{side}")]
        return refs[:self.max_size]

    def sources(self) -> List[ImageRef]:
        """The training sources x_i, in upstream's order (index i of D'_y)."""
        return self._side("A" if self.direction == "AtoB" else "B")

    def targets(self) -> List[ImageRef]:
        """The real training targets y_j that E is fine-tuned on."""
        return self._side("B" if self.direction == "AtoB" else "A")

    def describe(self, refs: Sequence[ImageRef]) -> Dict[str, Any]:
        """Metadata and a digest of ``refs`` (relative path, half, size, mtime): the digest
        changes when a file is added, removed, renamed or rewritten."""
        root = Path(self.dataroot)
        files = [[str(r.path.relative_to(root)), r.half, r.path.stat().st_size, r.path.stat().st_mtime_ns]
                 for r in refs]
        return {"dataroot": str(root.resolve()), "dataset_mode": self.dataset_mode, "direction": self.direction,
                "phase": self.phase, "count": len(files), "files_sha256": json_digest(files)}


def detect_dataset_mode(dataroot: PathLike, phase: str = "train") -> str:
    """``unaligned`` when ``<dataroot>/<phase>A`` exists, ``aligned`` when ``<dataroot>/<phase>``
    does; otherwise a ``FileNotFoundError`` describing both layouts."""
    root = Path(dataroot)
    if (root / f"{phase}A").is_dir():
        return "unaligned"
    if (root / phase).is_dir():
        return "aligned"
    raise FileNotFoundError(f"{root} has neither {phase}/ (aligned A|B images) nor {phase}A/ and {phase}B/ "
                            "(unaligned): check --dataroot and --phase")


# ---------------------------------------------------------------------------------------------
# Deterministic preprocessing
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preprocess:
    """Upstream's ``get_transform`` made deterministic: grayscale when the side has 1 channel,
    resize to ``size``×``size`` (bicubic, as upstream), to tensor, normalise to [-1, 1]. No random
    crop or flip — with load size = crop size, upstream's ``resize_and_crop`` is this resize."""

    size: int
    source_nc: int = 3
    target_nc: int = 3

    def __post_init__(self) -> None:
        if self.size < 1 or self.source_nc not in (1, 3) or self.target_nc not in (1, 3):
            raise ValueError(f"bad preprocessing {self}: need size >= 1 and 1 or 3 channels")

    def image(self, image: Image.Image, nc: int) -> Image.Image:
        """Grayscale (if ``nc`` is 1) and resize: the PIL image the tensor is made from."""
        if nc == 1:
            image = image.convert("L")
        return image.resize((self.size, self.size), Image.Resampling.BICUBIC)

    def tensor(self, image: Image.Image, nc: int) -> torch.Tensor:
        """``image`` → nc×size×size float tensor in [-1, 1]."""
        return pil_to_tensor(self.image(image, nc))


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """A PIL image (L or RGB) → C×H×W float tensor in [-1, 1] (upstream's ``Normalize(0.5, 0.5)``)."""
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array[None] if array.ndim == 2 else array.transpose(2, 0, 1).copy())


def tensor_to_pil(t: torch.Tensor) -> Image.Image:
    """C×H×W tensor in [-1, 1] → PIL (L or RGB); like upstream's ``tensor2im`` but rounded."""
    array = ((t.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().cpu().numpy()
    return Image.fromarray(array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0))


class PreprocessedImages(Sequence[Image.Image]):
    """A lazy sequence of dataset images after :meth:`Preprocess.image` (for SwAV training)."""

    def __init__(self, refs: Sequence[ImageRef], preprocess: Preprocess, nc: int):
        self.refs, self.preprocess, self.nc = list(refs), preprocess, nc

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, i: Union[int, slice]):
        if isinstance(i, slice):
            return PreprocessedImages(self.refs[i], self.preprocess, self.nc)
        return self.preprocess.image(self.refs[i].load(), self.nc)
