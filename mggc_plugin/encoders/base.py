"""What Eq. 1 needs of the encoder E (:class:`Encoder`), and embedding many images with it."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, Optional, Protocol, Tuple, Union

import torch
from tqdm import tqdm

from ..errors import MGGCUserError

ENCODERS = ("swav", "inception")
#: What ``--encoder`` (``mggc neighbors``) and ``--mggc_encoder`` (upstream) accept: an encoder
#: of :data:`ENCODERS`, or ``auto`` (:func:`choose_encoder`).
ENCODER_CHOICES = ("auto",) + ENCODERS


def choose_encoder(requested: str, swav_checkpoint: Optional[Union[str, Path]]) -> Tuple[str, str]:
    """The encoder E of Eq. 1 to use and why, as ``(name, reason)``. ``auto`` takes SwAV,
    fine-tuned from ``swav_checkpoint`` on the real targets (the paper's E), when a checkpoint is
    given, and otherwise the frozen FID Inception network: it works offline, on any number of
    images and needs no training, whereas SwAV from scratch needs many images and epochs to beat
    it. An explicit ``swav`` or ``inception`` is taken as asked."""
    if requested not in ENCODER_CHOICES:
        raise MGGCUserError(f"unknown encoder {requested!r}: choose one of {', '.join(ENCODER_CHOICES)}")
    if requested == "auto" and swav_checkpoint:
        return "swav", f"auto: SwAV fine-tuned from the given checkpoint {swav_checkpoint} (the paper's encoder)"
    if requested == "auto":
        return "inception", ("auto: no SwAV checkpoint given, so the frozen FID Inception network (nothing to "
                             "train); give a SwAV checkpoint for the paper's encoder")
    unused = " (the SwAV checkpoint is not used)" if requested == "inception" and swav_checkpoint else ""
    return requested, f"asked for{unused}"


class Encoder(Protocol):
    """What Eq. 1 needs of E: ``embed`` maps a batch of images (B×C×H×W floats in [-1, 1], C = 1
    or 3, on any device) to a B×``dim`` tensor; ``describe`` returns plain metadata for the
    neighbourhood file. ``input_size`` is the square resolution E resizes every image to, and
    ``info`` says how E was made (for SwAV: initialisation, epochs, per-iteration losses; empty
    for a frozen E). ``device`` is where ``embed`` computes; ``amp`` its mixed precision
    (``None``: float32; ``"bf16"``/``"fp16"``, see :func:`mggc_plugin.device.compute_precision`),
    part of the embeddings' cache key because it changes them."""

    dim: int
    input_size: int
    info: Dict[str, Any]
    device: torch.device
    amp: Optional[str]

    def embed(self, images: torch.Tensor) -> torch.Tensor: ...

    def describe(self) -> Dict[str, Any]: ...


def to_rgb01(images: torch.Tensor) -> torch.Tensor:
    """B×C×H×W images in [-1, 1] with C = 1 or 3 → B×3×H×W in [0, 1] (grey repeated over RGB);
    ``ValueError`` for any other shape."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images of shape B×C×H×W with C = 1 or 3, got {tuple(images.shape)}")
    images = (images.float() + 1) / 2
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


def embed_all(encoder: Encoder, images: Callable[[int], torch.Tensor], n: int, batch_size: int = 32,
              desc: str = "embedding", progress: bool = True) -> torch.Tensor:
    """Embed ``n`` images, ``images(i)`` giving the i-th as a C×H×W tensor in [-1, 1], in batches
    with a progress bar; returns the n×dim float32 matrix E' of Eq. 1 on the CPU, whatever device
    and precision the encoder computes in (images are read on the CPU; the encoder moves each
    batch to its device)."""
    out = torch.empty(n, encoder.dim)
    for start in tqdm(range(0, n, batch_size), desc=desc, unit="batch", disable=not progress):
        idx = range(start, min(n, start + batch_size))
        out[start:start + len(idx)] = encoder.embed(torch.stack([images(i) for i in idx])).float().cpu()
    return out
