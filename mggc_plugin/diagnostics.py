"""What the pruning game's logs watch besides Fig. 4's curves: whether D still tells the teacher's
samples from the pruned G's.

A frozen D can be gamed by the agents: gen_D may shrink it until it scores the pruned G's outputs
above the real ones, after which f_G carries no information to gen_G (measured on the facades
pix2pix teacher, ``DESIGN.md``). :func:`real_fake_auc` is the number that shows it.
"""
from __future__ import annotations

import torch


def real_fake_auc(pred_real: torch.Tensor, pred_fake: torch.Tensor) -> float:
    """The area under the ROC curve of D's scores as a real-vs-fake classifier: the probability
    that a real patch (every element of ``pred_real``, e.g. PatchGAN logits) scores above a fake
    one, ties counting one half (the Mann–Whitney U statistic over ``n_real·n_fake`` pairs,
    computed from ranks in O(n log n)). 1: D separates them; 0.5: it cannot; below 0.5: it
    ranks the fakes as more real."""
    real, fake = pred_real.detach().flatten().double().cpu(), pred_fake.detach().flatten().double().cpu()
    if real.numel() == 0 or fake.numel() == 0:
        raise ValueError("real_fake_auc needs at least one real and one fake score")
    scores = torch.cat([real, fake])
    # Average ranks of tied scores, so that identical scores contribute one half per pair.
    values, inverse, counts = torch.unique(scores, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    mid_rank = ends - (counts.double() - 1) / 2
    ranks = mid_rank[inverse]
    n_r, n_f = real.numel(), fake.numel()
    u = ranks[:n_r].sum() - n_r * (n_r + 1) / 2
    return float(u / (n_r * n_f))
