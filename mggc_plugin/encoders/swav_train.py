"""SwAV training (Caron et al. 2020) as the official ``main_swav.py`` runs it: multi-crop views
(``src/multicropdataset.py``), LARC-wrapped SGD on a warm-up + cosine schedule, the queue, and a
per-epoch state that makes an interrupted run resumable."""
from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter
from torch import nn
from torchvision import transforms
from tqdm import tqdm

from ..device import DeviceLike, amp_dtype, compute_precision, exact_float32, resolve_device
from ..errors import MGGCUserError
from .swav import SWAV_MEAN, SWAV_STD, SwAVConfig, SwAVNet, swav_loss

logger = logging.getLogger(__name__)
#: Consecutive steps with a non-finite gradient after which training stops instead of skipping.
MAX_NONFINITE_STEPS = 10

# ---------------------------------------------------------------------------------------------
# Multi-crop augmentation
# ---------------------------------------------------------------------------------------------


class RandomGaussianBlur:
    """The official ``RandomGaussianBlur``: with probability 0.5, blur with σ uniform in
    [0.1, 2.0] pixels. The official code calls cv2 with a 23-pixel kernel, wider than the ±5σ
    support of any such σ, i.e. an untruncated Gaussian; PIL's ``GaussianBlur(radius=σ)``
    computes the same (σ is its radius) without a cv2 dependency, and — unlike torchvision's
    tensor blur — without torch threads, which stall when augmentation shares 2 cores with
    training. Draws from torch's generator."""

    def __call__(self, image: Image.Image) -> Image.Image:
        if torch.rand(()).item() < 0.5:
            return image
        sigma = 0.1 + 1.9 * torch.rand(()).item()
        return image.filter(ImageFilter.GaussianBlur(radius=sigma))


class MultiCrop:
    """SwAV's multi-crop view generator (official ``MultiCropDataset``): for each resolution,
    ``nmb_crops`` views made by RandomResizedCrop(scale), horizontal flip, colour distortion
    (ColorJitter 0.8/0.8/0.8/0.2 with p 0.8, grayscale with p 0.2), :class:`RandomGaussianBlur`
    and the official normalisation. All randomness comes from torch's generator, so seeding
    torch makes the views reproducible.
    """

    def __init__(self, config: SwAVConfig):
        self.views: List[Callable[[Image.Image], torch.Tensor]] = []
        colour = transforms.Compose([
            transforms.RandomApply([transforms.ColorJitter(0.8, 0.8, 0.8, 0.2)], p=0.8),
            transforms.RandomGrayscale(p=0.2)])
        for size, n, lo, hi in zip(config.size_crops, config.nmb_crops, config.min_scale_crops,
                                   config.max_scale_crops):
            view = transforms.Compose([
                transforms.RandomResizedCrop(size, scale=(lo, hi)),
                transforms.RandomHorizontalFlip(p=0.5),
                colour,
                RandomGaussianBlur(),
                transforms.ToTensor(),
                transforms.Normalize(SWAV_MEAN, SWAV_STD)])
            self.views += [view] * n

    def __call__(self, image: Image.Image) -> List[torch.Tensor]:
        image = image.convert("RGB")
        return [view(image) for view in self.views]


class _MultiCropDataset(torch.utils.data.Dataset):
    def __init__(self, images: Sequence[Image.Image], multicrop: MultiCrop):
        self.images, self.multicrop = images, multicrop

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> List[torch.Tensor]:
        return self.multicrop(self.images[index])


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def _larc_(optimizer: torch.optim.Optimizer, trust: float = 0.001, eps: float = 1e-8) -> None:
    # apex's LARC with clip=False, as the official code wraps SGD: each tensor's gradient
    # (weight decay folded in) is rescaled to trust·|p|/|g|, so every layer moves by the same
    # relative amount whatever its gradient scale.
    for group in optimizer.param_groups:
        wd = group["weight_decay"]
        for p in group["params"]:
            if p.grad is None:
                continue
            p_norm, g_norm = torch.norm(p), torch.norm(p.grad)
            if p_norm != 0 and g_norm != 0:
                adaptive = trust * p_norm / (g_norm + p_norm * wd + eps)
                p.grad.add_(p, alpha=wd).mul_(adaptive)


def _nonfinite_gradients(net: nn.Module) -> List[str]:
    """Names of ``net``'s parameters whose gradient holds a NaN or an infinity (one device
    synchronisation, not one per parameter)."""
    grads = [(name, p.grad) for name, p in net.named_parameters() if p.grad is not None]
    if not grads:
        return []
    finite = torch.stack([torch.isfinite(g).all() for _, g in grads]).tolist()
    return [name for (name, _), ok in zip(grads, finite) if not ok]


def _lr_schedule(config: SwAVConfig, iters_per_epoch: int) -> List[float]:
    warm = [config.base_lr * (i + 1) / max(1, iters_per_epoch * config.warmup_epochs)
            for i in range(iters_per_epoch * min(config.warmup_epochs, config.epochs))]
    n_cos = iters_per_epoch * max(0, config.epochs - config.warmup_epochs)
    final = config.base_lr * config.final_lr_ratio
    cos = [final + 0.5 * (config.base_lr - final) * (1 + math.cos(math.pi * t / n_cos)) for t in range(n_cos)]
    return warm + cos


@dataclass
class SwAVTrainingState:
    """What :func:`train_swav` hands to its epoch hook and accepts back to resume: the epoch
    count done, the model and optimizer states, the per-iteration losses so far, the queue and
    (with ``amp="fp16"``) the gradient scaler's state. Every tensor is a CPU copy, so a state
    saved during a run on one device resumes on another."""

    epoch: int
    model: Dict[str, torch.Tensor]
    optimizer: Dict[str, Any]
    losses: List[float] = field(default_factory=list)
    queue: Optional[torch.Tensor] = None
    scaler: Optional[Dict[str, Any]] = None

    def to_dict(self) -> Dict[str, Any]:
        """Plain dict for ``torch.save`` (``weights_only``-loadable)."""
        return {"epoch": self.epoch, "model": self.model, "optimizer": self.optimizer, "losses": self.losses,
                "queue": self.queue, "scaler": self.scaler}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "SwAVTrainingState":
        """Inverse of :meth:`to_dict`."""
        return cls(d["epoch"], d["model"], d["optimizer"], list(d["losses"]), d.get("queue"), d.get("scaler"))


def _cpu_copy(obj: Any) -> Any:
    # A state on the CPU, detached from the live tensors that keep training.
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu_copy(v) for v in obj)
    return copy.deepcopy(obj)


def train_swav(net: SwAVNet, images: Sequence[Image.Image], config: SwAVConfig,
               resume: Optional[SwAVTrainingState] = None,
               on_epoch_end: Optional[Callable[[SwAVTrainingState], None]] = None,
               progress: bool = True, device: DeviceLike = None, amp: Optional[str] = None) -> List[float]:
    """Train ``net`` with SwAV on ``images`` (the real target images y_j; any sequence of PIL
    images) for ``config.epochs`` epochs; return the loss of every iteration.

    The loop is the official one: prototypes re-normalised before each step, multi-crop
    forward, :func:`swav_loss` (with the queue of earlier embeddings once it is full, when
    ``queue_length`` > 0), prototype gradients dropped while frozen, LARC-wrapped SGD on a
    warm-up + cosine schedule; the last incomplete batch is dropped (``drop_last``), so at
    least ``batch_size`` images are needed. Epoch e shuffles and augments with seed
    ``config.seed + e``, so a run resumed from the ``SwAVTrainingState`` that ``on_epoch_end``
    received (persist it to survive an interruption) continues exactly as the uninterrupted
    run would (bit for bit on the CPU; on CUDA up to its non-deterministic kernels). ``net`` is
    left in train mode.

    ``device``: where to train (``None``: where ``net`` is; otherwise ``net`` is moved there,
    :func:`~mggc_plugin.device.resolve_device`). The multi-crop augmentation runs on the CPU
    and each batch is copied to the device. ``amp``: ``None`` trains in float32 (no TF32);
    ``"bf16"`` (CPU or CUDA) or ``"fp16"`` (CUDA only, with a gradient scaler) run the forward
    pass under autocast, while the loss, Sinkhorn-Knopp and LARC stay in float32 or float64.

    A step whose gradient holds a NaN or an infinity is skipped with a warning, as fp16's loss
    scaler (and the official code's apex amp) skips an overflowed one; :data:`MAX_NONFINITE_STEPS`
    in a row raise :class:`~mggc_plugin.errors.MGGCUserError`. Why not only under fp16: torch
    2.14's bfloat16 weight gradient of a padded convolution over a 1×1 input held NaNs in the
    taps that see only padding in 35 of 200 calls on a 2-core AMD EPYC (AVX512-BF16, no AMX);
    a 16-pixel crop reaches ResNet's last stage at 1×1, and one such step left NaN weights.
    """
    if len(images) < config.batch_size:
        raise ValueError(f"SwAV needs at least batch_size={config.batch_size} images, got "
                         f"{len(images)}: lower --swav_batch_size")
    device = next(net.parameters()).device if device is None else resolve_device(device)
    amp_dtype(amp, device)  # refused settings fail before any work
    net.to(device)
    # Only float16 needs loss scaling: bfloat16 has float32's exponent range.
    scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
    iters_per_epoch = len(images) // config.batch_size
    schedule = _lr_schedule(config, iters_per_epoch)
    freeze_iters = int(round(config.freeze_prototypes_epochs * iters_per_epoch))
    optimizer = torch.optim.SGD(net.parameters(), lr=config.base_lr, momentum=0.9,
                                weight_decay=config.weight_decay)
    losses: List[float] = []
    start_epoch = 0
    queue: Optional[torch.Tensor] = None
    # Official: the queue length is a multiple of the batch size.
    queue_length = config.queue_length - config.queue_length % config.batch_size
    if resume is not None:
        net.load_state_dict(resume.model)
        optimizer.load_state_dict(resume.optimizer)
        start_epoch, losses = resume.epoch, list(resume.losses)
        queue = None if resume.queue is None else resume.queue.to(device)
        if resume.scaler is not None:
            scaler.load_state_dict(resume.scaler)
    dataset = _MultiCropDataset(images, MultiCrop(config))
    n_crops = sum(config.nmb_crops)
    skipped_in_a_row = 0
    net.train()
    bar = tqdm(total=iters_per_epoch * config.epochs, initial=iters_per_epoch * start_epoch,
               desc=f"SwAV {config.arch}", unit="it", disable=not progress)
    # Backward passes too run in IEEE float32 (no TF32 on CUDA) unless autocast lowers an op.
    with exact_float32():
        for epoch in range(start_epoch, config.epochs):
            if queue_length > 0 and epoch >= config.epoch_queue_starts and queue is None:
                queue = torch.zeros(len(config.crops_for_assign), queue_length, net.prototypes.in_features,
                                    device=device)
            torch.manual_seed(config.seed + epoch)
            loader = torch.utils.data.DataLoader(
                dataset, batch_size=config.batch_size, shuffle=True, drop_last=True,
                generator=torch.Generator().manual_seed(config.seed + epoch), pin_memory=device.type == "cuda")
            for it, cpu_crops in enumerate(loader):
                crops = [c.to(device, non_blocking=True) for c in cpu_crops]
                iteration = epoch * iters_per_epoch + it
                for group in optimizer.param_groups:
                    group["lr"] = schedule[iteration]
                with torch.no_grad():
                    net.prototypes.weight.copy_(F.normalize(net.prototypes.weight, dim=1, p=2))
                with compute_precision(device, amp):
                    z, scores = net(crops)
                z, scores = z.float(), scores.float()
                queue_scores = None
                if queue is not None:
                    # Used once full (its last slot written), as the official code does; then
                    # shifted by one batch and refilled with this batch's embeddings.
                    if bool((queue[:, -1] != 0).any()):
                        queue_scores = [queue[i] @ net.prototypes.weight.detach().t() for i in range(len(queue))]
                    bs = config.batch_size
                    queue[:, bs:] = queue[:, :-bs].clone()
                    for i, crop_id in enumerate(config.crops_for_assign):
                        queue[i, :bs] = z[crop_id * bs:(crop_id + 1) * bs].detach()
                loss = swav_loss(scores, config.batch_size, n_crops, config.crops_for_assign,
                                 config.temperature, config.epsilon, config.sinkhorn_iterations, queue_scores)
                optimizer.zero_grad()
                scaler.scale(loss).backward()
                if iteration < freeze_iters:
                    net.prototypes.weight.grad = None
                scaler.unscale_(optimizer)  # LARC rescales the true gradients
                nonfinite = [] if scaler.is_enabled() else _nonfinite_gradients(net)
                if nonfinite:
                    skipped_in_a_row += 1
                    logger.warning("SwAV iteration %d: non-finite gradient in %s; step skipped", iteration,
                                   ", ".join(nonfinite))
                    if skipped_in_a_row >= MAX_NONFINITE_STEPS:
                        raise MGGCUserError(
                            f"SwAV training: {skipped_in_a_row} steps in a row had non-finite gradients (last in "
                            f"{', '.join(nonfinite)}) {f'under --amp {amp}' if amp else 'in float32'}; "
                            f"{'train without --amp, ' if amp else ''}use larger --swav_crops or a lower --swav_lr")
                else:
                    skipped_in_a_row = 0
                    _larc_(optimizer)
                    scaler.step(optimizer)  # skipped by the scaler when an fp16 gradient overflowed
                scaler.update()
                losses.append(loss.item())
                bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
                bar.update(1)
            if on_epoch_end is not None:
                # CPU copies: state_dict() shares storage with the live tensors that keep training.
                on_epoch_end(SwAVTrainingState(epoch + 1, _cpu_copy(net.state_dict()),
                                               _cpu_copy(optimizer.state_dict()), list(losses),
                                               None if queue is None else _cpu_copy(queue),
                                               _cpu_copy(scaler.state_dict()) if scaler.is_enabled() else None))
    bar.close()
    return losses
