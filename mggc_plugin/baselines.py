"""The baselines MGGC is compared with, at a MACs budget: L1-norm filter pruning, uniform width
scaling and a generator of smaller ngf.

* **L1-norm filter pruning** — Li et al. 2017, "Pruning Filters for Efficient ConvNets" (ICLR):
  each output channel is ranked by the L1 norm of the filter that produces it, ``Σ|w_j|``, and the
  lowest-ranked channels are removed. A channel group (:class:`~mggc_plugin.channels.ChannelGroups`)
  is ranked at its root layer, the first layer that produces it. Li et al. choose per-layer rates
  by a sensitivity analysis; a uniform rate for every group is the common re-implementation (e.g.
  torch-pruning's benchmarks) and is what :func:`masks_to_budget` does.
* **uniform width scaling** — every group keeps the same fraction of its channels, the first
  ones: the architecture of a uniformly thinner network, whatever the weights.
* **from scratch** — :func:`largest_ngf_within`: the widest generator of the teacher's
  architecture (a smaller ngf) within the budget, to be trained from its initialisation.

Both pruning methods share one search, :func:`uniform_widths`: the largest uniform keep-rate
whose rounded widths fit ``target_macs`` of the full MACs. :func:`fastest_widths` spends the same
MACs where a latency table says the runtime runs them fastest instead, and :func:`measured_widths`
improves widths by timing the networks themselves (both beyond Li et al.).
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch_pruning as tp
from torch import nn

from . import networks
from .channels import ChannelGroups, dependency_graph, traceable
from .macs import count_macs
from .slim import slim

if TYPE_CHECKING:
    from .latency_table import LatencyTable

#: How a method chooses which channels a group keeps: ``l1_norm`` the highest-L1 filters (Li et
#: al. 2017), ``uniform`` the first channels.
METHODS = ("l1_norm", "uniform")

#: Bisection steps over the keep-rate: 2^-40 is far below the smallest rate change that changes
#: a width (1 / the largest group size).
_BISECTION_STEPS = 40


def filter_l1_scores(groups: ChannelGroups) -> List[torch.Tensor]:
    """Li et al. 2017's filter score of every channel of every group: the L1 norm of the root
    layer's filter producing it (``Conv2d``/``Linear``: ``weight[j]``; ``ConvTranspose2d``:
    ``weight[:, j]``). One CPU float vector per group, in ``groups``' order.

    Computed by torch-pruning's ``MagnitudeImportance(p=1, group_reduction="first",
    normalizer=None)`` (its documented "standard L1-norm of the first layer in a group") on the
    torch-pruning group rooted at the group's root layer, whose first item is the root's
    output channels. torch-pruning scores a transposed convolution by ``weight.transpose(0, 1)
    [j]``, the same filter as ``weight[:, j]``; only the summation order differs (scores agree to
    float rounding, ~1e-7 relative). The other layers of the group (consumers, norms, coupled
    producers such as the rest of a ResNet trunk) are deliberately not scored: ranking by the
    group's mean magnitude would be torch-pruning's *group* L1 norm, another criterion than Li
    et al.'s.
    """
    importance = tp.importance.MagnitudeImportance(p=1, group_reduction="first", normalizer=None)
    model = groups.model
    modules = dict(model.named_modules())
    scores = []
    with traceable(model):
        dg = dependency_graph(model, groups.input_shape)
        for group in groups:
            root = modules[group.root]
            tp_group = dg.get_pruning_group(root, dg.get_pruner_of_module(root).prune_out_channels,
                                            list(range(group.size)))
            scores.append(importance(tp_group).detach().float().cpu())
    return scores


def widths_at_rate(sizes: Sequence[int], rate: float, round_to: int = 1,
                   factors: Optional[Sequence[float]] = None) -> List[int]:
    """The width each group keeps at the uniform keep-rate ``rate``: ``rate·n`` rounded to the
    nearest multiple of ``round_to``, at least ``round_to`` (or ``n`` if smaller), at most ``n``.
    ``factors``: group i keeps ``rate·factors[i]`` of its channels instead (a non-uniform shape
    scaled as a whole)."""
    if round_to < 1:
        raise ValueError(f"round_to={round_to}: use 1 (any width) or a positive multiple such as 8")
    factors = [1.0] * len(sizes) if factors is None else factors
    return [min(n, max(round_to, round(rate * f * n / round_to) * round_to)) for n, f in zip(sizes, factors)]


def _first_channels(sizes: Sequence[int], widths: Sequence[int]) -> List[torch.Tensor]:
    return [torch.arange(n) < w for n, w in zip(sizes, widths)]


@dataclass(frozen=True)
class UniformWidths:
    """The result of :func:`uniform_widths`: the keep-rate, the kept width of every group and
    the MACs of the network at those widths."""

    rate: float
    widths: List[int]
    macs: float


def uniform_widths(groups: ChannelGroups, target_macs: float, round_to: int = 1,
                   factors: Optional[Sequence[float]] = None) -> UniformWidths:
    """The largest uniform keep-rate r in [0, 1] (found by bisection to 2^-40) whose widths
    :func:`widths_at_rate` fit the budget: ``groups.macs ≤ target_macs · groups.full_macs``.
    A network's MACs depend only on how many channels each group keeps, not on which.
    ``factors``: the widths at ``r·factors[i]`` instead, r in [0, 1 / min(factors)] (beyond it
    every group is whole).

    Raises ValueError when ``target_macs`` is not in (0, 1] or when even the narrowest widths
    (``round_to`` channels per group) exceed the budget."""
    budget = _budget(groups, target_macs)
    sizes = groups.sizes

    def macs(rate: float) -> float:
        return float(groups.macs(_first_channels(sizes, widths_at_rate(sizes, rate, round_to, factors))))

    if macs(0.0) > budget:
        raise _too_narrow(target_macs, round_to, macs(0.0) / groups.full_macs)
    lo, hi = 0.0, 1.0 / min(factors) if factors is not None else 1.0
    if macs(hi) <= budget:
        lo = hi
    else:
        for _ in range(_BISECTION_STEPS):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if macs(mid) <= budget else (lo, mid)
    widths = widths_at_rate(sizes, lo, round_to, factors)
    return UniformWidths(lo, widths, macs(lo))


def _budget(groups: ChannelGroups, target_macs: float) -> float:
    if not 0 < target_macs <= 1:
        raise ValueError(f"target_macs={target_macs}: give the fraction of the full MACs to keep, in (0, 1]")
    return target_macs * groups.full_macs


def _too_narrow(target_macs: float, round_to: int, narrowest: float) -> ValueError:
    return ValueError(f"target_macs={target_macs:.2%}: even the narrowest widths (multiples of {round_to}, "
                      f"{narrowest:.2%} of the MACs) exceed it; raise the target or lower round_to")


def fastest_widths(groups: ChannelGroups, latency: "LatencyTable", target_macs: float,
                   round_to: int = 1, floor: float = 0.0) -> List[int]:
    """Widths within ``target_macs · groups.full_macs`` that ``latency`` estimates fastest.
    ``floor``: no group narrower than ``floor`` times its :func:`uniform_widths` width at the
    same budget (rounded up to a multiple of ``round_to``); 0 lets every group fall to
    ``round_to`` channels.

    Two greedy passes, ``round_to`` channels a step, and the fastest of their results and the
    uniform widths on the table is returned: from full width, remove the channels that save the
    most estimated milliseconds per MAC removed until the MACs fit; from the narrowest widths
    allowed, add the channels that cost the fewest milliseconds per MAC added while they fit.
    Greedy by the ratio is the classic knapsack heuristic, not an optimum, and neither pass
    dominates the other: with a floor the removing pass can end slower than uniform widths,
    which is why those are a candidate too.

    Beyond Li et al. and the MGGC paper (issue 14): a MAC budget promises a speed-up that uniform
    widths do not deliver, because some groups cost more time per MAC than others (the outermost
    ones of an image generator: 3-channel output convolutions, norms and activations at full
    resolution; ``benchmarks/results/speed_gap_nodes.md``). Spending the same MACs where the
    runtime runs them fastest narrows those groups first. The latency table
    (:mod:`mggc_plugin.latency_table`) must have been measured for this network and input on the
    target runtime. It knows time, not quality: on facades at 10 % of the MACs the unfloored
    widths leave most encoder groups at 8 channels and lose KID, where a floor of ¾ kept MGGC's
    students within the validation split's noise of the game's own widths
    (``benchmarks/results/game_screen_pix2pix_fast.md``); the floor bounds how far a group may fall.

    Raises ValueError when ``target_macs`` is not in (0, 1], when ``floor`` is not in [0, 1] or
    when even the narrowest widths (``round_to`` channels per group) exceed the budget."""
    latency.check(groups)
    uniform = uniform_widths(groups, target_macs, round_to)
    budget = _budget(groups, target_macs)
    sizes = groups.sizes
    lowest = _floor_widths(sizes, uniform.widths, floor, round_to)

    def cost(w: Sequence[int]) -> Tuple[float, float]:
        masks = _first_channels(sizes, w)
        return float(groups.macs(masks)), float(latency(groups, masks))

    def step(widths: List[int], macs: float, ms: float, delta: int) -> Optional[Tuple[List[int], float, float]]:
        """The move of ``delta`` channels in one group with the best ms per MAC, within the bounds
        (and, when adding, the budget); None when no group can move."""
        best = None
        for i, (low, n) in enumerate(zip(lowest, sizes)):
            moved = min(n, max(low, widths[i] + delta))
            if moved == widths[i]:
                continue
            trial = widths[:i] + [moved] + widths[i + 1:]
            t_macs, t_ms = cost(trial)
            if delta > 0 and t_macs > budget:
                continue
            rate = (t_ms - ms) / max(abs(t_macs - macs), 1e-9)  # ms per MAC: removing wants it low, adding too
            if best is None or rate < best[0]:
                best = (rate, trial, t_macs, t_ms)
        return None if best is None else best[1:]

    removed, (macs, ms) = list(sizes), cost(sizes)
    while macs > budget:
        moved = step(removed, macs, ms, -round_to)
        assert moved is not None, "the floor is at most the uniform widths, which fit the budget"
        removed, macs, ms = moved
    added, (macs, ms) = list(lowest), cost(lowest)
    while (moved := step(added, macs, ms, round_to)) is not None:
        added, macs, ms = moved
    return min((removed, added, uniform.widths), key=lambda w: cost(w)[1])


def _floor_widths(sizes: Sequence[int], uniform: Sequence[int], floor: float, round_to: int) -> List[int]:
    """``floor`` × each uniform width, rounded up to a multiple of ``round_to`` (the epsilon absorbs
    float error such as 0.7 × 10 = 7.000000000000001), at least ``round_to``, at most the group."""
    if not 0 <= floor <= 1:
        raise ValueError(f"floor={floor}: give the fraction of each group's uniform width it keeps at least, in [0, 1]")
    return [min(n, max(round_to, math.ceil(floor * w / round_to - 1e-9) * round_to)) for n, w in zip(sizes, uniform)]


@dataclass
class MeasuredWidths:
    """The result of :func:`measured_widths`: the widths found, their MACs, and every step's
    record (the widths timed, first the incumbent, their milliseconds, and which one was kept)."""

    widths: List[int]
    macs: float
    steps: List[Dict[str, Any]] = field(default_factory=list)


def measured_widths(groups: ChannelGroups, start: Sequence[int], target_macs: float,
                    time_widths: Callable[[Sequence[List[int]]], Sequence[float]], round_to: int = 1,
                    floor: float = 0.0, band: float = 0.025, candidates: int = 6, steps: int = 10,
                    min_gain: float = 0.01, seed: int = 0,
                    estimate: Optional[Callable[[List[int]], float]] = None) -> MeasuredWidths:
    """Widths within ``target_macs · groups.full_macs`` that ran faster than ``start`` when timed.

    A local search. Each of ``steps`` steps draws up to ``candidates`` exchanges from the widths
    kept so far (the incumbent) — one group gives up about an eighth of its width (a multiple of
    ``round_to``, at least ``round_to``), another takes as many ``round_to`` steps as the budget
    then allows — keeping only those whose MACs stay within ``band`` below the budget, so that
    the search trades MACs between groups instead of shedding them. ``time_widths`` times the
    incumbent and the candidates *together* (the incumbent first; milliseconds, in that order;
    e.g. interleaved by :func:`~mggc_plugin.metrics.compare_latency`), and the fastest candidate
    becomes the incumbent when it beat it by more than ``min_gain`` in that same measurement.
    With ``estimate`` (e.g. a latency table's milliseconds), half of each step's candidates are
    the untried exchanges it rates fastest and the rest are drawn at random (``seed``); without,
    all are random. ``floor``: no group below that share of its :func:`uniform_widths` width, as
    in :func:`fastest_widths`.

    Beyond Li et al. and the MGGC paper (issue 14): a latency table adds up layers timed alone
    and misses what the runtime does to the whole graph (fusions, reorders, bfloat16 kernels),
    which is what this measures. The best of several noisy timings is biased low, so a step's
    gain is a selection, not a measurement: time the result against ``start`` afresh before
    quoting a speed-up. Raises ValueError when ``start`` exceeds the budget or lies below a floor."""
    if not 0 <= band < 1 or candidates < 1 or steps < 0 or min_gain < 0:
        raise ValueError(f"band={band}, candidates={candidates}, steps={steps}, min_gain={min_gain}: need band in "
                         "[0, 1), candidates >= 1, steps >= 0 and min_gain >= 0")
    budget = _budget(groups, target_macs)
    sizes = groups.sizes
    lowest = _floor_widths(sizes, uniform_widths(groups, target_macs, round_to).widths, floor, round_to)

    def macs(w: Sequence[int]) -> float:
        return float(groups.macs(_first_channels(sizes, w)))

    incumbent = list(start)
    if len(incumbent) != len(sizes) or macs(incumbent) > budget or any(w < low for w, low in zip(incumbent, lowest)):
        raise ValueError(f"start widths {incumbent}: give one width per group within the budget "
                         f"({target_macs:.2%} of the MACs) and at least the floor {lowest}")
    rng = random.Random(seed)
    tried = {tuple(incumbent)}
    result = MeasuredWidths(incumbent, macs(incumbent))
    for step in range(steps):
        pool = [w for w in _exchanges(incumbent, lowest, sizes, round_to, budget, macs)
                if tuple(w) not in tried and macs(w) >= (1 - band) * budget]
        if not pool:
            break
        chosen: List[List[int]] = []
        if estimate is not None:
            chosen = sorted(pool, key=estimate)[:candidates // 2]
        rest = [w for w in pool if w not in chosen]
        chosen += rng.sample(rest, min(len(rest), candidates - len(chosen)))
        tried.update(tuple(w) for w in chosen)
        ms = list(time_widths([incumbent, *chosen]))
        best = min(range(1, len(ms)), key=ms.__getitem__)
        kept = best if ms[best] < (1 - min_gain) * ms[0] else 0
        result.steps.append({"step": step, "widths": [incumbent, *chosen], "ms": ms, "kept": kept})
        if kept:
            incumbent = chosen[kept - 1]
    result.widths, result.macs = incumbent, macs(incumbent)
    return result


def _exchanges(widths: List[int], lowest: Sequence[int], sizes: Sequence[int], round_to: int, budget: float,
               macs: Callable[[Sequence[int]], float]) -> List[List[int]]:
    """Every widths list where group i gives up about an eighth of its width (down to its floor)
    and another group j then takes the most ``round_to`` steps that keep the MACs within
    ``budget`` (at least one: otherwise the pair is left out)."""
    out = []
    for i, (w, low) in enumerate(zip(widths, lowest)):
        cut = max(round_to, round(w / 8 / round_to) * round_to)
        if w - cut < low:
            continue
        shrunk = widths[:i] + [w - cut] + widths[i + 1:]
        for j, n in enumerate(sizes):
            if j == i or shrunk[j] >= n:
                continue
            grown = None
            for width in range(shrunk[j] + round_to, n + round_to, round_to):
                trial = shrunk[:j] + [min(n, width)] + shrunk[j + 1:]
                if macs(trial) > budget:
                    break
                grown = trial
            if grown is not None:
                out.append(grown)
    return out


def keep_masks(groups: ChannelGroups, widths: Sequence[int], method: str = "l1_norm") -> List[torch.Tensor]:
    """One bool mask per group keeping ``widths[i]`` channels of group i, chosen by ``method``
    (:data:`METHODS`): ``l1_norm`` the channels of the highest :func:`filter_l1_scores` (Li et
    al. 2017), ``uniform`` the first channels."""
    if method not in METHODS:
        raise ValueError(f"method {method!r}: choose one of {', '.join(METHODS)}")
    if len(widths) != len(groups) or any(not 1 <= w <= n for w, n in zip(widths, groups.sizes)):
        raise ValueError(f"widths {list(widths)}: give one width per group, between 1 and its size {groups.sizes}")
    if method == "uniform":
        return _first_channels(groups.sizes, widths)
    return top_channels(filter_l1_scores(groups), widths)


def top_channels(scores: Sequence[torch.Tensor], widths: Sequence[int]) -> List[torch.Tensor]:
    """One bool mask per score vector keeping the ``widths[i]`` channels of highest
    ``scores[i]`` (filter L1 norms, a game's keep-logits)."""
    masks = []
    for score, width in zip(scores, widths):
        mask = torch.zeros(len(score), dtype=torch.bool)
        mask[score.topk(width).indices] = True
        masks.append(mask)
    return masks


def masks_to_budget(groups: ChannelGroups, target_macs: float, method: str = "l1_norm", round_to: int = 1
                    ) -> List[torch.Tensor]:
    """The masks (one bool vector per group) of ``method`` at the budget: the widths of
    :func:`uniform_widths`, the channels of :func:`keep_masks`. ``l1_norm`` is Li et al. 2017's
    L1-norm filter pruning at a uniform rate."""
    if method not in METHODS:
        raise ValueError(f"method {method!r}: choose one of {', '.join(METHODS)}")
    return keep_masks(groups, uniform_widths(groups, target_macs, round_to).widths, method)


def prune_to_budget(model: nn.Module, example_input: torch.Tensor, target_macs: float, method: str = "l1_norm",
                    round_to: int = 1) -> nn.Module:
    """A physically slimmed copy of ``model`` (:func:`~mggc_plugin.slim.slim`; ``model`` is
    unchanged) with at most ``target_macs`` of its MACs at ``example_input``'s shape, by
    :func:`masks_to_budget` (``l1_norm``: Li et al. 2017)."""
    groups = ChannelGroups.discover(model, example_input)
    return slim(model, groups, masks_to_budget(groups, target_macs, method, round_to))


def largest_ngf_within(arch_G: Dict[str, Any], input_shape: Tuple[int, ...], budget_macs: float) -> int:
    """The largest ngf ≤ ``arch_G["ngf"]`` whose generator ``networks.define_G(**arch_G, ngf=…)``
    has at most ``budget_macs`` MACs at ``input_shape`` (bisection: every width of upstream's
    generators is a multiple of ngf, so the MACs grow with it). The caller's torch RNG is left
    as it was. Raises ValueError when not even ngf 1 fits."""

    def fits(ngf: int) -> bool:
        with torch.random.fork_rng(devices=[]):  # define_G initialises weights from the global RNG
            G = networks.define_G(**{**arch_G, "ngf": ngf})
        return count_macs(G, input_shape).total <= budget_macs

    if not fits(1):
        raise ValueError(f"no ngf >= 1 fits {budget_macs:,.0f} MACs: raise the budget")
    lo, hi = 1, int(arch_G["ngf"]) + 1  # fits(lo); hi does not fit or is beyond the teacher's ngf
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def fill_to_budget(groups: ChannelGroups, masks: Sequence[torch.Tensor], scores: Sequence[torch.Tensor],
                   target_macs: float, round_to: int = 1) -> List[torch.Tensor]:
    """``masks`` with channels added back until no further step fits ``target_macs ·
    groups.full_macs``, so that students of different methods are compared at (nearly) the same
    MACs rather than wherever each method's rounding left them (:func:`fill_while`).

    The result's MACs are within the budget and at most one step below it. Masks already over
    the budget are returned unchanged (this only adds). Beyond Li et al. and the MGGC paper, both
    of which report whatever MACs their widths give: a benchmark protocol, applied to every method
    alike.
    """
    if len(masks) != len(groups) or len(scores) != len(groups):
        raise ValueError(f"{len(masks)} masks and {len(scores)} score vectors for {len(groups)} groups: give one "
                         "of each per group")
    budget = target_macs * groups.full_macs
    return fill_while(masks, scores, lambda trial: float(groups.macs(trial)) <= budget, round_to)


def fill_while(masks: Sequence[torch.Tensor], scores: Sequence[torch.Tensor],
               fits: Callable[[List[torch.Tensor]], bool], round_to: int = 1) -> List[torch.Tensor]:
    """``masks`` with channels added back, one step at a time, while the result ``fits``.

    A step adds ``round_to`` channels (or the rest of the group) to one group: the group whose
    kept fraction is lowest among those whose step still fits (so the widths stay as even as the
    method left them allows), and in it the dropped channels of highest ``scores`` (one score
    vector per group: the method's own ranking, e.g. :func:`filter_l1_scores` or the agents'
    keep-logits). Widths that were multiples of ``round_to`` stay so.
    """
    if round_to < 1:
        raise ValueError(f"round_to={round_to}: use 1 (any width) or a positive multiple such as 8")
    out = [m.clone().bool().cpu() for m in masks]
    while True:
        best: Tuple[float, int, torch.Tensor] | None = None
        for i, (mask, score) in enumerate(zip(out, scores)):
            dropped = (~mask).nonzero().flatten()
            if len(dropped) == 0:
                continue
            add = dropped[score.cpu()[dropped].argsort(descending=True)[:round_to]]
            trial = [m if j != i else m.index_fill(0, add, True) for j, m in enumerate(out)]
            if not fits(trial):
                continue
            fraction = float(mask.float().mean())
            if best is None or fraction < best[0]:
                best = (fraction, i, add)
        if best is None:
            return out
        _, i, add = best
        out[i] = out[i].index_fill(0, add, True)
