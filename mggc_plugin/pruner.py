"""One step of MGGC's pruning game (Eq. 2) between the agents gen_G and gen_D, and the final
architecture it finds.

Framework-agnostic: plain modules and tensors in, a dict of floats out. An upstream model calls
:meth:`MGGCPruner.step` from ``optimize_parameters``; a user calls it in their own loop::

    pruner = MGGCPruner(G, D, example_x, MGGCConfig(target_macs=0.044, gan_mode="lsgan"))
    for x, y_center, y_neighbor in loader:
        logs = pruner.step(x, y_center, y_neighbor)      # loss_G, loss_D, R, L, kept_macs_G, ...
    arch = pruner.finalize(round_to=8)                   # binary masks for G and D
    G_small = mggc_plugin.slim(G, pruner.groups_G, arch.v_G)

**The budget.** ``p`` (:attr:`MGGCConfig.p`) is the fraction of G's *prunable* MACs to keep, the
p of Eq. 5, whose T_total the paper defines as "the total prunable MACs"; T(v_G) is then the
prunable MACs of the sub-network, so both sides of Eq. 5 count the same thing. The *prunable*
MACs are the full model's MACs minus those no gate can remove (``groups.macs(all-zero gates)``,
0 for the stock ResNet, U-Net and PatchGAN). :attr:`MGGCConfig.target_macs` takes the budget as
a fraction of G's *total* MACs instead (upstream's ``--mggc_target_macs``) and is converted by
:func:`prunable_fraction`. Networks are fully convolutional, so the fractions hold at any input
size even though the MACs are counted at the example input's.

**The teacher stays the teacher.** G and D are never optimised: during a step their parameters
do not require gradients (backward computes activation gradients only, which also makes the step
cheaper than a GAN training step), and every buffer they own is put back bit-identically
afterwards. The forward pass is in train mode, as during the teacher's training: dropout is the
ξ of Eq. 2 ("randomness in the generator implemented with Dropout"), and BatchNorm normalises
with the batch's statistics; whatever it writes into its running statistics is restored.
"""
from __future__ import annotations

import contextlib
import heapq
from collections import deque
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import ContextManager, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from . import distributed
from .agents import Agent, ArchitectureAgent, LogitAgent, gumbel_sigmoid, harden
from .baselines import fill_while
from .channels import ChannelGroups
from .device import RNGStream
from .diagnostics import real_fake_auc
from .fileio import atomic_torch_save, json_digest
from .latency_table import LatencyTable
from .losses import GAN_MODES, L, R, f_D, f_G
from .macs import frozen_eval

FORMAT = "mggc-pruner"
VERSION = 2

#: What D's real neighbour y''_j is paired with (:attr:`MGGCConfig.real_source`).
REAL_SOURCES = ("center", "own")
#: How the agents' gates are sampled in the game (:attr:`MGGCConfig.gates`).
GATES = ("paper", "authors")


@dataclass(frozen=True)
class AblationRow:
    """Which parts of MGGC are on (Table 2; each row adds one part to the previous one)."""

    prune_D: bool
    agents: bool
    feedback: bool
    manifold: bool


#: Table 2's rows, cumulative. ``baseline``: a learned logit vector per channel of G
#: (``v_G = round(sigmoid(-(θ + g)/τ))``), full D. ``d_pruning``: + a logit vector for D and
#: λ2·L(v_D). ``agents``: GRU agents gen_G/gen_D instead of logit vectors. ``feedback``: + the
#: G↔D embedding exchange. ``mggc``: + manifold (k > 0): D's real sample is a neighbour y'' of
#: y'; without it (k = 0) the real sample is y' itself.
ABLATIONS: Dict[str, AblationRow] = {
    "baseline": AblationRow(prune_D=False, agents=False, feedback=False, manifold=False),
    "d_pruning": AblationRow(prune_D=True, agents=False, feedback=False, manifold=False),
    "agents": AblationRow(prune_D=True, agents=True, feedback=False, manifold=False),
    "feedback": AblationRow(prune_D=True, agents=True, feedback=True, manifold=False),
    "mggc": AblationRow(prune_D=True, agents=True, feedback=True, manifold=True),
}


@dataclass(frozen=True)
class MGGCConfig:
    """Options of the pruning game. Give exactly one of ``p``, ``target_macs`` and
    ``target_latency_ms``.

    p: fraction of G's prunable MACs to keep (Eq. 5's p).
    target_macs: fraction of G's total MACs to keep (upstream's ``--mggc_target_macs``),
        converted to p by :func:`prunable_fraction`.
    target_latency_ms: (beyond the paper) the sub-network's latency to reach, in ms, on the
        runtime of the :class:`~mggc_plugin.latency_table.LatencyTable` given to
        :class:`MGGCPruner`: Eq. 5's T counts that table's estimate instead of MACs
        (:func:`latency_fraction` converts it to p).
    gan_mode: ``lsgan`` (CycleGAN), ``hinge`` (pix2pix in the paper) or ``vanilla``.
    conditional_D: D reads ``cat(x, y)`` (pix2pix, as upstream concatenates) instead of ``y``.
    lambda1, lambda2: λ1 = 3.0 and λ2 = 0.1, the paper's values for all experiments.
    tau: τ = 0.4, the temperature of the authors' earlier hypernetwork (the paper gives none).
    hidden: 128 GRU units per direction, as in that hypernetwork.
    token_dim: 64, the size of that hypernetwork's fixed input tokens.
    lr, weight_decay: AdamW(1e-3, weight decay 1e-3), the hypernetwork's optimiser. With it a
        GRU agent moves every logit of a group at once and reaches a budget within a few hundred
        steps; the Baseline's logit vectors move each logit by at most ~lr per step (≥ 3000
        steps from the initial o = -3 to the threshold), which is short of the paper's 10 % of
        the teacher's epochs (≈ 21,000 steps for horse2zebra).
    ablation: a key of :data:`ABLATIONS`; ``mggc`` is the full method.
    seed: seeds the agents' initialisation, the Gumbel noise (its own generator) and the dropout
        G draws while the game plays it (a private stream of the global RNG, seed + the rank
        under ``torch.distributed``, :class:`~mggc_plugin.device.RNGStream`): a game depends on
        its seed and inputs alone, not on what the process drew before, and leaves the caller's
        RNG as it was.

    Repairs of the game's measured defects (``DESIGN.md``, "the game's known defects"); each
    default is the paper's game, and each option goes beyond the paper:

    baseline_lr: learning rate of the Baseline row's logit vectors (:class:`LogitAgent`); the
        paper gives none. 0.1: the Baseline reaches a 25 % budget within ~200 steps on a small
        ResNet (``tests/test_pruner_options.py``); with the agents' 1e-3 AdamW moves each logit by
        at most ~1e-3 per step, and the facades game of 3,200 steps ended at 0.895 of the MACs
        for a 0.10 budget, so its row measured a trim in ``finalize``, not the ablation.
    lambda_rec: weight of a teacher-fidelity term ``λ_rec·|G(x; v_G) − y'|₁`` added to gen_G's
        objective, so that gen_G keeps learning from the teacher's outputs when D stops
        discriminating (0: off, the paper).
    min_keep_D: a floor on D's kept fraction L(v_D): gen_D's sparsity term becomes
        ``λ2·max(L, floor) + λ1·relu(floor − L)`` (no pull below the floor, a push back above
        it), and :meth:`MGGCPruner.finalize` keeps at least that fraction of D's channels, by
        keep-logit (0: off, the paper).
    real_source: what D's real neighbour y''_j is paired with when D is conditional:
        ``"center"``, the source x_i of the centre sample (Eq. 2 as written), or ``"own"``, its
        own source x_j, so that D's real pairs are aligned (needs ``x_neighbor`` in
        :meth:`MGGCPruner.step`).
    final_window: the final architecture is cut from the mean of the agents' drop logits over
        the last ``final_window`` steps instead of the agents' last state alone (1: the paper).
    refill: after the budget trim, :meth:`MGGCPruner.finalize` adds G's dropped channels back by
        keep-logit while the budget allows (:func:`mggc_plugin.baselines.fill_while`), so
        the student lands at its budget rather than wherever rounding and the deterministic
        gates left it (False: the paper).
    cost_lr: cost-aware agent: the parameters of gen_G that belong to one channel group (its
        head; its logit vector in the Baseline rows) learn at the agent's rate times the MACs one
        channel of that group costs, relative to the costliest group's (:func:`channel_costs`).
        AdamW normalises each parameter's step, which erases the weighting by MACs that R's
        gradient carries: with it, a group of cheap channels is cut as fast as a costly one
        (False: the paper's AdamW at one rate).
    gates: how the game samples the architectures. ``"paper"``: Eq. 3–4 as written, the Gumbel
        noise on the drop side (at the start each channel is dropped with probability ≈ 0.05)
        and G and D gated by the rounded vectors. ``"authors"``: as the authors' earlier
        hypernetwork (:mod:`mggc_plugin.agents`), the noise on the keep side (≈ 2e-9 at the
        start) and G and D gated by the *soft* vectors, whose rounding (straight-through) is
        what R and L count. The authors sample the soft gates and the counted ones with two
        draws of noise; we round the same draw, so that R and L count the architecture that was
        played. The final architecture is the same noise-free rounding either way.
    """

    p: Optional[float] = None
    target_macs: Optional[float] = None
    target_latency_ms: Optional[float] = None
    gan_mode: str = "lsgan"
    conditional_D: bool = False
    lambda1: float = 3.0
    lambda2: float = 0.1
    tau: float = 0.4
    hidden: int = 128
    token_dim: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-3
    ablation: str = "mggc"
    seed: int = 0
    baseline_lr: float = 0.1
    lambda_rec: float = 0.0
    min_keep_D: float = 0.0
    real_source: str = "center"
    final_window: int = 1
    refill: bool = False
    cost_lr: bool = False
    gates: str = "paper"

    def __post_init__(self):
        if sum(b is not None for b in (self.p, self.target_macs, self.target_latency_ms)) != 1:
            raise ValueError("give exactly one budget: p (fraction of G's prunable MACs to keep, Eq. 5), "
                             "target_macs (fraction of G's total MACs, as --mggc_target_macs) or target_latency_ms "
                             "(G's latency in ms on a measured latency table)")
        if self.target_latency_ms is not None and not self.target_latency_ms > 0:
            raise ValueError(f"target_latency_ms={self.target_latency_ms}: give a positive latency in ms")
        if self.p is not None and not 0 < self.p <= 1:
            raise ValueError(f"p={self.p}: the fraction of prunable MACs to keep must lie in (0, 1]")
        if self.target_macs is not None and not 0 < self.target_macs <= 1:
            raise ValueError(f"target_macs={self.target_macs}: the fraction of total MACs to keep must lie in (0, 1]")
        if self.gan_mode not in GAN_MODES:
            raise ValueError(f"unknown gan_mode {self.gan_mode!r}: choose one of {', '.join(GAN_MODES)}")
        if self.ablation not in ABLATIONS:
            raise ValueError(f"unknown ablation {self.ablation!r}: choose one of {', '.join(ABLATIONS)}")
        if self.tau <= 0 or self.lr <= 0 or self.lambda1 < 0 or self.lambda2 < 0:
            raise ValueError(f"tau={self.tau}, lr={self.lr}, lambda1={self.lambda1}, lambda2={self.lambda2}: "
                             f"tau and lr must be positive, the λs non-negative")
        if self.baseline_lr <= 0:
            raise ValueError(f"baseline_lr={self.baseline_lr}: the Baseline logits' learning rate must be positive")
        if self.lambda_rec < 0:
            raise ValueError(f"lambda_rec={self.lambda_rec}: the teacher-fidelity weight must be >= 0 (0: off)")
        if not 0 <= self.min_keep_D < 1:
            raise ValueError(f"min_keep_D={self.min_keep_D}: the floor on D's kept fraction must lie in [0, 1)")
        if self.real_source not in REAL_SOURCES:
            raise ValueError(f"real_source={self.real_source!r}: choose one of {', '.join(REAL_SOURCES)}")
        if self.final_window < 1:
            raise ValueError(f"final_window={self.final_window}: average the logits of at least 1 step")
        if self.gates not in GATES:
            raise ValueError(f"gates={self.gates!r}: choose one of {', '.join(GATES)}")


@dataclass(frozen=True)
class FinalArchitecture:
    """What :meth:`MGGCPruner.finalize` returns: one boolean mask per channel group of G
    (``v_G``) and of D (``v_D``), in the order of ``groups.sizes``, ready for
    :func:`mggc_plugin.slim`; ``macs_G`` the slimmed G's total MACs at the traced input shape,
    ``kept_macs_G`` its fraction of the prunable MACs (≤ p), ``trimmed_G`` how many channels
    the deterministic agent kept that rounding and the budget removed, and ``logits_G`` the
    agent's keep-logit ``-o`` of every channel (Eq. 3), the ranking the masks were cut by;
    with a latency budget, ``latency_ms_G`` the latency table's estimate for the slimmed G."""

    v_G: List[torch.Tensor]
    v_D: List[torch.Tensor]
    macs_G: float
    kept_macs_G: float
    trimmed_G: int
    logits_G: List[torch.Tensor] = field(default_factory=list)
    latency_ms_G: Optional[float] = None


def _saved_config(config: dict, version: int) -> dict:
    """A saved configuration with every field of :class:`MGGCConfig`. Version 1 saves predate
    the repair options: they played the paper's game (the options' defaults), and the logit
    vectors of the rows without GRU agents learnt at the agents' ``lr``."""
    row = ABLATIONS.get(config.get("ablation", "mggc"))
    if version == 1 and row is not None and not row.agents:
        config = {"baseline_lr": config.get("lr"), **config}
    return {f.name: config.get(f.name, f.default) for f in fields(MGGCConfig)}


def fixed_macs(groups: ChannelGroups) -> float:
    """The MACs no gate can remove (layers reading only the image and writing only the output)."""
    return float(groups.macs([torch.zeros(n) for n in groups.sizes]))


def channel_costs(groups: ChannelGroups) -> List[float]:
    """The MACs one channel of each group costs in the full model (∂T/∂v_c at v = 1, the same for
    every channel of a group), relative to the costliest group's: values in (0, 1]."""
    gates = [torch.ones(n, requires_grad=True) for n in groups.sizes]
    grads = torch.autograd.grad(groups.macs(gates), gates)
    costs = [float(g.mean()) for g in grads]
    top = max(costs)
    if top <= 0:
        raise ValueError("no channel group costs any MACs: there is nothing to weigh")
    return [max(c, 0.0) / top for c in costs]


def prunable_fraction(groups: ChannelGroups, target_macs: float) -> float:
    """Convert a budget given as a fraction of the model's *total* MACs into Eq. 5's p, the
    fraction of its *prunable* MACs: ``p = (target·T_full - T_fixed) / (T_full - T_fixed)``.
    Raises ValueError when the target is at or below the MACs that no gate can remove."""
    if not 0 < target_macs <= 1:
        raise ValueError(f"target_macs={target_macs}: the fraction of total MACs to keep must lie in (0, 1]")
    fixed = fixed_macs(groups)
    prunable = groups.full_macs - fixed
    if prunable <= 0:
        raise ValueError("the model has no prunable MACs: no channel group feeds a counted layer")
    if target_macs * groups.full_macs <= fixed:
        raise ValueError(f"target_macs={target_macs} asks for {target_macs * groups.full_macs:,.0f} MACs, but "
                         f"{fixed:,.0f} of the model's {groups.full_macs:,.0f} MACs ({fixed / groups.full_macs:.2%}) "
                         f"belong to layers no channel gate can shrink: choose target_macs > "
                         f"{fixed / groups.full_macs:.4f}")
    return (target_macs * groups.full_macs - fixed) / prunable


def latency_fraction(table: LatencyTable, groups: ChannelGroups, target_ms: float) -> float:
    """Eq. 5's p for a latency budget: ``(target - T_fixed) / (T_full - T_fixed)`` in the
    table's estimate, where T_fixed is the latency no gate can remove (every group at zero
    channels, extrapolated). Raises ValueError when ``target_ms`` is outside (T_fixed, T_full]."""
    table.check(groups)
    fixed, full = table.span(groups)
    if not fixed < target_ms <= full:
        raise ValueError(f"target_latency_ms={target_ms}: the latency table estimates the full generator at "
                         f"{full:.3f} ms and the part no gate can remove at {fixed:.3f} ms on {table.runtime} "
                         f"({table.threads} thread(s)); give a target between them")
    return (target_ms - fixed) / (full - fixed)


@contextlib.contextmanager
def teacher_mode(*nets: nn.Module) -> Iterator[None]:
    """Run frozen teacher networks as during their training, without changing them.

    Inside the block every module is in train mode (dropout on, BatchNorm normalises with batch
    statistics) and no parameter requires a gradient; on exit every buffer (BatchNorm running
    statistics, ``num_batches_tracked``, ...) is restored bit-identically and the train/eval and
    ``requires_grad`` flags are put back, also on error.
    """
    grads = [(p, p.requires_grad) for net in nets for p in net.parameters()]
    modes = [(m, m.training) for net in nets for m in net.modules()]
    buffers = [(b, b.detach().clone()) for net in nets for b in net.buffers()]
    try:
        for p, _ in grads:
            p.requires_grad_(False)
        for net in nets:
            net.train()
        yield
    finally:
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)
        for m, training in modes:
            m.training = training
        for p, flag in grads:
            p.requires_grad_(flag)


def _allowed_widths(size: int, round_to: int) -> List[int]:
    """Widths a group of ``size`` channels may keep: multiples of ``round_to`` below ``size``, and
    ``size`` itself (so a group smaller than ``round_to`` can only stay whole)."""
    return sorted({*range(round_to, size, round_to), size})


def _rounded_masks(logits: Sequence[torch.Tensor], keep: Sequence[torch.Tensor], round_to: int) -> List[torch.Tensor]:
    """Each group keeps its highest-logit channels, as many as the allowed width nearest to the
    deterministic count (at least one channel; ties round up)."""
    masks = []
    for logit, v in zip(logits, keep):
        want = max(1, int(v.sum()))
        width = min(_allowed_widths(logit.numel(), round_to), key=lambda w: (abs(w - want), -w))
        mask = torch.zeros(logit.numel(), dtype=torch.bool)
        mask[logit.topk(width).indices] = True
        masks.append(mask)
    return masks


def _mean_logits(recent: Sequence[List[torch.Tensor]]) -> List[torch.Tensor]:
    """The per-channel mean of the drop logits recorded over several steps."""
    return [torch.stack(per_step).mean(0) for per_step in zip(*recent)]


def _keep_at_least(masks: Sequence[torch.Tensor], logits: Sequence[torch.Tensor], fraction: float,
                   round_to: int) -> List[torch.Tensor]:
    """``masks`` with dropped channels added back, highest keep-logit first over all groups,
    until at least ``fraction`` of all channels are kept; each group that grew is then widened
    to its next allowed width (a multiple of ``round_to``, or its full size) by the same order."""
    out = [m.clone().bool() for m in masks]
    total = sum(m.numel() for m in out)
    need = int(torch.tensor(fraction * total).ceil()) - sum(int(m.sum()) for m in out)
    if need <= 0:
        return out
    flat_logit = torch.cat([lg.float() for lg in logits])
    flat_kept = torch.cat(out)
    candidates = (~flat_kept).nonzero().flatten()
    add = candidates[flat_logit[candidates].argsort(descending=True)[:need]]
    flat_kept[add] = True
    out = list(torch.split(flat_kept, [m.numel() for m in out]))
    for i, (mask, logit) in enumerate(zip(out, logits)):
        width = int(mask.sum())
        allowed = min(w for w in _allowed_widths(mask.numel(), round_to) if w >= width)
        if allowed > width:
            order = logit.argsort(descending=True)
            grown = mask.clone()
            grown[[int(j) for j in order if not mask[j]][:allowed - width]] = True
            out[i] = grown
        else:
            out[i] = mask.clone()
    return out


def _removal_order(logits: Sequence[torch.Tensor], masks: Sequence[torch.Tensor],
                   round_to: int) -> List[Tuple[int, torch.Tensor]]:
    """Blocks ``(group, channel indices)`` in the order the budget trim removes them: each group
    can step down to its next allowed width by dropping its lowest-logit kept channels; among the
    groups, the block of lowest mean logit goes first. A group never drops below its smallest
    allowed width."""
    per_group = []
    for i, (logit, mask) in enumerate(zip(logits, masks)):
        kept = mask.nonzero().flatten()
        kept = kept[logit[kept].argsort()]
        widths = [w for w in _allowed_widths(logit.numel(), round_to) if w < kept.numel()]
        blocks, width = [], kept.numel()
        for w in reversed(widths):
            idx = kept[:width - w]
            kept, width = kept[width - w:], w
            blocks.append((float(logit[idx].mean()), i, idx))
        per_group.append(blocks)
    heap = [(blocks[0][0], i, 0) for i, blocks in enumerate(per_group) if blocks]
    heapq.heapify(heap)
    order = []
    while heap:
        _, i, j = heapq.heappop(heap)
        order.append((i, per_group[i][j][2]))
        if j + 1 < len(per_group[i]):
            heapq.heappush(heap, (per_group[i][j + 1][0], i, j + 1))
    return order


class MGGCPruner:
    """The pruning game of Eq. 2 between gen_G and gen_D on a frozen teacher G and D.

    Arguments:
        G, D: the teacher generator and discriminator (any conv nets; their weights and buffers
            are never changed).
        example_x: a source batch of the training shape (only its shape is used): channel groups
            and MACs are traced on one sample of it.
        config: :class:`MGGCConfig`.
        groups_G, groups_D: already-discovered channel groups, to skip tracing.
        latency: G's :class:`~mggc_plugin.latency_table.LatencyTable`, required with
            ``config.target_latency_ms`` (and only then used): Eq. 5's T is its estimate in ms.

    Attributes: ``gen_G`` and ``gen_D`` (None in the Baseline row, where D stays full), their
    AdamW optimisers ``opt_G``/``opt_D``, ``groups_G``/``groups_D``, ``p`` (fraction of G's
    prunable MACs to keep), ``T_total`` (G's prunable MACs), ``T_fixed`` (G's MACs no gate can
    remove), ``row`` (the :class:`AblationRow`), ``h_G``/``h_D`` (the last exchanged embeddings)
    and ``step_count``. The budget term R reads ``budget_T`` (T(v) of Eq. 5: prunable MACs, or
    with a latency budget the latency table's prunable ms), ``budget_total`` (its full value) and ``p``.
    """

    def __init__(self, G: nn.Module, D: nn.Module, example_x: torch.Tensor, config: MGGCConfig,
                 groups_G: Optional[ChannelGroups] = None, groups_D: Optional[ChannelGroups] = None,
                 latency: Optional[LatencyTable] = None):
        self.G, self.D, self.config = G, D, config
        self.row = ABLATIONS[config.ablation]
        self.device = next(G.parameters()).device
        x1 = example_x[:1].to(self.device)
        self.groups_G = groups_G if groups_G is not None else ChannelGroups.discover(G, x1)
        if groups_D is None:
            with frozen_eval(G):
                y1 = G(x1)
            d_in = torch.cat([x1, y1], 1) if config.conditional_D else y1
            groups_D = ChannelGroups.discover(D, d_in)
        self.groups_D = groups_D
        for name, net, groups in (("G", G, self.groups_G), ("D", D, self.groups_D)):
            if groups.model is not net:
                raise ValueError(f"groups_{name} were discovered on another module than the {name} given: their "
                                 f"gates would hook that module; pass groups discovered on this {name}")
            if len(groups) == 0:
                raise ValueError(f"{name} has no prunable channel groups (no convolution or linear layer whose "
                                 f"output channels stay inside the network): there is nothing to prune")
        self.T_fixed = fixed_macs(self.groups_G)
        self.T_total = self.groups_G.full_macs - self.T_fixed
        self.latency = latency if config.target_latency_ms is not None else None
        self.budget_total = self.T_total
        if config.p is not None:
            self.p = config.p
        elif config.target_macs is not None:
            self.p = prunable_fraction(self.groups_G, config.target_macs)
        else:
            assert config.target_latency_ms is not None, "MGGCConfig checks that exactly one budget is given"
            if latency is None:
                raise ValueError(f"target_latency_ms={config.target_latency_ms} needs G's latency table: measure "
                                 f"it with mggc_plugin.latency_table.measure and pass it as latency=")
            self.p = latency_fraction(latency, self.groups_G, config.target_latency_ms)
            self.latency_fixed, full = latency.span(self.groups_G)
            self.budget_total = full - self.latency_fixed

        # The agents' initialisation is seeded without touching the caller's global RNG.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.gen_G, self.gen_D = self._build_agents()
        self.gen_G.to(self.device)
        self.gen_D = self.gen_D.to(self.device) if self.gen_D is not None else None
        for agent in (self.gen_G, self.gen_D):
            if agent is not None:
                distributed.broadcast_module_(agent)
        self.opt_G = self._optimizer(self.gen_G, channel_costs(self.groups_G) if config.cost_lr else None)
        self.opt_D = self._optimizer(self.gen_D) if self.gen_D is not None else None
        self.h_G = torch.zeros(self.gen_G.embed_dim, device=self.device)
        self.h_D = torch.zeros(self.gen_D.embed_dim if self.gen_D is not None else 0, device=self.device)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.dropout_rng = RNGStream(config.seed + distributed.world()[0], self.device)
        self.step_count = 0
        # The agents' drop logits of the last final_window steps (MGGCConfig.final_window).
        self.recent_o_G: deque = deque(maxlen=config.final_window)
        self.recent_o_D: deque = deque(maxlen=config.final_window)

    def _build_agents(self) -> Tuple[Agent, Optional[Agent]]:
        c, row = self.config, self.row
        if not row.agents:
            return LogitAgent(self.groups_G.sizes), (LogitAgent(self.groups_D.sizes) if row.prune_D else None)
        embed = 2 * c.hidden
        gen_G = ArchitectureAgent(self.groups_G.sizes, embed, c.hidden, c.token_dim, feedback=row.feedback)
        gen_D = ArchitectureAgent(self.groups_D.sizes, embed, c.hidden, c.token_dim, feedback=row.feedback)
        return gen_G, gen_D

    def _optimizer(self, agent: Agent, costs: Optional[List[float]] = None) -> torch.optim.Optimizer:
        # With costs (MGGCConfig.cost_lr) each group's own parameters learn at lr × its cost.
        c = self.config
        lr = c.baseline_lr if isinstance(agent, LogitAgent) else c.lr
        if costs is None:
            return torch.optim.AdamW(agent.parameters(), lr=lr, weight_decay=c.weight_decay, foreach=True)
        own: List[List[nn.Parameter]] = ([[theta] for theta in agent.theta] if isinstance(agent, LogitAgent)
                                         else [list(head.parameters()) for head in agent.heads])
        owned = {id(q) for params in own for q in params}
        shared = [q for q in agent.parameters() if id(q) not in owned]
        groups: List[Dict[str, object]] = [{"params": shared, "lr": lr}] if shared else []
        groups += [{"params": params, "lr": lr * cost} for params, cost in zip(own, costs)]
        return torch.optim.AdamW(groups, lr=lr, weight_decay=c.weight_decay, foreach=True)

    def sparsity_D(self, L_v: torch.Tensor) -> torch.Tensor:
        """gen_D's penalty on D's kept fraction: ``λ2·L(v_D)`` (Eq. 6), or with a floor
        ``min_keep_D`` (:class:`MGGCConfig`), ``λ2·max(L, floor) + λ1·relu(floor − L)``."""
        c = self.config
        if c.min_keep_D == 0:
            return c.lambda2 * L_v
        return c.lambda2 * L_v.clamp(min=c.min_keep_D) + c.lambda1 * torch.relu(c.min_keep_D - L_v)

    def _d_input(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, y], 1) if self.config.conditional_D else y

    def kept_macs(self, v_G: Sequence[torch.Tensor]) -> torch.Tensor:
        """T(v_G) of Eq. 5: the prunable MACs of the sub-network v_G selects (differentiable)."""
        return self.groups_G.macs(v_G) - self.T_fixed

    def budget_T(self, v_G: Sequence[torch.Tensor]) -> torch.Tensor:
        """What R counts (differentiable): :meth:`kept_macs`, or with a latency budget the
        latency table's estimate of the sub-network's removable ms."""
        if self.latency is None:
            return self.kept_macs(v_G)
        return self.latency(self.groups_G, v_G) - self.latency_fixed

    def step(self, x: torch.Tensor, y_center: torch.Tensor, y_neighbor: Optional[torch.Tensor] = None,
             x_neighbor: Optional[torch.Tensor] = None) -> Dict[str, float]:
        """Play one step of Eq. 2 and update the agents.

        ``x``: source batch; ``y_center``: the teacher's outputs y' = G(x); ``y_neighbor``: a
        neighbour y'' of each y' on the teacher's manifold (Eq. 1), D's real sample in the
        ``mggc`` row (required there); the other rows use y' itself (k = 0) and ignore it.
        ``x_neighbor``: the source each neighbour was generated from, which a conditional D
        reads beside it with ``real_source="own"`` (required there).

        gen_G reads the embedding h_D gen_D produced in the previous step (zeros at first) and
        samples v_G; gen_D reads this step's h_G and samples v_D (Eq. 3, 4). The embeddings are
        exchanged detached, so each agent learns only from its own objective: gen_D minimises
        ``f_D(D(x, y''; v_D), D(x, G(x; v_G); v_D)) + λ2·L(v_D)``, gen_G minimises
        ``f_G(D(x, G(x; v_G); v_D)) + λ1·R(v_G)``. One AdamW step each.

        With ``lambda_rec > 0`` gen_G's objective also has ``λ_rec·|G(x; v_G) − y'|₁``, and with
        ``min_keep_D`` gen_D's sparsity term is :meth:`sparsity_D` (:class:`MGGCConfig`).
        With ``gates="authors"`` G and D are played with soft gates and R, L count their rounding.

        With a latency budget (:attr:`MGGCConfig.target_latency_ms`) R counts the latency table's
        estimate, logged as ``latency_ms_G``.

        Returns the quantities of the paper's Fig. 4: ``loss_G`` (f_G), ``loss_D`` (f_D), ``R``,
        ``L`` (1.0 with a full D), ``kept_macs_G`` (T(v_G)/T_total, fraction of the prunable MACs,
        comparable to p), ``kept_macs_G_total`` (fraction of G's total MACs) and
        ``kept_channels_D`` (fraction of D's prunable channels, equal to L by Eq. 6); and the
        watch on D: ``d_auc``, the probability that D scores a real patch above a fake one
        (:func:`~mggc_plugin.diagnostics.real_fake_auc`; 0.5: D no longer tells them apart,
        below: inverted), and ``rec`` (``|G(x; v_G) − y'|₁``, teacher fidelity).
        """
        c = self.config
        x_real = x
        if not self.row.manifold:
            real = y_center
        elif y_neighbor is not None:
            real = y_neighbor
            if c.conditional_D and c.real_source == "own":
                if x_neighbor is None:
                    raise ValueError("real_source='own' pairs each neighbour y''_j with its own source x_j: pass "
                                     "x_neighbor (game.neighbor_batches yields it)")
                x_real = x_neighbor
        else:
            raise ValueError("the mggc row trains D on neighbours y'' of y' (k > 0): pass y_neighbor, or use "
                             "ablation='feedback', whose real sample is y' itself (k = 0)")
        x, x_real, real = x.to(self.device), x_real.to(self.device), real.to(self.device)
        y_center = y_center.to(self.device)

        with teacher_mode(self.G, self.D), self.dropout_rng.drawing():
            o_G, h_G = self.gen_G(self.h_D)
            play_G, v_G = self._sample(o_G)
            v_D: Optional[List[torch.Tensor]] = None
            h_D = self.h_D
            gated_D: ContextManager[None] = contextlib.nullcontext()
            if self.gen_D is not None:
                o_D, h_D = self.gen_D(h_G.detach())
                play_D, v_D = self._sample(o_D)
                gated_D = self.groups_D.gated(play_D)

            with self.groups_G.gated(play_G):
                fake = self.G(x)
            with gated_D:
                with torch.set_grad_enabled(v_D is not None):
                    pred_real = self.D(self._d_input(x_real, real))
                pred_fake = self.D(self._d_input(x, fake))
            loss_D = f_D(pred_real, pred_fake, c.gan_mode)
            loss_G = f_G(pred_fake, c.gan_mode)
            rec = (fake - y_center).abs().mean()
            T_v = self.kept_macs(v_G)
            T_budget = T_v if self.latency is None else self.budget_T(v_G)
            R_v = R(T_budget, self.p, self.budget_total)
            if v_D is not None:
                assert self.gen_D is not None and self.opt_D is not None, "only gen_D samples v_D"
                L_v = L(v_D)
                self._descend(self.gen_D, self.opt_D, loss_D + self.sparsity_D(L_v), retain_graph=True)
            objective_G = loss_G + c.lambda1 * R_v + (c.lambda_rec * rec if c.lambda_rec > 0 else 0.0)
            self._descend(self.gen_G, self.opt_G, objective_G, retain_graph=False)

        if c.final_window > 1:  # only finalize reads them; a copy to the CPU per step is not free on a GPU
            self.recent_o_G.append([o.detach().cpu() for o in o_G])
            if v_D is not None:
                self.recent_o_D.append([o.detach().cpu() for o in o_D])
        self.h_G, self.h_D = h_G.detach(), h_D.detach()
        self.step_count += 1
        kept_D = L_v.item() if v_D is not None else 1.0
        kept_G = T_v.item()
        logs = {"loss_G": loss_G.item(), "loss_D": loss_D.item(), "R": R_v.item(), "L": kept_D,
                "kept_macs_G": kept_G / self.T_total,
                "kept_macs_G_total": (kept_G + self.T_fixed) / self.groups_G.full_macs, "kept_channels_D": kept_D,
                "d_auc": real_fake_auc(pred_real.detach(), pred_fake.detach()), "rec": rec.item()}
        if self.latency is not None:
            logs["latency_ms_G"] = T_budget.item() + self.latency_fixed
        return distributed.mean_over_ranks(logs)

    def budget_step(self) -> float:
        """One step of gen_G on its budget term ``λ1·R(v_G)`` alone (Eq. 5; no D, no images):
        where the cost model by itself sends the architecture, a probe of the budget (MACs or a
        latency table) apart from the game. Returns R."""
        o_G, _ = self.gen_G(self.h_D)
        _, v_G = self._sample(o_G)
        R_v = R(self.budget_T(v_G), self.p, self.budget_total)
        self._descend(self.gen_G, self.opt_G, self.config.lambda1 * R_v, retain_graph=False)
        return R_v.item()

    def _sample(self, o: Sequence[torch.Tensor]) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """The gates a network is played with and the rounded ones R or L count
        (:attr:`MGGCConfig.gates`): the same vectors with the paper's gates."""
        c = self.config
        if c.gates == "paper":
            v = gumbel_sigmoid(o, c.tau, self.generator)
            return v, v
        soft = gumbel_sigmoid(o, c.tau, self.generator, keep_side=True, hard=False)
        return soft, [harden(s) for s in soft]

    @staticmethod
    def _descend(agent: nn.Module, opt: torch.optim.Optimizer, loss: torch.Tensor, retain_graph: bool) -> None:
        # autograd.grad walks only the part of the graph that leads to this agent's parameters,
        # so D's loss never reaches gen_G and G's loss never reaches gen_D.
        params = [p for p in agent.parameters() if p.requires_grad]
        grads = torch.autograd.grad(loss, params, retain_graph=retain_graph, allow_unused=True)
        for p, g in zip(params, grads):
            p.grad = g
        # Several processes: every rank played its share of the batch; the mean of their
        # gradients is the whole batch's, and every rank takes the same step.
        distributed.average_gradients_(params)
        opt.step()

    @torch.no_grad()
    def finalize(self, round_to: int = 1) -> FinalArchitecture:
        """The final architectures from the deterministic agents (Eq. 3–4 without noise:
        ``v = 1[o ≤ 0]``), given the last exchanged embedding h_D.

        Without noise a channel is kept a little more readily than during the game, where it was
        kept with probability ``exp(-e^{o})`` (below 1/2 for ``-0.37 < o ≤ 0``; the Gumbel noise
        has mean 0.58), so the deterministic G tends to sit somewhat above the budget the sampled
        ones met; the trim below removes exactly those borderline, highest-o channels first.

        Every group keeps at least one channel. With ``round_to > 1`` every group's width is a
        multiple of ``round_to`` (or the group's full size), taking the allowed width nearest to
        the agent's count. Then, while G's prunable MACs exceed ``p·T_total``, G drops its
        lowest-logit channels (highest o), one allowed width step at a time, starting with the
        step whose channels have the lowest mean logit. Raises ValueError if even the smallest
        widths exceed the budget. D has no budget; its masks are only rounded.

        Beyond the paper (:class:`MGGCConfig`): with ``final_window > 1`` the logits are the mean
        of the agents' logits over the last ``final_window`` steps played; with ``refill`` G's
        dropped channels are added back by keep-logit while the budget allows; with
        ``min_keep_D`` D keeps at least that fraction of its channels, its highest-logit ones.
        """
        if round_to < 1:
            raise ValueError(f"round_to={round_to}: use 1 (exact widths) or a positive multiple such as 8")
        c = self.config
        o_G, h_G = self.gen_G(self.h_D)
        if c.final_window > 1 and self.recent_o_G:
            o_G = _mean_logits(self.recent_o_G)
        logit_G = [-o.cpu() for o in o_G]
        v_G = gumbel_sigmoid(o_G, c.tau, deterministic=True)
        masks_G = _rounded_masks(logit_G, [v.cpu() for v in v_G], round_to)
        masks_G = self._trim_to_budget(logit_G, masks_G, round_to)
        if c.refill:
            budget = self.p * self.budget_total
            masks_G = fill_while(masks_G, logit_G, lambda m: float(self.budget_T(m)) <= budget, round_to)
        if self.gen_D is not None:
            o_D, _ = self.gen_D(h_G)
            if c.final_window > 1 and self.recent_o_D:
                o_D = _mean_logits(self.recent_o_D)
            logit_D = [-o.cpu() for o in o_D]
            v_D = gumbel_sigmoid(o_D, c.tau, deterministic=True)
            masks_D = _rounded_masks(logit_D, [v.cpu() for v in v_D], round_to)
            if c.min_keep_D > 0:
                masks_D = _keep_at_least(masks_D, logit_D, c.min_keep_D, round_to)
        else:
            masks_D = [torch.ones(n, dtype=torch.bool) for n in self.groups_D.sizes]
        T_v = float(self.kept_macs(masks_G))
        trimmed = sum(int(((v.cpu() > 0) & ~m).sum()) for v, m in zip(v_G, masks_G))
        latency_ms = float(self.latency(self.groups_G, masks_G)) if self.latency is not None else None
        return FinalArchitecture(masks_G, masks_D, T_v + self.T_fixed, T_v / self.T_total, trimmed,
                                 [logit.detach() for logit in logit_G], latency_ms)

    def _trim_to_budget(self, logits: List[torch.Tensor], masks: List[torch.Tensor], round_to: int
                        ) -> List[torch.Tensor]:
        budget = self.p * self.budget_total
        order = _removal_order(logits, masks, round_to)

        def without(k: int) -> List[torch.Tensor]:
            out = [m.clone() for m in masks]
            for i, idx in order[:k]:
                out[i][idx] = False
            return out

        def fits(k: int) -> bool:
            return float(self.budget_T(without(k))) <= budget

        if fits(0):
            return masks
        if not fits(len(order)):
            smallest = float(self.budget_T(without(len(order)))) / self.budget_total
            what = "MACs" if self.latency is None else "latency"
            raise ValueError(f"the budget p={self.p:.4f} of G's prunable {what} cannot be met: even the smallest "
                             f"widths (one channel, or round_to={round_to}, per group) keep {smallest:.4f}; "
                             f"raise the budget or lower round_to")
        # T only falls as blocks are removed, so the shortest prefix that fits is found by bisection.
        lo, hi = 0, len(order)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if fits(mid) else (mid, hi)
        return without(hi)

    def state_dict(self) -> dict:
        """Everything a resumed run needs to take the same next step: the configuration (and the
        digest of the latency table a latency budget was played on), both agents and optimisers,
        the last exchanged embeddings, the step count, the Gumbel generator and G's dropout
        stream (:attr:`dropout_rng`, on CUDA with the device's state). Plain containers and
        tensors only, for ``torch.load(weights_only=True)``.

        Under ``torch.distributed`` every rank must call it (it gathers each rank's dropout
        stream into ``rank_rngs``, since each rank draws its own dropout): the agents, optimisers
        and Gumbel generator are the same on every rank."""
        torch_rng, cuda_rng = self.dropout_rng.torch_rng, self.dropout_rng.cuda_rng
        extra = {}
        if distributed.active():
            extra["rank_rngs"] = distributed.gather_objects((torch_rng, cuda_rng))
        return {**extra, "format": FORMAT, "version": VERSION, "config": asdict(self.config),
                "groups_G": list(self.groups_G.sizes), "groups_D": list(self.groups_D.sizes),
                "gen_G": self.gen_G.state_dict(), "opt_G": self.opt_G.state_dict(),
                "gen_D": self.gen_D.state_dict() if self.gen_D is not None else None,
                "opt_D": self.opt_D.state_dict() if self.opt_D is not None else None,
                "h_G": self.h_G.cpu(), "h_D": self.h_D.cpu(), "step_count": self.step_count,
                "recent_o_G": list(self.recent_o_G), "recent_o_D": list(self.recent_o_D),
                "gumbel_rng": self.generator.get_state(), "torch_rng": torch_rng, "cuda_rng": cuda_rng,
                "latency_table": self._latency_digest()}

    def _latency_digest(self) -> Optional[str]:
        return json_digest(self.latency.to_dict()) if self.latency is not None else None

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict`, including G's dropout stream (see there; an older
        save, which held the global torch RNG there, continues from that state). The pruner must
        have been built with the same configuration and networks."""
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ValueError("not an MGGC pruner state (write it with MGGCPruner.save / state_dict)")
        if state.get("version") not in (1, VERSION):
            raise ValueError(f"pruner state of version {state.get('version')}; this mggc-plugin reads "
                             f"versions 1 and {VERSION}")
        saved = _saved_config(state["config"], state["version"])
        differ = [name for name, value in saved.items() if value != getattr(self.config, name)]
        if differ:
            changes = ", ".join(f"{n}={saved[n]!r} (now {getattr(self.config, n)!r})" for n in differ)
            raise ValueError(f"the pruner state was written with other options: {changes}; resume with the "
                             f"same options")
        if state["groups_G"] != self.groups_G.sizes or state["groups_D"] != self.groups_D.sizes:
            raise ValueError(f"the pruner state is for channel groups G {state['groups_G']}, D {state['groups_D']}; "
                             f"these networks have G {self.groups_G.sizes}, D {self.groups_D.sizes}: another "
                             f"architecture")
        if state.get("latency_table") != self._latency_digest():
            raise ValueError("the pruner state was played on another latency table (or none): resume with the "
                             "latency table it was started with")
        self.gen_G.load_state_dict(state["gen_G"])
        self.opt_G.load_state_dict(state["opt_G"])
        if self.gen_D is not None:
            assert self.opt_D is not None, "__init__ builds opt_D with gen_D"
            self.gen_D.load_state_dict(state["gen_D"])
            self.opt_D.load_state_dict(state["opt_D"])
        self.h_G, self.h_D = state["h_G"].to(self.device), state["h_D"].to(self.device)
        self.step_count = int(state["step_count"])
        self.recent_o_G.clear()
        self.recent_o_G.extend(state.get("recent_o_G", []))
        self.recent_o_D.clear()
        self.recent_o_D.extend(state.get("recent_o_D", []))
        self.generator.set_state(state["gumbel_rng"])
        torch_rng, cuda_rng = state["torch_rng"], state["cuda_rng"]
        rank, size = distributed.world()
        ranks = state.get("rank_rngs")
        if ranks is not None and len(ranks) == size:
            torch_rng, cuda_rng = ranks[rank]
        self.dropout_rng.torch_rng = torch_rng
        if cuda_rng is not None and self.device.type == "cuda":
            self.dropout_rng.cuda_rng = cuda_rng

    def save(self, path: Union[str, Path]) -> Path:
        """Write :meth:`state_dict` to ``path`` atomically (temporary file, then rename); under
        ``torch.distributed`` every rank calls it and rank 0 alone writes."""
        return atomic_torch_save(self.state_dict(), path)

    def load(self, path: Union[str, Path]) -> None:
        """Read a file written by :meth:`save` (with ``weights_only=True``) and restore it."""
        self.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
