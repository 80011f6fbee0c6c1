"""D'_y with several stochastic teacher outputs per source, so that neighbourhoods can hold
samples of the centre's own source (the paper's Fig. 5, green frames).

Eq. 2's ξ is "the randomness in the generator implemented with Dropout": a teacher trained with
dropout (upstream's pix2pix) gives a different y' for the same x on every pass. The default D'_y
holds one dropout-free output per source, so a neighbour y''_j always comes from another source
x_j and D's real pair ``cat(x_i, y''_j)`` is misaligned (measured on the facades pix2pix teacher:
D tells it from the pruned G's output at step 0 by that alone, AUC 0.66). With ``samples`` outputs
per source, a centre's nearest neighbours include other draws from its own source, which are
aligned with x_i.

Beyond the paper's text (it does not say how many samples per source its D'_y holds); an option
of the benchmark and the screen, measured by :func:`same_source_fraction` and the game's
``d_auc``.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..teacher import inference_copy


def dropout_copy(net: nn.Module) -> nn.Module:
    """A frozen copy of ``net`` run as :func:`~mggc_plugin.teacher.inference_copy` (per-image
    BatchNorm) but with its dropout layers on: each pass draws a new ξ of Eq. 2."""
    copy = inference_copy(net)
    for m in copy.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.train()
    return copy


def has_dropout(net: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in net.modules())


@torch.no_grad()
def stochastic_outputs(G: nn.Module, x: torch.Tensor, samples: int, seed: int = 0,
                       device: str = "cpu") -> torch.Tensor:
    """``samples`` outputs of the teacher ``G`` per source, dropout on: an (N·samples)×C×H×W
    tensor on the CPU, sample s of source i at row ``i·samples + s``. Draw ``(i, s)`` is seeded by
    ``seed``, i and s alone, so the set does not depend on batching. Raises ValueError when G has
    no dropout (every draw would be the same output) or ``samples < 1``."""
    if samples < 1:
        raise ValueError(f"samples={samples}: give at least one output per source")
    if samples > 1 and not has_dropout(G):
        raise ValueError("the teacher has no dropout layer: its outputs are deterministic, so several samples per "
                         "source would all be the same image; use samples=1")
    net = dropout_copy(G).to(device)
    out = []
    for i in range(len(x)):
        for s in range(samples):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed * 1_000_003 + i * samples + s)
                out.append(net(x[i:i + 1].to(device)).cpu())
    return torch.cat(out)


def source_of(samples: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Row index of D'_y → its source index, for outputs laid out by :func:`stochastic_outputs`."""
    return lambda rows: torch.div(rows, samples, rounding_mode="floor")


def same_source_fraction(neighbors: torch.Tensor, samples: int) -> float:
    """The fraction of neighbour entries (N·samples × k) drawn from their centre's own source."""
    src = source_of(samples)
    centres = torch.arange(len(neighbors)).unsqueeze(1)
    return float((src(neighbors) == src(centres)).float().mean())
