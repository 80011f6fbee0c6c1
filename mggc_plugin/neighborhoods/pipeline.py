"""Eq. 1 end to end: E trained once and cached (:func:`prepare_encoder`), E' = E(D'_y) cached
(:func:`build_embeddings`), and :func:`build_neighborhoods`, which runs every step from a dataset
folder and a teacher to the neighbourhood file.

**Devices.** Every step computes on one ``device`` (:func:`mggc_plugin.device.resolve_device`;
``None``/``"auto"``: CUDA when available): the teacher outputs, SwAV's training, the embeddings
and the top-k. The caches do not depend on it: tensors are stored on the CPU in float32 and no
cache key holds the device, so a cache built on a GPU is reused on the CPU and vice versa. In the
default float32 (TF32 off on CUDA, :func:`~mggc_plugin.device.exact_float32`) the two devices
differ by float32 rounding only: teacher outputs are stored as 8-bit PNGs and can differ by one
level where a value lies within ~1e-6 of a rounding boundary; embeddings agree to ~1e-4
relative; top-k lists can differ only where two candidates' cosine similarities tie within
~1e-5, the order of such a tie being the rounding's choice (these bounds are the expected float32
rounding, checked by the CUDA tests of ``tests/test_neighborhood_device.py`` where a GPU exists,
not yet measured on one). A SwAV encoder trained on another
device has other weights (training is chaotic), and its digest in the key makes the embeddings
be recomputed.

**Mixed precision** (``amp``: ``"bf16"``, or ``"fp16"`` on CUDA only; off by default) applies to
SwAV's training and to the embeddings. It changes the numbers, so it is part of the SwAV training
fingerprint and of the embeddings' key (only when set, so float32 caches keep their keys).
Measured by ``benchmarks/neighborhoods_amp.py`` on the first 200 facades pix2pix teacher outputs,
CPU (1 thread, a 2-core Xeon with AMX, under other load), bf16 against float32: Inception
embeddings move by 1.7e-2 relative (median), 56 % of the top-5 lists stay identical, 82 % as
sets, mean overlap@5 0.964, embedding time 66 s → 40 s; an untrained resnet18 (the SwAV path's
arithmetic) 3.1e-3, 79 %, 92 %, 0.984, 9.8 s → 7.1 s. Whether the changed lists matter for the
game is not measured.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch
from PIL import Image
from torch import nn

from .. import distributed
from ..data import DatasetSpec, Preprocess, PreprocessedImages
from ..device import DeviceLike, amp_dtype, resolve_device
from ..encoders.base import ENCODERS, Encoder, choose_encoder, embed_all
from ..encoders.inception import InceptionEncoder
from ..encoders.swav import SwAVConfig, SwAVEncoder, SwAVNet, load_swav_checkpoint
from ..encoders.swav_train import SwAVTrainingState, train_swav
from ..errors import MGGCUserError
from ..fileio import atomic_torch_save, json_digest, sha256_file, state_dict_digest
from ..teacher import TeacherSpec
from .cache import TeacherOutputs, build_teacher_outputs
from .store import Neighborhoods, save_neighborhoods
from .topk import topk_cosine

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]


def prepare_encoder(kind: str, cache_dir: PathLike, targets: Optional[Sequence[Image.Image]] = None,
                    targets_key: Optional[Dict[str, Any]] = None, config: SwAVConfig = SwAVConfig(),
                    checkpoint: Optional[PathLike] = None, progress: bool = True, device: DeviceLike = None,
                    amp: Optional[str] = None) -> Tuple[Encoder, Dict[str, Any]]:
    """E of Eq. 1 and its key (what identifies its embeddings), on ``device`` (``None``: CUDA when
    available), embedding with mixed precision ``amp`` (module docstring).

    ``inception``: the frozen FID Inception network (nothing to train). ``swav``: a SwAV network
    trained with ``config`` on ``targets`` (the real y_j, as preprocessed PIL images; their
    identity is ``targets_key``), starting from ``checkpoint`` (official SwAV layout) or from
    scratch when it is ``None`` — the log says which and the key records it (``init``). The
    trained weights are cached in ``<cache_dir>/encoder_swav.pt`` and reused while the training
    fingerprint (config, targets, init) holds; a per-epoch state ``encoder_swav.partial.pt``
    lets an interrupted training resume. The key adds the weights' digest, so embeddings made
    with a retrained E are never reused. SwAV trains on ``device`` with ``amp`` too; a SwAV
    trained with ``amp`` has it in its fingerprint. The key holds no device.
    """
    dev = resolve_device(device)
    amp_dtype(amp, dev)  # refused settings fail before any work
    if kind == "inception":
        enc = InceptionEncoder(dev, amp)
        return enc, {"name": "inception", "weights_sha256": sha256_file(enc.path)}
    if kind != "swav":
        raise ValueError(f"unknown encoder {kind!r}: choose one of {', '.join(ENCODERS)}")
    if targets is None or targets_key is None:
        raise ValueError("the swav encoder needs the target images and their key to train on")
    net, fingerprint, info = _trained_swav(Path(cache_dir), targets, targets_key, config, checkpoint, progress,
                                           dev, amp)
    key = {**fingerprint, "weights_sha256": state_dict_digest(net.state_dict())}
    return SwAVEncoder(net, config.size_crops[0], info, dev, amp), key


def _trained_swav(cache_dir: Path, targets: Sequence[Image.Image], targets_key: Dict[str, Any],
                  config: SwAVConfig, checkpoint: Optional[PathLike], progress: bool, device: torch.device,
                  amp: Optional[str]) -> Tuple[SwAVNet, Dict[str, Any], Dict[str, Any]]:
    # The SwAV network of prepare_encoder (on the CPU; the encoder moves it), its training
    # fingerprint and how it was trained. The fingerprint holds amp only when set, so encoders
    # trained in float32 before amp existed keep theirs; it never holds the device.
    if checkpoint is None:
        init: Dict[str, Any] = {"init": "scratch"}
    else:
        init = {"init": "checkpoint", "checkpoint": str(Path(checkpoint).resolve()),
                "checkpoint_sha256": sha256_file(checkpoint)}
    fingerprint = {"name": "swav", "config": config.to_dict(), "targets": targets_key, **init}
    if amp is not None:
        fingerprint["amp"] = amp
    final, partial = cache_dir / "encoder_swav.pt", cache_dir / "encoder_swav.partial.pt"
    info = {**init, "epochs": config.epochs, **({"train_amp": amp} if amp is not None else {})}

    if final.is_file():
        cached = torch.load(final, map_location="cpu", weights_only=True)
        if cached.get("fingerprint") == fingerprint:
            net = SwAVNet(config.arch, **cached["head"])
            net.load_state_dict(cached["model"])
            logger.info("encoder: reusing SwAV %s (%s) from %s", config.arch, init["init"], final)
            return net, fingerprint, {**info, "losses": cached["losses"]}
        logger.info("encoder: cached SwAV in %s was trained differently: retraining", final)

    # The random initialisation (all of it from scratch; head and prototypes when the checkpoint
    # lacks them) is drawn from config.seed too, so one seed gives one encoder, bit for bit on
    # the CPU; the caller's RNG is left as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        if checkpoint is None:
            net = SwAVNet(config.arch, config.feat_dim, config.hidden_mlp, config.n_prototypes)
        else:
            net, report = load_swav_checkpoint(checkpoint, config.arch, config.feat_dim, config.hidden_mlp,
                                               config.n_prototypes)
    if checkpoint is None:
        logger.info("encoder: SwAV %s from scratch (random initialisation) on %d target images",
                    config.arch, len(targets))
    else:
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
            resume = SwAVTrainingState.from_dict(state["state"])
            logger.info("encoder: resuming SwAV training after epoch %d of %d", resume.epoch, config.epochs)

    def save_partial(state: SwAVTrainingState) -> None:
        atomic_torch_save({"fingerprint": fingerprint, "state": state.to_dict()}, partial)

    losses = train_swav(net, targets, config, resume=resume, on_epoch_end=save_partial, progress=progress,
                        device=device, amp=amp)
    net.cpu()  # the cached weights are device-independent
    atomic_torch_save({"fingerprint": fingerprint, "model": net.state_dict(), "head": head, "losses": losses}, final)
    partial.unlink(missing_ok=True)
    return net, fingerprint, {**info, "losses": losses}


def build_embeddings(cache_dir: PathLike, outputs: TeacherOutputs, encoder: Encoder,
                     encoder_key: Dict[str, Any], batch_size: int = 32, progress: bool = True) -> torch.Tensor:
    """E' = {E(y'_j)} of Eq. 1 (N×dim float32, on the CPU), computed on the encoder's device and
    cached in ``<cache_dir>/embeddings.pt`` under the digests of D'_y and of E's fingerprint, and
    the encoder's ``amp`` when it is set (an encoder without that attribute counts as float32).
    The key holds no device: the cache is reused on any device (module docstring). Under
    ``torch.distributed`` each rank embeds a contiguous block and rank 0 writes the cache."""
    path = Path(cache_dir) / "embeddings.pt"
    key = embeddings_key(outputs, encoder_key, getattr(encoder, "amp", None))

    def cached() -> Optional[torch.Tensor]:
        saved = torch.load(path, map_location="cpu", weights_only=True) if path.is_file() else {}
        return saved["embeddings"] if saved.get("key") == key else None

    reused = distributed.from_main(cached)
    if reused is not None:
        logger.info("embeddings: reusing %s", path)
        return reused
    # Several processes: each rank embeds its contiguous block of D'_y; every rank gets all blocks.
    mine = distributed.block(len(outputs))
    part = embed_all(encoder, lambda i: outputs.tensor(mine.start + i), len(mine), batch_size,
                     desc="embedding D'_y", progress=progress and distributed.is_main())
    emb = torch.cat(distributed.gather_objects(part))
    atomic_torch_save({"key": key, "embeddings": emb}, path)
    return emb


def embeddings_key(outputs: TeacherOutputs, encoder_key: Dict[str, Any], amp: Optional[str]) -> Dict[str, Any]:
    """What identifies E' in its cache: D'_y's digest, E's fingerprint digest and ``amp`` when it
    is set. Never the device."""
    key: Dict[str, Any] = {"outputs": outputs.digest, "encoder": json_digest(encoder_key)}
    if amp is not None:
        key["amp"] = amp
    return key


def build_neighborhoods(dataset: DatasetSpec, teacher: TeacherSpec, preprocess: Preprocess, out: PathLike,
                        cache_dir: PathLike, k: int = 5, encoder: str = "auto",
                        swav_config: SwAVConfig = SwAVConfig(), swav_checkpoint: Optional[PathLike] = None,
                        batch_size: int = 8, progress: bool = True, device: DeviceLike = None,
                        amp: Optional[str] = None) -> Tuple[Neighborhoods, TeacherOutputs]:
    """D'_y (cached), E (cached), E' (cached), Eq. 1 top-k, written to ``out``; returns the
    neighbourhoods and D'_y. ``out`` must not be one of the inputs. Every step computes on
    ``device`` (``None``: CUDA when available); SwAV and the embeddings use mixed precision
    ``amp`` (``None``: float32); see the module docstring for what the caches keep.

    ``encoder`` is ``swav``, ``inception`` or ``auto`` (:func:`~mggc_plugin.encoders.choose_encoder`:
    SwAV when ``swav_checkpoint`` is given, else Inception); the log and the file's metadata
    (``encoder.requested``, ``encoder.reason``) say which was used and why. SwAV's batch size is
    lowered to the number of real target images when there are fewer (with a log line), so a
    small target set trains instead of being refused.

    Under ``torch.distributed`` (e.g. ``torchrun ... mggc neighbors``) every rank calls it with
    the same arguments and its own ``device``: the teacher outputs and the embeddings are shared
    out among the ranks and gathered, SwAV trains on rank 0 alone, every rank returns the
    neighbourhoods and rank 0 writes every file, the same files a single process writes.
    Multi-node runs need ``cache_dir`` and ``out`` on a file system every node sees."""
    out, cache_dir = Path(out), Path(cache_dir)
    dev = resolve_device(device)
    amp_dtype(amp, dev)  # refused settings fail before any work
    inputs = [Path(teacher.checkpoint)] + ([Path(swav_checkpoint)] if swav_checkpoint else [])
    if any(out.exists() and p.exists() and out.resolve() == p.resolve() for p in inputs):
        raise MGGCUserError(f"--out {out} is an input file: choose another path, inputs are never overwritten")
    n_sources = len(dataset.sources())
    if not 1 <= k < n_sources:
        raise MGGCUserError(f"k={k} neighbours need 1 <= k < the number of training sources, {dataset.dataroot} "
                            f"has {n_sources}: {'raise' if k < 1 else 'lower'} --k")
    kind, reason = choose_encoder(encoder, swav_checkpoint)
    logger.info("encoder: %s (%s)", kind, reason)
    targets, targets_key = None, None
    if kind == "swav":
        refs = dataset.targets()
        swav_config = _swav_batch_for(swav_config, len(refs), dataset)
        targets = PreprocessedImages(refs, preprocess, preprocess.target_nc)
        targets_key = {"files": dataset.describe(refs), "preprocess": asdict(preprocess)}
    outputs, _ = build_teacher_outputs(cache_dir / "teacher_outputs", dataset, teacher, preprocess,
                                       batch_size, progress, device=dev)
    with distributed.main_first():  # SwAV trains on rank 0; the other ranks read its cached weights
        enc, enc_key = prepare_encoder(kind, cache_dir, targets, targets_key, swav_config, swav_checkpoint,
                                       progress, dev, amp)
    emb = build_embeddings(cache_dir, outputs, enc, enc_key, progress=progress)
    indices, sims = topk_cosine(emb, k, device=dev)
    description = enc.describe()
    description.pop("losses", None)
    if kind == "swav":
        description["config"] = swav_config.to_dict()
        description["final_loss"] = enc.info["losses"][-1] if enc.info.get("losses") else None
    metadata = {
        "k": k, "n": len(outputs), "equation": "MGGC Eq. 1 (cosine, j != i)",
        "encoder": {**description, "requested": encoder, "reason": reason, "fingerprint_sha256": json_digest(enc_key)},
        "teacher": outputs.fingerprint["teacher"], "dataset": outputs.fingerprint["sources"],
        "preprocess": outputs.fingerprint["preprocess"], "source_files": outputs.sources,
        "teacher_outputs": str(outputs.root.resolve()),
    }
    nb = Neighborhoods(indices, sims, metadata)
    save_neighborhoods(out, nb)
    distributed.barrier()
    return nb, outputs


def _swav_batch_for(config: SwAVConfig, n_targets: int, dataset: DatasetSpec) -> SwAVConfig:
    # SwAV drops the last incomplete batch: with fewer targets than a batch it would not train.
    if n_targets >= config.batch_size:
        return config
    if n_targets < 2:
        raise MGGCUserError(f"the swav encoder trains on the real target images and needs at least 2; "
                            f"{dataset.dataroot} has {n_targets}: use the inception encoder")
    logger.info("encoder: SwAV batch size %d lowered to %d, the number of real target images", config.batch_size,
                n_targets)
    return replace(config, batch_size=n_targets)
