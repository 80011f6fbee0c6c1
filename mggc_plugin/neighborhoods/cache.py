"""Eq. 1's D'_y = {y'_i = G(x_i)}: the teacher's outputs on the training sources, cached on disk
as PNG files under a fingerprint (teacher checkpoint hash, source file list, preprocessing), so
that a stale cache is rebuilt and an interrupted build resumes."""
from __future__ import annotations

import io
import json
import logging
import re
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
from PIL import Image
from tqdm import tqdm

from .. import distributed
from ..data import DatasetSpec, Preprocess, pil_to_tensor, tensor_to_pil
from ..device import DeviceLike, exact_float32, resolve_device
from ..fileio import atomic_write, atomic_write_json, json_digest
from ..teacher import TeacherSpec

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]

_OUTPUT_NAME = re.compile(r"^\d{6,}\.png$")


class TeacherOutputs:
    """D'_y = {y'_i} on disk: ``<root>/<i:06d>.png`` (rounded to 8 bits, like the images upstream
    saves) and ``manifest.json`` holding the fingerprint, the source files and ``complete``."""

    MANIFEST = "manifest.json"

    def __init__(self, root: PathLike):
        self.root = Path(root)
        manifest = self.read_manifest(self.root)
        if manifest is None or not manifest.get("complete"):
            raise FileNotFoundError(f"{self.root} holds no complete set of teacher outputs: build it with "
                                    "build_teacher_outputs (or mggc neighbors)")
        self.manifest = manifest
        self.fingerprint: Dict[str, Any] = manifest["fingerprint"]
        self.sources: List[str] = manifest["sources"]
        self.nc: int = manifest["nc"]

    @staticmethod
    def read_manifest(root: Path) -> Optional[Dict[str, Any]]:
        """The manifest, or ``None`` if there is none (or it is unreadable)."""
        try:
            return json.loads((root / TeacherOutputs.MANIFEST).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    @staticmethod
    def file_name(i: int) -> str:
        return f"{i:06d}.png"

    def __len__(self) -> int:
        return len(self.sources)

    def path(self, i: int) -> Path:
        """The PNG of y'_i."""
        return self.root / self.file_name(i)

    def image(self, i: int) -> Image.Image:
        """y'_i as a PIL image."""
        with Image.open(self.path(i)) as im:
            return im.convert("L" if self.nc == 1 else "RGB")

    def tensor(self, i: int) -> torch.Tensor:
        """y'_i as a C×H×W tensor in [-1, 1]."""
        return pil_to_tensor(self.image(i))

    @property
    def digest(self) -> str:
        """Digest of the fingerprint: changes whenever D'_y is rebuilt differently."""
        return json_digest(self.fingerprint)


def _stale_reason(old: Dict[str, Any], new: Dict[str, Any]) -> str:
    names = {"teacher": "the teacher checkpoint or its architecture", "sources": "the list of source files",
             "preprocess": "the preprocessing options", "format": "the cache format"}
    changed = [names.get(k, k) for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    return " and ".join(changed) + " changed"


def _clear_outputs(root: Path) -> None:
    for p in root.iterdir():
        # Only files this module writes: never anything a user put there.
        if p.is_file() and (_OUTPUT_NAME.match(p.name) or p.name == TeacherOutputs.MANIFEST
                            or (p.name.startswith(".") and p.name.endswith(".tmp"))):
            p.unlink()


def _start(root: Path, fingerprint: Dict[str, Any], base: Dict[str, Any], n: int) -> Tuple[Optional[str], List[int]]:
    # Prepare ``root`` for a build (rank 0's part): clear a stale cache, mark the build
    # incomplete, and return why it was stale and the outputs still to compute.
    manifest = TeacherOutputs.read_manifest(root)
    same = manifest is not None and manifest.get("fingerprint") == fingerprint
    reason = None
    if not same and root.is_dir():
        # Without a matching manifest no output file here can be trusted, not even to resume.
        if manifest is not None:
            reason = _stale_reason(manifest.get("fingerprint", {}), fingerprint)
            logger.info("teacher outputs in %s are stale (%s): rebuilding", root, reason)
        _clear_outputs(root)
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_json(root / TeacherOutputs.MANIFEST, {**base, "complete": False})
    return reason, [i for i in range(n) if not (root / TeacherOutputs.file_name(i)).is_file()]


def _png(image: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    tensor_to_pil(image).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class BuildReport:
    """What a cached build did: ``reused`` (nothing computed), ``reason`` (why it was rebuilt,
    or ``None``), ``computed`` (items computed this time), ``resumed_from`` (items found done)."""

    reused: bool
    reason: Optional[str]
    computed: int
    resumed_from: int = 0


def build_teacher_outputs(root: PathLike, dataset: DatasetSpec, teacher: TeacherSpec, preprocess: Preprocess,
                          batch_size: int = 8, progress: bool = True,
                          device: DeviceLike = None) -> Tuple[TeacherOutputs, BuildReport]:
    """Compute D'_y = {G(x_i)} for every training source into ``root`` and return it.

    The fingerprint covers the teacher (checkpoint SHA-256, architecture, ``norm_stats``), the
    source files (:meth:`DatasetSpec.describe`) and ``preprocess``. A complete cache with the same
    fingerprint is reused as is; one with another fingerprint is cleared and rebuilt (the log
    says what changed); an incomplete one with the same fingerprint is resumed — every PNG is
    written atomically, so each file present is whole. G runs under ``torch.no_grad`` in the mode
    :class:`TeacherSpec` documents; with ``per_image`` it sees one image at a time.

    G runs on ``device`` (:func:`~mggc_plugin.device.resolve_device`; ``None``: CUDA when
    available) in IEEE float32 (no TF32). The fingerprint holds no device: a cache built on one
    device is reused on another; the 8-bit PNGs of two devices can differ by one level where an
    output lies within float32 rounding (~1e-6) of a rounding boundary.

    Under ``torch.distributed`` every rank calls it with the same arguments: the ranks compute
    the outputs batch by batch in turn (each on its own ``device``), rank 0 writes every file and
    the others wait for it; the cache is the one a single process writes.
    """
    root = Path(root)
    dev = resolve_device(device)
    sources = dataset.sources()
    fingerprint = {"format": 1, "teacher": teacher.describe(), "sources": dataset.describe(sources),
                   "preprocess": asdict(preprocess)}

    def complete() -> bool:
        manifest = TeacherOutputs.read_manifest(root)
        return manifest is not None and manifest.get("fingerprint") == fingerprint and bool(manifest.get("complete"))

    if distributed.from_main(complete):
        logger.info("teacher outputs: reusing %d cached images in %s", len(sources), root)
        return TeacherOutputs(root), BuildReport(True, None, 0)
    net = teacher.load().to(dev)  # before anything is changed: a damaged or mismatched checkpoint fails here
    rel = [str(r.path.relative_to(dataset.dataroot)) for r in sources]
    base = {"fingerprint": fingerprint, "sources": rel, "nc": teacher.output_nc}
    reason, todo = distributed.from_main(lambda: _start(root, fingerprint, base, len(sources)))
    resumed = len(sources) - len(todo)
    if resumed:
        logger.info("teacher outputs: resuming, %d of %d already in %s", resumed, len(sources), root)
    step = 1 if teacher.norm_stats == "per_image" else batch_size
    batches = [todo[start:start + step] for start in range(0, len(todo), step)]
    rank, size = distributed.world()
    show = progress and distributed.is_main()
    with torch.no_grad(), exact_float32(), tqdm(total=len(sources), initial=resumed, desc="teacher outputs",
                                                unit="img", disable=not show) as bar:
        # Several processes: each round every rank computes one batch and rank 0 writes them all.
        for first in range(0, len(batches), size):
            mine = batches[first + rank] if first + rank < len(batches) else []
            pngs: List[Tuple[int, bytes]] = []
            if mine:
                x = torch.stack([preprocess.tensor(sources[i].load(), preprocess.source_nc) for i in mine])
                pngs = [(i, _png(out)) for i, out in zip(mine, net(x.to(dev)).cpu())]
            for part in distributed.gather_objects(pngs):
                for i, data in part:
                    atomic_write(root / TeacherOutputs.file_name(i), partial(Path.write_bytes, data=data))
                bar.update(len(part))
    atomic_write_json(root / TeacherOutputs.MANIFEST, {**base, "complete": True})
    distributed.barrier()
    return TeacherOutputs(root), BuildReport(False, reason, len(todo), resumed)
