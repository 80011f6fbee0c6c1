"""The images an fp16/int8 export is calibrated and judged on.

``--calibration DIR`` names a folder of images (any layout, searched recursively); without it,
a ``checkpoints/<name>`` folder whose ``train_opt.txt`` records a ``--dataroot`` that exists here
gives the run's training sources (upstream's layouts, ``--direction`` respected). The last
images (:data:`HELD_OUT`, fewer for small sets) are held out for the quality measurement and
never used for calibration.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import torch

from ..data import DatasetSpec, ImageRef, Preprocess, detect_dataset_mode, list_images
from ..errors import MGGCUserError
from ..teacher import read_train_opt

PathLike = Union[str, Path]
HELD_OUT = 8
MAX_CALIBRATION = 64


@dataclass(frozen=True)
class Inputs:
    """Input batches of the exported graph's shape: ``calibration`` for int8 ranges, ``held_out``
    for the quality guard; ``source`` says where they came from."""

    calibration: List[torch.Tensor]
    held_out: List[torch.Tensor]
    source: str


def find_images(checkpoint: PathLike, folder: Optional[PathLike]) -> Tuple[List[ImageRef], str]:
    """The images of ``folder``, else the training sources recorded beside ``checkpoint``; an
    empty list and the reason when there are none."""
    if folder is not None:
        if not Path(folder).is_dir():
            raise MGGCUserError(f"--calibration {folder} is not a folder: give a folder of input images")
        return [ImageRef(p) for p in list_images(folder)], f"--calibration {folder}"
    opt_file = Path(checkpoint).parent / "train_opt.txt"
    if not opt_file.is_file():
        return [], f"{opt_file} does not exist, so the run's training images are unknown"
    opts = read_train_opt(opt_file)
    dataroot = opts.get("dataroot")
    if not dataroot or not Path(dataroot).is_dir():
        return [], f"the dataroot in {opt_file} ({dataroot}) is not a folder here"
    spec = DatasetSpec(Path(dataroot), detect_dataset_mode(dataroot, "train"), opts.get("direction", "AtoB"))
    return spec.sources(), f"the run's training sources ({dataroot}, from {opt_file})"


def load_inputs(refs: Sequence[ImageRef], shape: Sequence[int], source: str) -> Inputs:
    """Preprocess ``refs`` to ``shape`` (N×C×S×S; batches of N) and split them into calibration
    and held-out inputs. Needs at least two images."""
    if len(refs) < 2:
        raise MGGCUserError(f"{source} holds {len(refs)} image(s): give a folder of at least 2 input images (some are "
                            f"held out to measure the quality)")
    batch, nc, size = shape[0], shape[1], shape[-1]
    if shape[-2] != size:
        raise MGGCUserError(f"input shape {list(shape)} is not square: calibration images are resized to squares")
    held = max(1, min(HELD_OUT, len(refs) // 4))
    pre = Preprocess(size, source_nc=nc)

    def batches(part: Sequence[ImageRef]) -> List[torch.Tensor]:
        images = torch.stack([pre.tensor(r.load(), nc) for r in part])
        whole = [b for b in images.split(batch) if len(b) == batch]  # a static graph takes whole batches only
        if not whole:
            raise MGGCUserError(f"{source}: {len(part)} image(s) do not fill one batch of {batch}; give more images")
        return whole

    calibration = list(refs[:-held])[:MAX_CALIBRATION]
    return Inputs(batches(calibration), batches(refs[-held:]), source)


def random_inputs(shape: Sequence[int], count: int = HELD_OUT) -> Inputs:
    """Seeded uniform inputs in [-1, 1] as held-out inputs (no calibration inputs): the fp16
    quality check when no images are known."""
    g = torch.Generator().manual_seed(1)
    held = [torch.rand(*shape, generator=g) * 2 - 1 for _ in range(count)]
    return Inputs([], held, f"{count} random inputs (give --calibration DIR to measure on images)")
