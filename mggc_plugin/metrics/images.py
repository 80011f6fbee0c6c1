"""Image sets for the metrics: the image files of a folder, one image as a [0, 1] tensor, and a set
of equally sized images as one ``(N, 3, H, W)`` tensor."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image

#: File name endings (compared case-insensitively) that :func:`image_files` treats as images.
IMAGE_EXTENSIONS = (".bmp", ".jpeg", ".jpg", ".png")
#: Values of ``half``: the half of each image to use, for upstream's aligned ``A|B`` pairs (CMP
#: Facades: the photo on the left, the label map on the right).
HALVES = ("left", "right")

PathLike = Union[str, os.PathLike]
#: A folder, or a list of image files.
FolderOrFiles = Union[PathLike, Sequence[PathLike]]
ImagesOrDir = Union[str, os.PathLike, torch.Tensor]


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


def is_folder_or_files(x: object) -> bool:
    """Whether ``x`` names images on disk (a path, or a list or tuple of paths) rather than holding
    them in memory."""
    if isinstance(x, (str, os.PathLike)):
        return True
    return isinstance(x, (list, tuple)) and all(isinstance(p, (str, os.PathLike)) for p in x)


def files_of(folder_or_files: FolderOrFiles) -> List[Path]:
    """The image files of a folder (:func:`image_files`, sorted by name) or the given list of files
    in its own order. Raises ``ValueError`` for an empty list and ``FileNotFoundError`` naming the
    first listed file that does not exist; ``ValueError`` for anything else than a path or a list
    of paths."""
    if isinstance(folder_or_files, (str, os.PathLike)):
        return image_files(folder_or_files)
    if not is_folder_or_files(folder_or_files):
        raise ValueError(f"cannot take image files from a {type(folder_or_files).__name__}: pass a folder "
                         "or a list of image files")
    files = [Path(p) for p in folder_or_files]
    if not files:
        raise ValueError("the list of image files is empty: pass at least one file, or a folder")
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"image file {f} does not exist")
    return files


def _by_stem(files: List[Path], label: str) -> Dict[str, Path]:
    by_stem: Dict[str, Path] = {}
    for f in files:
        if f.stem in by_stem:
            raise ValueError(f"{label} holds both {by_stem[f.stem].name} and {f.name}: pairs are "
                             "matched by file name without extension, which must be unique")
        by_stem[f.stem] = f
    return by_stem


def matched_files(a: FolderOrFiles, b: FolderOrFiles) -> Tuple[Tuple[str, ...], List[Path], List[Path]]:
    """The image files of two aligned sets (folders or lists), matched by file name without
    extension (so a dataset's ``1.jpg`` pairs with an output's ``1.png``): the sorted common
    names and the files of ``a`` and of ``b`` in that order. Raises ``ValueError`` naming the
    names found on one side only, or a name that occurs twice on one side."""
    sa, sb = _by_stem(files_of(a), str(a)), _by_stem(files_of(b), str(b))
    if sa.keys() != sb.keys():
        only_a, only_b = sorted(sa.keys() - sb.keys()), sorted(sb.keys() - sa.keys())
        raise ValueError(f"the image names of {a} ({len(sa)}) and {b} ({len(sb)}) differ: only in "
                         f"the first {only_a[:5]}, only in the second {only_b[:5]}; pass two sets "
                         "with the same file names (extensions may differ)")
    names = tuple(sorted(sa))
    return names, [sa[n] for n in names], [sb[n] for n in names]


def _check_half(half: Optional[str]) -> None:
    if half is not None and half not in HALVES:
        raise ValueError(f"half={half!r}: use None (the whole image), 'left' or 'right'")


def load_image(path: PathLike, half: Optional[str] = None, size: Optional[int] = None) -> torch.Tensor:
    """The image at ``path`` as a float ``(3, H, W)`` tensor of RGB values in [0, 1] (PIL, any mode
    converted to RGB). ``half`` (``'left'``/``'right'``, see :data:`HALVES`) keeps that half of
    the width; ``size`` then resizes it to ``size``² with PIL's bicubic filter on 8-bit values, as
    upstream's ``resize`` preprocessing (and :class:`mggc_plugin.data.Preprocess`) does, so real
    images can be scored at the resolution a generator works at. Raises ``ValueError`` naming the
    file when it cannot be read."""
    _check_half(half)
    if size is not None and size < 1:
        raise ValueError(f"size={size}: pass a positive side length, or None to keep the image's size")
    try:
        with Image.open(path) as im:
            rgb_image = im.convert("RGB")
            if half is not None:
                w = rgb_image.width // 2
                rgb_image = rgb_image.crop((0, 0, w, rgb_image.height) if half == "left"
                                           else (w, 0, 2 * w, rgb_image.height))
            if size is not None:
                rgb_image = rgb_image.resize((size, size), Image.Resampling.BICUBIC)
            rgb = np.asarray(rgb_image, dtype=np.float32)
    except (OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"cannot read {path} as an image ({err}): remove it from the folder") from err
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1) / 255.0


def load_images(folder_or_files: FolderOrFiles, half: Optional[str] = None) -> torch.Tensor:
    """The images of a folder or list of files (:func:`files_of`, in that order) stacked into one
    float ``(N, 3, H, W)`` tensor in [0, 1] (:func:`load_image`, with ``half``). Raises
    ``ValueError`` naming the first file whose size differs from the first file's."""
    files = files_of(folder_or_files)
    images = [load_image(files[0], half)]
    for f in files[1:]:
        image = load_image(f, half)
        if image.shape != images[0].shape:
            raise ValueError(f"{f} is {image.shape[2]}×{image.shape[1]} but {files[0]} is "
                             f"{images[0].shape[2]}×{images[0].shape[1]}: the images of one set must "
                             "have one size")
        images.append(image)
    return torch.stack(images)


def check_images01(images: torch.Tensor) -> None:
    """Raises ``ValueError`` unless ``images`` is an ``(N, 3, H, W)`` tensor with values in [0, 1]
    (a generator's [-1, 1] output must be mapped with ``(x + 1) / 2`` first)."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images of shape {tuple(images.shape)}: need (N, 3, H, W)")
    if images.numel() and (images.min() < 0 or images.max() > 1):
        raise ValueError(f"image values span [{images.min():.3g}, {images.max():.3g}]: need [0, 1] "
                         "(map a generator's [-1, 1] output with (x + 1) / 2)")
