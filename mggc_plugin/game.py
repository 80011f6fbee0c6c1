"""Playing the pruning game of Eq. 2 for a number of steps, with saves and exact resumption.

:meth:`MGGCPruner.step <mggc_plugin.pruner.MGGCPruner.step>` is one step; :func:`play` is the
loop around it: it draws each step's batch from a function of the step index (so a resumed game
draws the batches an uninterrupted one draws), saves the pruner's state and the per-step logs
atomically every ``save_every`` steps, and resumes from that save.

A save is two files: ``checkpoint`` (:meth:`MGGCPruner.save`: agents, optimisers, embeddings,
step count, RNG states) and ``checkpoint`` with the suffix ``.history.pt`` (the list of per-step
logs). Upstream's prune phase drives its own loop (``train.py`` hands it one batch at a time)
and saves the pruner state alone, at upstream's save points.

**Several processes** (``torch.distributed``, e.g. under torchrun): every rank calls :func:`play`
with the same arguments; each step's batch is drawn whole on every rank and each rank plays its
equal share of it (:func:`mggc_plugin.distributed.shard`), the agents' gradients are averaged
(:meth:`MGGCPruner.step`), so N ranks take the steps one process takes on the whole batch; rank 0
alone writes the saves and shows the progress bar.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

import torch
from tqdm import tqdm

from . import distributed
from .fileio import atomic_torch_save
from .pruner import MGGCPruner

#: ``batches(step) -> (x, y_center, y_neighbor[, x_neighbor])``: the sources x_i, the teacher's
#: outputs y'_i, one neighbour y''_j of each (Eq. 2) and optionally the neighbours' own sources
#: x_j (for ``MGGCConfig.real_source="own"``), already on the pruner's device.
Batches = Callable[[int], Tuple[torch.Tensor, ...]]
History = List[Dict[str, float]]


def neighbor_batches(x: torch.Tensor, y_center: torch.Tensor, neighbors: torch.Tensor, batch_size: int,
                     seed: int = 0, device: Union[str, torch.device] = "cpu") -> Batches:
    """The game's batches from the whole training set: ``x`` (N×C×H×W sources), ``y_center``
    (their teacher outputs y') and ``neighbors`` (N×k indices into ``y_center``, Eq. 1). Step s
    draws ``batch_size`` samples i uniformly with replacement and one of each sample's k
    neighbours uniformly, from a generator seeded by ``seed`` and s alone. Yields ``(x_i, y'_i,
    y''_j, x_j)``: x_j is the source the neighbour was generated from."""
    if len(x) != len(y_center) or len(neighbors) != len(x) or neighbors.dim() != 2:
        raise ValueError(f"x ({len(x)}), y_center ({len(y_center)}) and neighbors ({tuple(neighbors.shape)}) must "
                         f"describe the same samples: neighbors is N×k indices into y_center")

    def draw(step: int) -> Tuple[torch.Tensor, ...]:
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        idx = torch.randint(len(x), (batch_size,), generator=g)
        pick = neighbors[idx, torch.randint(neighbors.shape[1], (len(idx),), generator=g)]
        return x[idx].to(device), y_center[idx].to(device), y_center[pick].to(device), x[pick].to(device)

    return draw


def history_path(checkpoint: Union[str, Path]) -> Path:
    """Where :func:`play` keeps the per-step logs beside the pruner state ``checkpoint``."""
    return Path(checkpoint).with_suffix(".history.pt")


def save_game(pruner: MGGCPruner, history: History, checkpoint: Union[str, Path]) -> Path:
    """Write the per-step logs, then the pruner state, each atomically. In that order an
    interruption between the two leaves the logs ahead of the state, never behind:
    :func:`resume_game` cuts them to the state's step. Under ``torch.distributed`` every rank
    calls it and rank 0 alone writes."""
    atomic_torch_save(history, history_path(checkpoint))
    return pruner.save(checkpoint)


def resume_game(pruner: MGGCPruner, checkpoint: Union[str, Path]) -> History:
    """Restore ``pruner`` from ``checkpoint`` and return the logs of its steps (empty when no
    history file lies beside it). FileNotFoundError when ``checkpoint`` does not exist."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"no saved game at {checkpoint}")
    pruner.load(checkpoint)
    logs = history_path(checkpoint)
    history = torch.load(logs, weights_only=True) if logs.is_file() else []
    return history[:pruner.step_count]


def play(pruner: MGGCPruner, batches: Batches, steps: int, save_every: int = 200,
         checkpoint: Optional[Union[str, Path]] = None, progress: bool = True, desc: str = "prune") -> History:
    """Run ``pruner.step(*batches(s))`` for s = ``pruner.step_count`` … ``steps`` − 1 and return
    the per-step logs of steps 0 … ``steps`` − 1.

    With a ``checkpoint`` path, a game saved there is resumed first (its logs cut to the saved
    step), and the game is saved (:func:`save_game`) every ``save_every`` steps and after the last
    step. A resumed game takes the same steps as an uninterrupted one: the pruner state carries
    its RNGs, and ``batches`` depends on the step index alone. Logs of steps played before a
    resumed save without a history file are missing from the result. ``progress``: a tqdm bar
    titled ``desc`` showing G's sampled MACs fraction. Under ``torch.distributed``: module
    docstring.
    """
    if steps < 0 or save_every < 1:
        raise ValueError(f"steps={steps}, save_every={save_every}: steps must be >= 0 and save_every >= 1")
    history: History = []
    if checkpoint is not None and Path(checkpoint).is_file():
        history = resume_game(pruner, checkpoint)
    if pruner.step_count > steps:
        raise ValueError(f"the game is at step {pruner.step_count}, beyond steps={steps}: ask for at least "
                         f"{pruner.step_count} steps or start from another checkpoint")
    show = progress and distributed.is_main()
    with tqdm(total=steps, initial=pruner.step_count, desc=desc, leave=False, disable=not show) as bar:
        while pruner.step_count < steps:
            logs = pruner.step(*(distributed.shard(t) for t in batches(pruner.step_count)))
            history.append(logs)
            bar.update()
            bar.set_postfix(kept=f"{logs['kept_macs_G_total']:.3f}")
            if checkpoint is not None and (pruner.step_count % save_every == 0 or pruner.step_count == steps):
                save_game(pruner, history, checkpoint)
    return history
