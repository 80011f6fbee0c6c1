"""SwAV's model, Sinkhorn-Knopp codes, swapped-prediction loss, hyper-parameters, checkpoint
loading and the encoder E built from a trained network (training: :mod:`.swav_train`).

Everything follows the official SwAV code (``facebookresearch/swav``, ``main_swav.py``,
``src/resnet50.py``); where we deviate, the docstring says so and why.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from ..device import DeviceLike, amp_dtype, compute_precision, resolve_device
from ..fileio import load_torch_file
from .base import to_rgb01

SWAV_ARCHS = ("resnet50", "resnet18")

# Input normalisation of the official multi-crop dataset (its red std is 0.228, not 0.229).
SWAV_MEAN = (0.485, 0.456, 0.406)
SWAV_STD = (0.228, 0.224, 0.225)

_BACKBONE_DIMS = {"resnet50": 2048, "resnet18": 512}


# ---------------------------------------------------------------------------------------------
# SwAV model, Sinkhorn-Knopp and the swapped-prediction loss
# ---------------------------------------------------------------------------------------------


class SwAVNet(nn.Module):
    """ResNet backbone + projection head + prototypes, with the official parameter names.

    ``backbone`` is torchvision's ResNet with ``fc`` removed. The official ResNet pads by 1 and
    then convolves with padding 2 where torchvision pads by 3 — the same function — so the
    official backbone keys (``conv1.weight``, ``layer1.0.bn1.running_mean``, ...) are exactly
    torchvision's. ``projection_head`` is the official MLP (Linear, BatchNorm1d, ReLU, Linear;
    a single Linear when ``hidden_mlp`` is 0) and ``prototypes`` the bias-free Linear whose rows
    are re-normalised before every step (:func:`train_swav`).
    """

    def __init__(self, arch: str = "resnet50", feat_dim: int = 128, hidden_mlp: int = 2048,
                 n_prototypes: int = 3000):
        super().__init__()
        if arch not in SWAV_ARCHS:
            raise ValueError(f"unknown SwAV backbone {arch!r}: choose one of {', '.join(SWAV_ARCHS)}")
        self.arch = arch
        self.backbone = getattr(torchvision.models, arch)(weights=None)
        self.backbone.fc = nn.Identity()
        dim = _BACKBONE_DIMS[arch]
        if hidden_mlp == 0:
            self.projection_head: nn.Module = nn.Linear(dim, feat_dim)
        else:
            self.projection_head = nn.Sequential(
                nn.Linear(dim, hidden_mlp), nn.BatchNorm1d(hidden_mlp), nn.ReLU(inplace=True),
                nn.Linear(hidden_mlp, feat_dim))
        self.prototypes = nn.Linear(feat_dim, n_prototypes, bias=False)

    @property
    def dim(self) -> int:
        """Width of the backbone features that E returns (2048 for resnet50, 512 for resnet18)."""
        return _BACKBONE_DIMS[self.arch]

    def forward(self, crops: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """All crops of a batch (a list, same-resolution crops adjacent, as the official
        multi-crop loader yields them) → (L2-normalised projections z, prototype scores z·C),
        both with the crops stacked in order along dimension 0."""
        feats, start = [], 0
        while start < len(crops):
            end = start
            while end < len(crops) and crops[end].shape[-1] == crops[start].shape[-1]:
                end += 1
            # One backbone pass per resolution, as the official forward does.
            feats.append(self.backbone(torch.cat(list(crops[start:end]))))
            start = end
        z = F.normalize(self.projection_head(torch.cat(feats)), dim=1, p=2)
        return z, self.prototypes(z)


@torch.no_grad()
def sinkhorn_knopp(scores: torch.Tensor, epsilon: float = 0.05, iterations: int = 3) -> torch.Tensor:
    """SwAV's codes Q for a batch of prototype scores (B×K): the entropy-regularised optimal
    transport that spreads the batch equally over the K prototypes (Caron et al. 2020, Eq. 3),
    solved with ``iterations`` Sinkhorn-Knopp steps, as the official ``distributed_sinkhorn``
    (single process): alternately give every prototype 1/K and every sample 1/B of the mass.
    Returns B×K soft assignments whose rows sum to 1.

    The steps run in the log domain: the same Q as the official ``exp``-then-divide code
    whenever that one is finite, but no overflow or 0/0 for large scores or small epsilon.
    """
    log_q = scores.t().double() / epsilon  # K×B, as in the paper's notation
    n_prototypes, batch = log_q.shape
    log_q = log_q - torch.logsumexp(log_q.flatten(), 0)
    for _ in range(iterations):
        log_q = log_q - torch.logsumexp(log_q, dim=1, keepdim=True) - math.log(n_prototypes)
        log_q = log_q - torch.logsumexp(log_q, dim=0, keepdim=True) - math.log(batch)
    return torch.exp(log_q + math.log(batch)).t().to(scores.dtype)


def swav_loss(scores: torch.Tensor, batch: int, n_crops: int, crops_for_assign: Sequence[int] = (0, 1),
              temperature: float = 0.1, epsilon: float = 0.05, sinkhorn_iterations: int = 3,
              queue_scores: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
    """The swapped-prediction loss of the official ``train`` loop: for each crop used for
    assignment, codes q come from Sinkhorn-Knopp on its (detached) scores, and every *other*
    crop predicts them with ``softmax(scores / temperature)``; cross-entropies are averaged over
    the other crops and then over the assigning crops. ``scores`` is (n_crops·batch)×K with the
    crops stacked in order. ``queue_scores[i]``, when given, are the scores of queued earlier
    embeddings for the i-th assigning crop: they join the Sinkhorn problem (so the batch is
    spread over the prototypes together with them) but get no codes of their own."""
    loss = scores.new_zeros(())
    for i, crop_id in enumerate(crops_for_assign):
        out = scores[batch * crop_id: batch * (crop_id + 1)].detach()
        if queue_scores is not None:
            out = torch.cat([queue_scores[i].detach(), out])
        q = sinkhorn_knopp(out, epsilon, sinkhorn_iterations)[-batch:]
        subloss = scores.new_zeros(())
        for v in range(n_crops):
            if v == crop_id:
                continue
            log_p = F.log_softmax(scores[batch * v: batch * (v + 1)] / temperature, dim=1)
            subloss = subloss - torch.mean(torch.sum(q * log_p, dim=1))
        loss = loss + subloss / (n_crops - 1)
    return loss / len(crops_for_assign)

# ---------------------------------------------------------------------------------------------
# Hyper-parameters
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SwAVConfig:
    """SwAV hyper-parameters, and where each default comes from.

    * MGGC paper: only that E is SwAV-pretrained and fine-tuned on the real targets {y_j};
      its fine-tuning schedule is in the unavailable supplement.
    * SwAV (Caron et al. 2020) and its official code alike: ``epsilon`` 0.05 with 3
      ``sinkhorn_iterations``, ``temperature`` 0.1, 128-d projections (``feat_dim``) through a
      2048-wide MLP, 3000 prototypes, multi-crop 2×224 + 6×96 at scales 0.14–1 / 0.05–0.14 with
      codes from the two large crops, SGD with LARS/LARC, weight decay 1e-6, warm-up then cosine
      decay, prototypes frozen during the first epoch, a queue for small batches.
    * Official code only: LARC's trust coefficient 0.001 without clipping, the final learning
      rate as a fraction of the peak (``final_lr_ratio``; its 800-epoch run uses 0.001), the
      queue defaults (``queue_length`` 0, ``epoch_queue_starts`` 15).
    * Chosen here: ``epochs`` 20 with 2 warm-up epochs; ``lr`` ``None`` = 0.6·batch/256 (the
      official learning rate for batch 256, scaled linearly); ``freeze_prototypes_epochs`` 1
      (the official 313 iterations are one ImageNet epoch at batch 4096).
    """

    arch: str = "resnet50"
    feat_dim: int = 128
    hidden_mlp: int = 2048
    n_prototypes: int = 3000
    epsilon: float = 0.05
    sinkhorn_iterations: int = 3
    temperature: float = 0.1
    size_crops: Tuple[int, ...] = (224, 96)
    nmb_crops: Tuple[int, ...] = (2, 6)
    min_scale_crops: Tuple[float, ...] = (0.14, 0.05)
    max_scale_crops: Tuple[float, ...] = (1.0, 0.14)
    crops_for_assign: Tuple[int, ...] = (0, 1)
    queue_length: int = 0
    epoch_queue_starts: int = 15
    epochs: int = 20
    warmup_epochs: int = 2
    batch_size: int = 64
    lr: Optional[float] = None
    final_lr_ratio: float = 0.001
    weight_decay: float = 1e-6
    freeze_prototypes_epochs: float = 1.0
    seed: int = 31

    def __post_init__(self) -> None:
        if self.arch not in SWAV_ARCHS:
            raise ValueError(f"unknown SwAV backbone {self.arch!r}: choose one of {', '.join(SWAV_ARCHS)}")
        lengths = {len(self.size_crops), len(self.nmb_crops), len(self.min_scale_crops),
                   len(self.max_scale_crops)}
        if len(lengths) != 1:
            raise ValueError("size_crops, nmb_crops, min_scale_crops and max_scale_crops must have "
                             f"the same length (got {self.size_crops}, {self.nmb_crops}, "
                             f"{self.min_scale_crops}, {self.max_scale_crops})")
        if sum(self.nmb_crops) < 2:
            raise ValueError(f"SwAV needs at least 2 crops per image, got nmb_crops={self.nmb_crops}")
        if any(c < 0 or c >= sum(self.nmb_crops) for c in self.crops_for_assign):
            raise ValueError(f"crops_for_assign={self.crops_for_assign} names a crop beyond the "
                             f"{sum(self.nmb_crops)} crops of nmb_crops={self.nmb_crops}")
        if self.epochs < 0 or self.batch_size < 2:
            raise ValueError(f"need epochs >= 0 and batch_size >= 2 (got {self.epochs}, {self.batch_size})")

    @property
    def base_lr(self) -> float:
        """The peak learning rate: ``lr``, or 0.6·batch/256 when it is not given."""
        return self.lr if self.lr is not None else 0.6 * self.batch_size / 256

    def to_dict(self) -> Dict[str, Any]:
        """Plain, ``weights_only``-loadable form (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def swav_config_from_flags(flags: Any, prefix: str = "") -> SwAVConfig:
    """The one mapping from command-line flags to a :class:`SwAVConfig`, used by ``mggc neighbors``
    (``prefix=""``: ``--swav_arch`` …, ``--swav_seed``) and by upstream's options
    (``prefix="mggc_"``: ``--mggc_swav_arch`` …). Flags a command does not define keep the dataclass default; the
    warm-up is shortened to ``epochs - 1`` so that short runs still reach the peak rate."""
    def flag(name: str, default: Any) -> Any:
        value = getattr(flags, f"{prefix}swav_{name}", None)
        return default if value is None else value

    epochs = flag("epochs", SwAVConfig.epochs)
    return SwAVConfig(arch=flag("arch", SwAVConfig.arch), epochs=epochs,
                      batch_size=flag("batch_size", SwAVConfig.batch_size), lr=flag("lr", None),
                      n_prototypes=flag("prototypes", SwAVConfig.n_prototypes),
                      size_crops=tuple(flag("crops", SwAVConfig.size_crops)),
                      nmb_crops=tuple(flag("nmb_crops", SwAVConfig.nmb_crops)),
                      warmup_epochs=min(SwAVConfig.warmup_epochs, max(0, epochs - 1)),
                      seed=flag("seed", SwAVConfig.seed))


# ---------------------------------------------------------------------------------------------
# Loading a SwAV checkpoint
# ---------------------------------------------------------------------------------------------


def _swav_state_dict(path: Union[str, Path]) -> Dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SwAV checkpoint {path} does not exist: pass the path of a file such as "
                                "swav_800ep_pretrain.pth.tar, or leave --swav_checkpoint out to train from scratch")
    state = load_torch_file(path, "a SwAV checkpoint", "download it again, or leave the SwAV checkpoint option out "
                            "to train from scratch")
    # The released weights are a bare state dict; a training checkpoint of main_swav.py wraps it
    # in {"epoch", "state_dict", "optimizer"}.
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} is not a SwAV state dict (a dict of tensors, optionally under "
                         "'state_dict'): pass the official swav_800ep_pretrain.pth.tar or a main_swav.py checkpoint")
    # DistributedDataParallel saved every key with a "module." prefix.
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_swav_checkpoint(path: Union[str, Path], arch: str = "resnet50", feat_dim: int = 128,
                         hidden_mlp: int = 2048, n_prototypes: int = 3000) -> Tuple[SwAVNet, Dict[str, Any]]:
    """Build a :class:`SwAVNet` from a SwAV checkpoint in the official layout (a state dict,
    keys prefixed ``module.``, backbone keys named like torchvision's ResNet, plus
    ``projection_head.*`` and ``prototypes.weight``); return it and a report.

    Every backbone weight and buffer must be in the file with the right shape, or a
    ``ValueError`` names what is missing (``num_batches_tracked`` counters excepted: they do not
    affect the function). Keys that belong to neither backbone, head nor prototypes are an error
    too: they mean another architecture. The head and prototypes take the checkpoint's shapes
    when both are present (the report says ``head_from_checkpoint``); otherwise they are built
    from the arguments at random — a backbone-only file is fine, SwAV then learns them.
    """
    state = _swav_state_dict(path)
    head = {k.removeprefix("projection_head."): v for k, v in state.items() if k.startswith("projection_head.")}
    # The head is taken from the file only together with the prototypes.
    protos = state.get("prototypes.weight") if head else None
    has_head = protos is not None
    if protos is not None:
        n_prototypes, feat_dim = protos.shape
        hidden_mlp = head["0.weight"].shape[0] if "3.weight" in head else 0
    net = SwAVNet(arch, feat_dim, hidden_mlp, n_prototypes)
    hint = f"check --swav_arch (the official file is a resnet50; this is built as {arch})"

    expected = net.backbone.state_dict()
    backbone = {k: v for k, v in state.items() if not k.startswith(("projection_head.", "prototypes."))}
    missing = [k for k in expected if k not in backbone and not k.endswith("num_batches_tracked")]
    if missing:
        raise ValueError(f"{path} lacks {len(missing)} of the {len(expected)} {arch} backbone tensors (first: "
                         f"{', '.join(missing[:5])}): it is not a SwAV {arch} checkpoint — {hint}")
    unexpected = [k for k in backbone if k not in expected]
    unexpected += [k for k in state if k.startswith("prototypes.") and k != "prototypes.weight"]
    if has_head:
        unexpected += [f"projection_head.{k}" for k in head if k not in net.projection_head.state_dict()]
    if unexpected:
        raise ValueError(f"{path} has {len(unexpected)} keys that a SwAV {arch} does not have (first: "
                         f"{', '.join(unexpected[:5])}): {hint}")
    for k, v in backbone.items():
        if expected[k].shape != v.shape:
            raise ValueError(f"{path}: {k} has shape {tuple(v.shape)} but a SwAV {arch} needs "
                             f"{tuple(expected[k].shape)}: {hint}")
    net.backbone.load_state_dict(backbone, strict=False)  # only num_batches_tracked can be absent
    if has_head:
        net.projection_head.load_state_dict(head, strict=True)
        net.prototypes.load_state_dict({"weight": protos}, strict=True)
    report = {"backbone_tensors": len(backbone), "head_from_checkpoint": has_head, "feat_dim": feat_dim,
              "hidden_mlp": hidden_mlp, "n_prototypes": n_prototypes}
    return net, report


# ---------------------------------------------------------------------------------------------
# The encoder
# ---------------------------------------------------------------------------------------------


class SwAVEncoder:
    """E of Eq. 1 from a SwAV-trained network: the backbone's global-average-pooled features
    (2048-d for resnet50), the representation SwAV evaluates with (the projection head and the
    prototypes are training devices). Images are resized to the large crop size the network was
    trained at (bilinear, antialiased) and normalised like the training crops; BatchNorm uses its
    running statistics (eval mode) so an image's embedding does not depend on its batch.

    It computes on ``device`` (``None``: wherever ``net`` is; otherwise ``net`` is moved there,
    :func:`~mggc_plugin.device.resolve_device`) in float32 without TF32, or under autocast when
    ``amp`` is ``"bf16"`` or ``"fp16"`` (CUDA only)."""

    def __init__(self, net: SwAVNet, input_size: int, info: Optional[Dict[str, Any]] = None,
                 device: DeviceLike = None, amp: Optional[str] = None):
        self.device = next(net.parameters()).device if device is None else resolve_device(device)
        amp_dtype(amp, self.device)  # refused settings fail here, not at the first batch
        self.net, self.input_size, self.amp = net.to(self.device).eval(), input_size, amp
        self.dim = net.dim
        self.info = dict(info or {})
        self._mean = torch.tensor(SWAV_MEAN, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(SWAV_STD, device=self.device).view(1, 3, 1, 1)

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """B×C×H×W images in [-1, 1] → B×dim float32 backbone features, on :attr:`device`."""
        x = to_rgb01(images.to(self.device))
        x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear",
                          align_corners=False, antialias=True)
        with compute_precision(self.device, self.amp):
            return self.net.eval().backbone((x - self._mean) / self._std).float()

    def describe(self) -> Dict[str, Any]:
        """``{"name": "swav", "arch", "dim", "input_size", "amp", ...info}`` (info: how it was trained)."""
        return {"name": "swav", "arch": self.net.arch, "dim": self.dim, "input_size": self.input_size,
                "amp": self.amp, **self.info}
