"""The terms of MGGC's pruning objective (Eq. 2, 5, 6).

* :func:`f_D` / :func:`f_G` — the GAN objectives of Eq. 2, written as losses that D's and G's
  agents *minimise*: least squares (``"lsgan"``, CycleGAN), hinge (``"hinge"``, the paper's choice
  for pix2pix) and the cross-entropy of the original GAN (``"vanilla"``, upstream's pix2pix
  default). They take D's raw outputs (PatchGAN maps or logits, no sigmoid).
* :func:`R` — Eq. 5, the MACs budget on G.
* :func:`L` — Eq. 6, the sparsity penalty on D.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

GAN_MODES = ("lsgan", "hinge", "vanilla")


def _check_mode(mode: str) -> None:
    if mode not in GAN_MODES:
        raise ValueError(f"unknown gan_mode {mode!r}: choose one of {', '.join(GAN_MODES)} (lsgan for CycleGAN, "
                         f"hinge for pix2pix as in the paper, vanilla for upstream's pix2pix default)")


def f_D(pred_real: torch.Tensor, pred_fake: torch.Tensor, mode: str) -> torch.Tensor:
    """D's loss of Eq. 2: ``real`` predictions should say real, ``fake`` ones fake.

    ``lsgan``: ``(D(real) - 1)² + D(fake)²``; ``hinge``: ``relu(1 - D(real)) + relu(1 + D(fake))``;
    ``vanilla``: ``BCE(D(real), 1) + BCE(D(fake), 0)`` on logits. Each term is a mean over all
    output elements, and the two terms are averaged (×0.5) as upstream's ``backward_D`` does.
    """
    _check_mode(mode)
    if mode == "lsgan":
        real, fake = (pred_real - 1).pow(2).mean(), pred_fake.pow(2).mean()
    elif mode == "hinge":
        real, fake = F.relu(1 - pred_real).mean(), F.relu(1 + pred_fake).mean()
    else:
        real = F.binary_cross_entropy_with_logits(pred_real, torch.ones_like(pred_real))
        fake = F.binary_cross_entropy_with_logits(pred_fake, torch.zeros_like(pred_fake))
    return 0.5 * (real + fake)


def f_G(pred_fake: torch.Tensor, mode: str) -> torch.Tensor:
    """G's loss of Eq. 2: fake predictions should say real.

    ``lsgan``: ``(D(fake) - 1)²``; ``hinge``: ``-D(fake)``; ``vanilla``: ``BCE(D(fake), 1)`` on
    logits (the non-saturating form upstream uses); means over all output elements.
    """
    _check_mode(mode)
    if mode == "lsgan":
        return (pred_fake - 1).pow(2).mean()
    if mode == "hinge":
        return -pred_fake.mean()
    return F.binary_cross_entropy_with_logits(pred_fake, torch.ones_like(pred_fake))


def R(T_v: torch.Tensor, p: float, T_total: float) -> torch.Tensor:
    """Eq. 5: ``R(v_G) = log(max(T(v_G), p·T_total) / (p·T_total))``.

    ``T_v`` is the (differentiable) *prunable* MACs of the sub-network chosen by v_G and
    ``T_total`` the prunable MACs of the full generator — the paper: "T_total is the total
    prunable MACs" — so ``p`` is the fraction of the prunable MACs to keep. R is 0 at or below
    the budget ``p·T_total`` (zero gradient there) and the log-ratio ``log(T_v / (p·T_total))``
    above it.
    """
    if not 0 < p <= 1:
        raise ValueError(f"p={p}: the fraction of prunable MACs to keep must lie in (0, 1]")
    if T_total <= 0:
        raise ValueError(f"T_total={T_total}: the generator has no prunable MACs")
    budget = p * T_total
    return torch.log(torch.clamp(torch.as_tensor(T_v), min=budget) / budget)


def L(v_D: Sequence[torch.Tensor]) -> torch.Tensor:
    """Eq. 6: ``L(v_D) = Σ v_D / |v_D|`` over all channel groups of D — the fraction of D's
    prunable channels kept (differentiable in the gates)."""
    flat = torch.cat([v.reshape(-1) for v in v_D])
    if flat.numel() == 0:
        raise ValueError("v_D is empty: D has no prunable channels")
    return flat.sum() / flat.numel()
