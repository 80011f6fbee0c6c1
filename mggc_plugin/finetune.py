"""Finetuning the slimmed pair (the paper's §Finetuning), framework-agnostic.

After the pruning game, G and D are slimmed physically by the agents' final v (``slim``) and
trained with the GAN's own objective, optionally with knowledge distillation (KD) from the
teacher. The paper says only "finetune … optionally with KD"; this follows GAN Compression and
GCC, the works it compares with:

- **objective**: ``f_D`` on D (real vs ``G(x)``), and for G ``f_G + λ_L1·|G(x) − target|₁``. For
  pix2pix the real sample and the L1 target are the ground truth; for CycleGAN the real sample is
  an (unpaired) real target image and the L1 target is the teacher's output G_T(x), whose pairs
  stand in for the missing cycle, as in GAN Compression.
- **KD** (``lambda_kd > 0``): at the output of every channel group's root layer (a layer the slim
  G shares by name with the teacher), a learned 1×1 convolution maps the student's feature to the
  teacher's width and the mean squared error to the teacher's feature is added; the adapters are
  trained with G and are not part of the saved generator.

:meth:`Finetuner.step` is one D update and one G update, as upstream's ``optimize_parameters``;
:func:`fit` is the loop around it for callers outside upstream (upstream's ``train.py`` drives its
own): upstream's ``linear`` learning-rate policy, per-epoch mean losses, and optionally an
exponential moving average (EMA) of G's weights.

**Several processes** (``torch.distributed``, e.g. under torchrun): the :class:`Finetuner` trains
G and D through PyTorch's ``DistributedDataParallel`` (gradients averaged over the ranks, rank 0's
weights broadcast at the start); each rank steps on its own batch — upstream's
``DistributedSampler`` hands each rank its share, and :func:`fit` gives each rank its equal share
of every batch (:func:`mggc_plugin.distributed.shard`), so N ranks train as one process on the
whole batch (exactly so where G and D normalise each image on its own: instance norm, or batch
norm on one image per rank). Only rank 0 should write files; :func:`fit`'s progress bar is rank 0's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.lr_scheduler import LambdaLR
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from . import distributed
from .losses import GAN_MODES, f_D, f_G

#: Where KD taps a channel group (:attr:`FinetuneConfig.kd_at`).
KD_AT = ("root", "norm")
_NORMS = (nn.BatchNorm2d, nn.InstanceNorm2d, nn.GroupNorm, nn.LayerNorm)


def post_norm_layer(net: nn.Module, name: str) -> str:
    """The name of the normalisation layer right after layer ``name`` in its parent
    ``nn.Sequential`` (upstream's conv → norm blocks), or ``name`` itself where none follows
    (e.g. the innermost U-Net down-convolution, which has no norm)."""
    parent_name, _, child = name.rpartition(".")
    parent = net.get_submodule(parent_name) if parent_name else net
    if isinstance(parent, nn.Sequential):
        keys = list(parent._modules)
        i = keys.index(child)
        if i + 1 < len(keys) and isinstance(parent._modules[keys[i + 1]], _NORMS):
            return f"{parent_name}.{keys[i + 1]}" if parent_name else keys[i + 1]
    return name


@dataclass(frozen=True)
class FinetuneConfig:
    """gan_mode: ``hinge`` (pix2pix in the paper), ``lsgan`` (CycleGAN) or ``vanilla``.
    conditional_D: D reads ``cat(x, y)`` as upstream's pix2pix. lambda_L1: weight of the L1 term
    (upstream's pix2pix default 100). lambda_kd: weight of the feature distillation (0 = off).
    kd_at: where KD taps each group: ``"root"``, the output of the group's root convolution,
    before its norm, where the scale is arbitrary; or ``"norm"``, the output of the normalisation
    layer that follows the root (:func:`post_norm_layer`), as GAN Compression distils normalised
    features (beyond the paper, which says only "optionally with KD"). lr, beta1: Adam(2e-4,
    β1 0.5), upstream's defaults."""

    gan_mode: str = "hinge"
    conditional_D: bool = True
    lambda_L1: float = 100.0
    lambda_kd: float = 0.0
    kd_at: str = "root"
    lr: float = 2e-4
    beta1: float = 0.5

    def __post_init__(self):
        if self.gan_mode not in GAN_MODES:
            raise ValueError(f"unknown gan_mode {self.gan_mode!r}: choose one of {', '.join(GAN_MODES)}")
        if self.kd_at not in KD_AT:
            raise ValueError(f"kd_at={self.kd_at!r}: choose one of {', '.join(KD_AT)}")
        if self.lambda_L1 < 0 or self.lambda_kd < 0 or self.lr <= 0:
            raise ValueError(f"lambda_L1={self.lambda_L1}, lambda_kd={self.lambda_kd}, lr={self.lr}: "
                             f"weights must be non-negative and lr positive")


class FeatureTaps:
    """Records the outputs of named layers of a network during its forward passes."""

    def __init__(self, net: nn.Module, names: Sequence[str]):
        modules = dict(net.named_modules())
        missing = [n for n in names if n not in modules]
        if missing:
            raise ValueError(f"layers {missing} are not in the network: KD needs a slim G made from the teacher")
        self.features: Dict[str, torch.Tensor] = {}
        self._handles = [modules[n].register_forward_hook(self._record(n)) for n in names]

    def _record(self, name: str):
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            self.features[name] = output
        return hook

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


class Finetuner:
    """Trains a slim G and D with :class:`FinetuneConfig`'s objective.

    ``G``, ``D``: the slim student pair (trained in place). ``teacher``: the full teacher G, only
    for KD, already in the mode its targets are computed in — typically
    :func:`mggc_plugin.teacher.inference_copy` (per-image BatchNorm as upstream's ``test.py``);
    it is run as given and never switched to ``eval()``, which would make a per-image-norm
    teacher normalise by its running statistics and distil another network. Its parameters stop
    requiring gradients. ``kd_layers``: the layers to distil at (names shared by student and
    teacher; typically ``[g.root for g in groups_G]``). Optimisers: Adam on D, and on G plus the
    KD adapters.

    Under ``torch.distributed`` (module docstring) ``G`` and ``D`` stay the plain modules (save
    and evaluate them); the training passes go through their DDP wrappers, and the KD adapters'
    gradients are averaged over the ranks explicitly (they are not called as one module).
    """

    def __init__(self, G: nn.Module, D: nn.Module, config: FinetuneConfig, teacher: Optional[nn.Module] = None,
                 kd_layers: Sequence[str] = ()):
        if config.lambda_kd > 0 and (teacher is None or not kd_layers):
            raise ValueError("lambda_kd > 0 needs the teacher G and the layers to distil at (kd_layers)")
        self.G, self.D, self.config = G, D, config
        device = next(G.parameters()).device
        self.adapters = nn.ModuleDict()
        self.kd_layers: List[str] = list(kd_layers) if config.lambda_kd > 0 else []
        if self.kd_layers:
            assert teacher is not None, "checked above: lambda_kd > 0 needs the teacher"
            self.teacher = teacher.requires_grad_(False)
            at = post_norm_layer if config.kd_at == "norm" else (lambda net, n: n)
            self._tap_S = {n: at(G, n) for n in self.kd_layers}
            self._tap_T = {n: at(teacher, n) for n in self.kd_layers}
            self._taps_S = FeatureTaps(G, list(self._tap_S.values()))
            self._taps_T = FeatureTaps(teacher, list(self._tap_T.values()))
            s_mods, t_mods = dict(G.named_modules()), dict(teacher.named_modules())
            for name in self.kd_layers:
                self.adapters[name.replace(".", "_")] = nn.Conv2d(
                    s_mods[name].out_channels, t_mods[name].out_channels, kernel_size=1).to(device)
        # Training passes go through DDP under torch.distributed (rank 0's weights everywhere from
        # here on); G and D themselves stay the plain modules callers save and evaluate.
        self._train_G: nn.Module = G
        self._train_D: nn.Module = D
        if distributed.active():
            self._train_G = nn.parallel.DistributedDataParallel(G)
            self._train_D = nn.parallel.DistributedDataParallel(D)
            distributed.broadcast_module_(self.adapters)
        betas = (config.beta1, 0.999)
        self.opt_G = torch.optim.Adam(list(G.parameters()) + list(self.adapters.parameters()), lr=config.lr,
                                      betas=betas)
        self.opt_D = torch.optim.Adam(D.parameters(), lr=config.lr, betas=betas)

    def _d(self, x: torch.Tensor, y: torch.Tensor, D: Optional[nn.Module] = None) -> torch.Tensor:
        return (D or self.D)(torch.cat([x, y], 1) if self.config.conditional_D else y)

    def _kd(self) -> torch.Tensor:
        terms = [F.mse_loss(self.adapters[n.replace(".", "_")](self._taps_S.features[self._tap_S[n]]),
                            self._taps_T.features[self._tap_T[n]]) for n in self.kd_layers]
        return torch.stack(terms).mean()

    def step(self, x: torch.Tensor, real: torch.Tensor, target: torch.Tensor) -> Dict[str, float]:
        """One D update on (``real``, G(x)) and one G update on the GAN term, ``λ_L1·|G(x) −
        target|₁`` and KD. Returns ``G_GAN``, ``G_L1``, ``G_KD`` (0 without KD), ``D``."""
        c = self.config
        self.G.train()
        self.D.train()
        fake = self._train_G(x)
        if self.kd_layers:
            with torch.no_grad():
                self.teacher(x)

        self.D.requires_grad_(True)
        self.opt_D.zero_grad(set_to_none=True)
        loss_D = f_D(self._d(x, real, self._train_D), self._d(x, fake.detach(), self._train_D), c.gan_mode)
        loss_D.backward()
        self.opt_D.step()

        # The frozen D of G's update is the plain module: its DDP wrapper would wait for
        # gradients that a frozen D never produces.
        self.D.requires_grad_(False)
        self.opt_G.zero_grad(set_to_none=True)
        loss_gan = f_G(self._d(x, fake), c.gan_mode)
        loss_l1 = F.l1_loss(fake, target)
        loss_kd = self._kd() if self.kd_layers else torch.zeros((), device=fake.device)
        (loss_gan + c.lambda_L1 * loss_l1 + c.lambda_kd * loss_kd).backward()
        distributed.average_gradients_(self.adapters.parameters())
        self.opt_G.step()
        self.D.requires_grad_(True)
        return distributed.mean_over_ranks({"G_GAN": loss_gan.item(), "G_L1": loss_l1.item(),
                                            "G_KD": loss_kd.item(), "D": loss_D.item()})

    def close(self) -> None:
        """Remove the KD hooks from the student and the teacher."""
        if self.kd_layers:
            self._taps_S.remove()
            self._taps_T.remove()


def linear_lr(epochs: int, decay_epochs: Optional[int] = None) -> Callable[[int], float]:
    """Upstream's ``linear`` learning-rate policy as a ``LambdaLR`` factor of the 0-based epoch
    e: with ``keep = epochs − decay_epochs`` constant epochs (default: the first half, ``epochs //
    2``), ``1 − max(0, e + 1 − keep) / (decay_epochs + 1)``."""
    decay = epochs - epochs // 2 if decay_epochs is None else decay_epochs
    if epochs < 1 or not 0 <= decay <= epochs:
        raise ValueError(f"epochs={epochs}, decay_epochs={decay_epochs}: need epochs >= 1 and 0 <= decay_epochs "
                         f"<= epochs")
    keep = epochs - decay
    return lambda epoch: 1.0 - max(0, epoch + 1 - keep) / float(decay + 1)


#: ``batches(epoch)``: the epoch's batches ``(x, real, target)`` as :meth:`Finetuner.step` takes them.
EpochBatches = Callable[[int], Iterable[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]]


@dataclass
class FitResult:
    """What :func:`fit` returns. ``epochs``: per epoch, the mean of every loss of
    :meth:`Finetuner.step` over its steps and ``lr``, G's learning rate during it. ``ema_G``: the
    EMA copy of G (parameters and buffers) when ``ema_decay`` was given, else None; evaluate it
    instead of G then."""

    epochs: List[Dict[str, float]]
    ema_G: Optional[nn.Module] = None


def ema_of(G: nn.Module, decay: float) -> AveragedModel:
    """torch's ``AveragedModel`` with its EMA rule, over parameters and buffers, already holding
    G's current state, so that after the next update it is ``decay·old + (1 − decay)·new``."""
    if not 0 <= decay <= 1:
        raise ValueError(f"ema_decay={decay}: give a decay in [0, 1], e.g. 0.999")
    ema = AveragedModel(G, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    ema.module.requires_grad_(False)
    ema.update_parameters(G)  # the first update copies G: the average starts at G's current weights
    return ema


def fit(tuner: Finetuner, batches: EpochBatches, epochs: int, decay_epochs: Optional[int] = None,
        ema_decay: Optional[float] = None, steps_per_epoch: Optional[int] = None, progress: bool = True,
        desc: str = "finetune") -> FitResult:
    """Finetune for ``epochs`` epochs: every batch of ``batches(epoch)`` is one
    :meth:`Finetuner.step`; both optimisers follow :func:`linear_lr` (stepped after each epoch,
    as upstream's schedulers). With ``ema_decay`` (e.g. 0.999) an EMA copy of G is updated after
    every step (``decay·ema + (1 − decay)·G``, parameters and buffers) and returned in
    :class:`FitResult`. ``steps_per_epoch`` only sizes the progress bar (shown when
    ``progress``). Returns the per-epoch mean losses. Under ``torch.distributed`` every rank
    calls it with the same batches and steps on its equal share of each (module docstring)."""
    return train_epochs(lambda batch: tuner.step(*(distributed.shard(t) for t in batch)), tuner.G,
                        [tuner.opt_G, tuner.opt_D], batches, epochs, decay_epochs, ema_decay, steps_per_epoch,
                        progress and distributed.is_main(), desc, postfix="G_L1")


def train_epochs(step: Callable[[Any], Dict[str, float]], G: nn.Module, optimizers: Sequence[torch.optim.Optimizer],
                 batches: Callable[[int], Iterable[Any]], epochs: int, decay_epochs: Optional[int] = None,
                 ema_decay: Optional[float] = None, steps_per_epoch: Optional[int] = None, progress: bool = True,
                 desc: str = "train", postfix: Optional[str] = None) -> FitResult:
    """The epoch loop shared by :func:`fit` and :func:`mggc_plugin.agd.agd_fit`: ``step(batch)``
    for every batch of ``batches(epoch)`` (it returns that step's losses), every optimiser on
    :func:`linear_lr` (stepped after each epoch, as upstream's schedulers), with ``ema_decay`` an
    EMA of ``G`` updated after every step; returns the per-epoch mean losses with ``lr`` (the
    first optimiser's, during the epoch) and the EMA copy. ``postfix``: the loss shown on the
    progress bar."""
    rule = linear_lr(epochs, decay_epochs)
    schedulers = [LambdaLR(opt, rule) for opt in optimizers]
    ema = ema_of(G, ema_decay) if ema_decay is not None else None
    history: List[Dict[str, float]] = []
    total = epochs * steps_per_epoch if steps_per_epoch else None
    with tqdm(total=total, desc=desc, leave=False, disable=not progress) as bar:
        for epoch in range(epochs):
            lr = optimizers[0].param_groups[0]["lr"]
            sums: Dict[str, float] = {}
            steps = 0
            for batch in batches(epoch):
                for key, value in step(batch).items():
                    sums[key] = sums.get(key, 0.0) + value
                steps += 1
                if ema is not None:
                    ema.update_parameters(G)
                bar.update()
            if steps == 0:
                raise ValueError(f"batches({epoch}) yielded no batch: every epoch needs at least one")
            for scheduler in schedulers:
                scheduler.step()
            history.append({**{k: v / steps for k, v in sums.items()}, "lr": lr})
            if postfix:
                bar.set_postfix({postfix: f"{history[-1][postfix]:.3f}"})
    return FitResult(history, ema.module if ema is not None else None)
