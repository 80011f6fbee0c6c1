"""The compression methods of the facades benchmark, in one registry: each turns the teacher
pair into a student pair at a MACs budget, before the finetuning they all share.

* ``mggc`` — the full method: the pruning game of Eq. 2 with D's real sample drawn from the
  teacher-output neighbourhoods (Eq. 1), then slimming by the agents' final architecture.
* ``mggc_k0`` — the same without the manifold (k = 0, Table 2's "feedback" row): D's real sample
  is y' itself.
* ``baseline`` — Table 2's Baseline: one learned logit vector per channel group of G, D full.
* ``l1_norm`` — Li et al. 2017, "Pruning Filters for Efficient ConvNets": each channel is ranked
  by the L1 norm of the filter that produces it, and every group keeps the same fraction of its
  channels (Li et al. choose per-layer rates by a sensitivity analysis; a uniform rate is the
  common re-implementation, e.g. in torch-pruning's benchmarks), the largest fraction whose
  rounded widths fit the budget. D stays the teacher's.
* ``scratch`` — a generator of the teacher's architecture whose ngf is the largest that fits the
  budget, with a fresh discriminator of the teacher's, both at upstream's initialisation.

Every method rounds widths to multiples of ``round_to`` (``scratch``: its ngf is free).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import nn
from tqdm import tqdm

from mggc_plugin import networks
from mggc_plugin.channels import ChannelGroups
from mggc_plugin.fileio import atomic_write
from mggc_plugin.macs import count_macs
from mggc_plugin.pruner import MGGCConfig, MGGCPruner
from mggc_plugin.slim import slim


@dataclass
class GameData:
    """What the pruning game reads: sources x_i at the training size, the teacher's outputs
    y'_i = G_T(x_i), and the neighbourhood indices (N×k) of Eq. 1."""

    x: torch.Tensor
    y_center: torch.Tensor
    neighbors: torch.Tensor


@dataclass
class Context:
    """Everything a method may use. ``G_T``/``D_T``: the teacher pair (never modified).
    ``arch_G``/``arch_D``: their ``define_G``/``define_D`` arguments. ``gan_mode``,
    ``conditional_D``: the GAN's objective. ``game``: data of the pruning game. ``prune_steps``,
    ``batch_size``: its schedule. ``checkpoint``: where a game saves its state every
    ``save_every`` steps and resumes from. ``device``, ``round_to``, ``seed``."""

    G_T: nn.Module
    D_T: nn.Module
    arch_G: Dict[str, object]
    arch_D: Dict[str, object]
    gan_mode: str
    conditional_D: bool
    game: GameData
    prune_steps: int
    batch_size: int
    device: str
    round_to: int
    seed: int
    checkpoint: Optional[Path] = None
    save_every: int = 200

    def example_x(self) -> torch.Tensor:
        """One source image: the shape channel groups and MACs are traced at."""
        return self.game.x[:1]


@dataclass
class Student:
    """A method's result before finetuning: the slim pair, and what to report about how it was
    found (``history``: the game's per-step logs for the dynamics plot; ``info``: anything else)."""

    G: nn.Module
    D: nn.Module
    history: List[Dict[str, float]] = field(default_factory=list)
    info: Dict[str, object] = field(default_factory=dict)


def _play(ctx: Context, target: float, ablation: str) -> Student:
    """The pruning game of Eq. 2 in the given Table 2 row, resumed from ``ctx.checkpoint``."""
    config = MGGCConfig(target_macs=target, gan_mode=ctx.gan_mode, conditional_D=ctx.conditional_D,
                        ablation=ablation, seed=ctx.seed)
    pruner = MGGCPruner(ctx.G_T.to(ctx.device), ctx.D_T.to(ctx.device), ctx.example_x().to(ctx.device), config)
    history: List[Dict[str, float]] = []
    if ctx.checkpoint is not None and ctx.checkpoint.is_file():
        pruner.load(ctx.checkpoint)
        # The history is saved just before the state: an interruption between the two leaves it ahead.
        history = torch.load(ctx.checkpoint.with_suffix(".history.pt"), weights_only=True)[:pruner.step_count]
    game = ctx.game
    # One generator per step index, so a resumed game draws the same batches as an uninterrupted one.
    with tqdm(total=ctx.prune_steps, initial=pruner.step_count, desc=f"prune {ablation}", leave=False) as bar:
        while pruner.step_count < ctx.prune_steps:
            g = torch.Generator().manual_seed(ctx.seed * 1_000_003 + pruner.step_count)
            idx = torch.randint(len(game.x), (ctx.batch_size,), generator=g)
            pick = game.neighbors[idx, torch.randint(game.neighbors.shape[1], (len(idx),), generator=g)]
            logs = pruner.step(game.x[idx].to(ctx.device), game.y_center[idx].to(ctx.device),
                               game.y_center[pick].to(ctx.device))
            history.append(logs)
            bar.update()
            bar.set_postfix(kept=f"{logs['kept_macs_G_total']:.3f}")
            if ctx.checkpoint is not None and (pruner.step_count % ctx.save_every == 0
                                               or pruner.step_count == ctx.prune_steps):
                _save_game(pruner, history, ctx.checkpoint)
    arch = pruner.finalize(round_to=ctx.round_to)
    G_T, D_T = ctx.G_T.cpu(), ctx.D_T.cpu()
    info = {"trimmed_channels_G": arch.trimmed_G, "steps": pruner.step_count,
            "sampled_kept_macs_G_last100": sum(h["kept_macs_G_total"] for h in history[-100:]) / min(100, len(history)),
            "p": pruner.p}
    return Student(slim(G_T, pruner.groups_G, arch.v_G), slim(D_T, pruner.groups_D, arch.v_D), history, info)


def _save_game(pruner: MGGCPruner, history: List[Dict[str, float]], path: Path) -> None:
    atomic_write(path.with_suffix(".history.pt"), lambda tmp: torch.save(history, tmp))
    pruner.save(path)


def filter_l1(module: nn.Module) -> torch.Tensor:
    """Li et al.'s filter score: the L1 norm of each output channel's kernel weights
    (``Conv2d``: ``weight[j]``; ``ConvTranspose2d``: ``weight[:, j]``; ``Linear``: ``weight[j]``)."""
    w = module.weight.detach()
    if isinstance(module, nn.ConvTranspose2d):
        return w.abs().sum(dim=(0, 2, 3))
    return w.abs().flatten(1).sum(dim=1)


def uniform_masks(groups: ChannelGroups, scores: List[torch.Tensor], rate: float, round_to: int
                  ) -> List[torch.Tensor]:
    """Each group keeps its ``rate`` fraction of channels (rounded to a multiple of ``round_to``,
    at least ``round_to`` or the whole group if smaller), the highest-scoring ones."""
    masks = []
    for size, score in zip(groups.sizes, scores):
        width = min(size, max(round_to, round(rate * size / round_to) * round_to))
        mask = torch.zeros(size, dtype=torch.bool)
        mask[score.topk(width).indices] = True
        masks.append(mask)
    return masks


def _l1_norm(ctx: Context, target: float) -> Student:
    G_T = ctx.G_T.cpu()
    groups = ChannelGroups.discover(G_T, ctx.example_x())
    modules = dict(G_T.named_modules())
    scores = [filter_l1(modules[g.root]) for g in groups]
    budget = target * groups.full_macs
    lo, hi = 0.0, 1.0  # the largest uniform rate whose rounded widths fit the budget
    for _ in range(40):
        mid = (lo + hi) / 2
        if float(groups.macs(uniform_masks(groups, scores, mid, ctx.round_to))) <= budget:
            lo = mid
        else:
            hi = mid
    masks = uniform_masks(groups, scores, lo, ctx.round_to)
    if float(groups.macs(masks)) > budget:
        raise ValueError(f"target {target:.2%}: even the narrowest widths (multiples of {ctx.round_to}) exceed it")
    D_T = ctx.D_T.cpu()
    groups_D = ChannelGroups.discover(D_T, _d_example(ctx, G_T))
    full_D = slim(D_T, groups_D, [torch.ones(n, dtype=torch.bool) for n in groups_D.sizes])
    return Student(slim(G_T, groups, masks), full_D, info={"rate": lo})


def _d_example(ctx: Context, G: nn.Module) -> torch.Tensor:
    x = ctx.example_x()
    with torch.no_grad():
        was = G.training
        y = G.eval()(x)
        G.train(was)
    return torch.cat([x, y], 1) if ctx.conditional_D else y


def ngf_for_budget(arch_G: Dict[str, object], input_shape: Tuple[int, ...], budget_macs: float) -> int:
    """The largest ngf whose generator of ``arch_G``'s architecture has at most ``budget_macs``."""
    for ngf in range(int(arch_G["ngf"]), 0, -1):
        if count_macs(networks.define_G(**{**arch_G, "ngf": ngf}), input_shape).total <= budget_macs:
            return ngf
    raise ValueError(f"no ngf >= 1 fits {budget_macs:,.0f} MACs")


def _scratch(ctx: Context, target: float) -> Student:
    shape = tuple(ctx.example_x().shape)
    full = count_macs(ctx.G_T.cpu(), shape).total
    ngf = ngf_for_budget(ctx.arch_G, shape, target * full)
    torch.manual_seed(ctx.seed)
    G = networks.define_G(**{**ctx.arch_G, "ngf": ngf})
    D = networks.define_D(**ctx.arch_D)
    # Wrapped as full-width slim networks, so every student is saved and reloaded the same way.
    groups = ChannelGroups.discover(G, ctx.example_x())
    G = slim(G, groups, [torch.ones(n, dtype=torch.bool) for n in groups.sizes])
    groups_D = ChannelGroups.discover(D, _d_example(ctx, G))
    D = slim(D, groups_D, [torch.ones(n, dtype=torch.bool) for n in groups_D.sizes])
    return Student(G, D, info={"ngf": ngf})


@dataclass(frozen=True)
class Method:
    """One row of the table: its label and how it makes the student pair."""

    label: str
    make: Callable[[Context, float], Student]
    plays_game: bool = False


METHODS: Dict[str, Method] = {
    "mggc": Method("MGGC", lambda ctx, t: _play(ctx, t, "mggc"), plays_game=True),
    "mggc_k0": Method("MGGC, k = 0 (no manifold)", lambda ctx, t: _play(ctx, t, "feedback"), plays_game=True),
    "baseline": Method("Baseline (Table 2)", lambda ctx, t: _play(ctx, t, "baseline"), plays_game=True),
    "l1_norm": Method("L1-norm filter pruning", _l1_norm),
    "scratch": Method("From scratch (smaller ngf)", _scratch),
}


def check_methods(names: List[str]) -> List[str]:
    """``names`` if all are keys of :data:`METHODS`, else a ValueError naming the unknown ones."""
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}: choose from {', '.join(METHODS)}")
    return names
