"""The compression methods of the facades benchmark, in one registry: each turns the teacher
pair into a student pair at a MACs budget, before the finetuning they all share.

* ``mggc`` — the full method as the plugin runs it by default: the pruning game of Eq. 2 with
  D's real sample drawn from the teacher-output neighbourhoods (Eq. 1), then slimming by the
  agents' final architecture, with the repairs the game screen (``game_screen.py``) chose on a
  validation split, both beyond the paper: the teacher's own GAN loss (``vanilla`` for
  upstream's pix2pix) and the teacher-fidelity term ``λ_rec = 10`` (``MGGCConfig.lambda_rec``)
  — :data:`DEFAULT_GAME`.
* ``mggc_paper`` — the same game as the paper states it (the task's paper loss, no λ_rec).
* ``mggc_stochastic`` — ``mggc`` on a D'_y of 3 dropout draws of the teacher per source
  (``neighbor_samples``, beyond the paper), so that D's real neighbours include draws aligned
  with the centre's source; teachers with dropout only (pix2pix). Not in the default methods.
* ``mggc_latency`` — ``mggc`` budgeted in milliseconds instead of MACs (beyond the paper, issue
  14's latency budget): the unit's budget r asks for r × the teacher's latency on the latency
  table's runtime (``Context.latency``, :class:`~mggc_plugin.latency_table.LatencyTable`, Eq. 5's
  T in ms), G's dropped channels refilled by keep-logit under that latency
  (``MGGCConfig.refill``) instead of up to r of the MACs. Not in the default methods.
* ``mggc_k0`` — ``mggc`` without the manifold (k = 0, Table 2's "feedback" row): D's real sample
  is y' itself. ``mggc_paper_k0``: the same row of the paper's game.
* ``baseline`` — Table 2's Baseline: one learned logit vector per channel group of G, D full
  (the options of ``mggc``).
* ``l1_norm`` — Li et al. 2017, "Pruning Filters for Efficient ConvNets": each channel is ranked
  by the L1 norm of the filter that produces it, and every group keeps the same fraction of its
  channels (Li et al. choose per-layer rates by a sensitivity analysis; a uniform rate is the
  common re-implementation, e.g. in torch-pruning's benchmarks), the largest fraction whose
  rounded widths fit the budget. D stays the teacher's.
* ``l1_norm_fast`` — ``l1_norm`` at the widths :func:`~mggc_plugin.baselines.fastest_widths` finds
  for the budget on G_T's OpenVINO latency table (``Context.latency("openvino")``): the same MACs
  spent where OpenVINO runs them fastest (beyond Li et al., issue 14). Not in the default methods.
* ``mggc_fast`` — ``mggc``'s game (the same state, :attr:`Method.game_of`), its agents' keep-logits
  ranking the channels of each group, at the widths ``l1_norm_fast`` takes instead of the game's
  final architecture (beyond the paper, issue 14: the game decides which channels, the OpenVINO
  latency table how many per group). Not in the default methods.
* ``l1_norm_fast50``, ``l1_norm_fast75``, ``mggc_fast50``, ``mggc_fast75`` — the same with no
  group below ½ or ¾ of its ``l1_norm`` width (``fastest_widths``' ``floor``): unfloored, the
  latency table narrows the encoder to 8 channels at 10 % and loses quality. Not in the default
  methods; the game screen chooses among them on the validation split.
* ``scratch`` — the teacher's architecture at uniform widths within the budget (the first
  channels of every group, :func:`~mggc_plugin.baselines.masks_to_budget` with ``uniform``),
  re-initialised as upstream initialises networks, with a fresh discriminator of the teacher's:
  what training a smaller network of the same design from scratch gives.
* ``gan_compression`` — GAN Compression (Li et al., CVPR 2020 / TPAMI 2021,
  :mod:`mggc_plugin.gan_compression`): a once-for-all supernet of the teacher's architecture,
  started from the teacher's weights and trained with sampled group widths (GAN + L1 +
  intermediate-feature distillation, against a copy of the teacher's D), a random search of
  ``Context.search_candidates`` width configurations within 90–100 % of the budget scored on
  held-out training images (:func:`validation_split`), and the best one extracted. Its D is the
  supernet's. Reconstruction and distillation weights are the reference's per task: 100 and 1
  for pix2pix (conditional D), 10 and 0.01 for CycleGAN. Once for all, as the method intends:
  one supernet per seed serves every budget of the run (``Context.targets``; its widths span
  :func:`~mggc_plugin.gan_compression.shared_rates`), trained once and saved at
  ``Context.checkpoint``, then searched at each budget.
* ``agd`` — AutoGAN-Distiller (Fu et al., ICML 2020, :mod:`mggc_plugin.agd`): the same width
  search with a discriminator-free supernet (L1 + feature distillation only), as AGD's
  distillation-guided proxy task. Its :attr:`Method.discriminator_free` flag says that the shared
  GAN finetuning must be replaced by :func:`mggc_plugin.agd.agd_fit`; the D it returns is the
  teacher's, unused.

Every method rounds widths to multiples of ``round_to``. With ``Context.fill`` (the benchmark's
default) every student is then filled up to its budget by
:func:`~mggc_plugin.baselines.fill_to_budget`, each method by its own channel ranking (the
agents' keep-logits, filter L1 norms, channel order for ``scratch``), so that all students of a
budget have nearly the same MACs. The methods live in the package
(:func:`mggc_plugin.game.play`, :mod:`mggc_plugin.baselines`); this registry only maps the
benchmark's :class:`Context` onto them.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

from mggc_plugin import networks
from mggc_plugin.baselines import (
    fastest_widths,
    fill_to_budget,
    filter_l1_scores,
    keep_masks,
    masks_to_budget,
    top_channels,
    uniform_widths,
)
from mggc_plugin.channels import ChannelGroups
from mggc_plugin.game import neighbor_batches, play
from mggc_plugin.gan_compression import (
    SupernetConfig,
    extract,
    first_k,
    l1_to_teacher,
    random_search,
    search_space,
    shared_rates,
    train_supernet,
)
from mggc_plugin.latency_table import LatencyTable
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
    ``save_every`` steps and resumes from. ``device``, ``round_to``, ``seed``. ``fill``: fill
    every student up to its budget (module docstring).

    For the supernet methods (``gan_compression``, ``agd``): ``real``, real targets aligned with
    ``game.x`` (pix2pix: ground truth, also the L1 target; CycleGAN: unpaired real targets), D's
    real samples; None: the teacher's outputs y' stand in. ``score``: the search's validation
    score of a sub-network (lower is better), e.g. KID on the held-out images of
    :func:`validation_split`; None: L1 to y' on them. ``supernet_steps``: None = ``prune_steps``
    (a game's cost). ``search_candidates``: how many configurations the search scores.
    ``game_options``: :class:`~mggc_plugin.pruner.MGGCConfig` fields the games use beyond the
    budget, objective and row (e.g. ``{"gan_mode": "teacher", "lambda_rec": 10.0}``), and
    ``neighbor_samples``: the game's D'_y holds that many dropout draws of the teacher per source
    (beyond the paper), from ``stochastic(samples)`` (:func:`facades.stochastic_game`).
    ``targets``: every budget of the run, which one supernet serves (:attr:`Method.once_for_all`);
    empty: only the unit's.
    ``teacher_gan_mode``: the GAN loss the teacher was trained with (its ``train_opt.txt``), what
    ``gan_mode: "teacher"`` stands for. ``latency``: returns G_T's latency table on a runtime
    (measured once and cached by the caller): games with the option ``budget: "latency"`` budget
    in the ``"eager"`` one, ``l1_norm_fast`` and ``mggc_fast`` allocate by the ``"openvino"`` one."""

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
    fill: bool = True
    real: Optional[torch.Tensor] = None
    score: Optional[Callable[[nn.Module], float]] = None
    supernet_steps: Optional[int] = None
    search_candidates: int = 200
    game_options: Dict[str, object] = field(default_factory=dict)
    stochastic: Optional[Callable[[int], GameData]] = None
    teacher_gan_mode: Optional[str] = None
    targets: Tuple[float, ...] = ()
    latency: Optional[Callable[[str], LatencyTable]] = None

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


def _play(ctx: Context, target: float, ablation: str, fast_floor: Optional[float] = None) -> Student:
    """The pruning game of Eq. 2 in the given Table 2 row, resumed from ``ctx.checkpoint``.
    ``fast_floor``: G is cut at :func:`~mggc_plugin.baselines.fastest_widths` (with that
    ``floor``) on the OpenVINO latency table, each group keeping its channels of highest
    keep-logit, instead of at the game's final architecture."""
    # looked up before the game plays, so that a missing table fails at once
    fastest = None if fast_floor is None else (_openvino_table(ctx, "mggc_fast"), fast_floor)
    options = {"gan_mode": ctx.gan_mode, **ctx.game_options}
    if options["gan_mode"] == "teacher":
        options["gan_mode"] = ctx.teacher_gan_mode or ctx.gan_mode
    samples = int(options.get("neighbor_samples", 1))  # type: ignore[call-overload]
    table = None
    budget: Dict[str, object] = {"target_macs": target}
    if options.get("budget") == "latency":
        if ctx.latency is None:
            raise ValueError("budget 'latency' needs Context.latency, the teacher G's latency table")
        table = ctx.latency("eager")
        budget = {"target_latency_ms": target * table.full_ms, "refill": True}
    game_options = {k: v for k, v in options.items() if k not in ("neighbor_samples", "budget")}
    config = MGGCConfig(conditional_D=ctx.conditional_D, ablation=ablation, seed=ctx.seed,
                        **budget, **game_options)  # type: ignore[arg-type]
    pruner = MGGCPruner(ctx.G_T.to(ctx.device), ctx.D_T.to(ctx.device), ctx.example_x().to(ctx.device), config,
                        latency=table)
    game = ctx.game
    if samples > 1:
        if ctx.stochastic is None:
            raise ValueError("neighbor_samples > 1 needs Context.stochastic, the builder of a stochastic D'_y")
        game = ctx.stochastic(samples)
    batches = neighbor_batches(game.x, game.y_center, game.neighbors, ctx.batch_size, ctx.seed, ctx.device)
    played = 0

    def counted(step: int) -> Tuple[torch.Tensor, ...]:
        nonlocal played
        played += 1
        return batches(step)

    start = time.perf_counter()
    history = play(pruner, counted, ctx.prune_steps, ctx.save_every, ctx.checkpoint, desc=f"prune {ablation}")
    # The steps this process played and their wall time: a game resumed from an earlier run's save
    # times only its remainder, so its cost is reported per step (facades_summary's cost table).
    timing = {"steps": played, "seconds": time.perf_counter() - start}
    arch = pruner.finalize(round_to=ctx.round_to)
    masks_G = arch.v_G
    macs_before_fill = arch.macs_G
    if fastest is not None:
        masks_G = top_channels(arch.logits_G, fastest_widths(pruner.groups_G, fastest[0], target, ctx.round_to,
                                                             fastest[1]))
        macs_before_fill = float(pruner.groups_G.macs(masks_G))
    if ctx.fill and table is None:  # a latency budget was refilled under the latency by finalize
        masks_G = fill_to_budget(pruner.groups_G, masks_G, arch.logits_G, target, ctx.round_to)
    G_T, D_T = ctx.G_T.cpu(), ctx.D_T.cpu()
    info: Dict[str, object] = {
        "trimmed_channels_G": arch.trimmed_G, "steps": pruner.step_count,
        "sampled_kept_macs_G_last100": sum(h["kept_macs_G_total"] for h in history[-100:]) / min(100, len(history)),
        "p": pruner.p, "macs_before_fill": macs_before_fill / pruner.groups_G.full_macs,
        "d_auc_first50": _mean(history[:50], "d_auc"), "d_auc_last500": _mean(history[-500:], "d_auc"),
        "kept_channels_D_final": float(torch.cat(arch.v_D).float().mean()), "game_options": options,
        "game_timing": timing}
    if fastest is not None:
        info.update(_latency_info(fastest[0], pruner.groups_G, masks_G))
    if table is not None:
        info.update(target_latency_ms=config.target_latency_ms, latency_ms_estimate=arch.latency_ms_G,
                    teacher_latency_ms=table.full_ms, latency_runtime=table.runtime)
    return Student(slim(G_T, pruner.groups_G, masks_G), slim(D_T, pruner.groups_D, arch.v_D), history, info)


def _mean(history: List[Dict[str, float]], key: str) -> Optional[float]:
    values = [h[key] for h in history if key in h]
    return sum(values) / len(values) if values else None


def _l1_norm(ctx: Context, target: float) -> Student:
    G_T = ctx.G_T.cpu()
    groups = ChannelGroups.discover(G_T, ctx.example_x())
    widths = uniform_widths(groups, target, ctx.round_to)  # the largest uniform rate within the budget
    masks = keep_masks(groups, widths.widths, "l1_norm")
    if ctx.fill:
        masks = fill_to_budget(groups, masks, filter_l1_scores(groups), target, ctx.round_to)
    return Student(slim(G_T, groups, masks), full_width(ctx.D_T.cpu(), ctx, G_T),
                   info={"rate": widths.rate, "macs_before_fill": widths.macs / groups.full_macs})


def _l1_norm_fast(ctx: Context, target: float, floor: float = 0.0) -> Student:
    table = _openvino_table(ctx, "l1_norm_fast")
    G_T = ctx.G_T.cpu()
    groups = ChannelGroups.discover(G_T, ctx.example_x())
    masks = keep_masks(groups, fastest_widths(groups, table, target, ctx.round_to, floor), "l1_norm")
    info: Dict[str, object] = {"macs_before_fill": float(groups.macs(masks)) / groups.full_macs}
    if ctx.fill:
        masks = fill_to_budget(groups, masks, filter_l1_scores(groups), target, ctx.round_to)
    info.update(_latency_info(table, groups, masks))
    return Student(slim(G_T, groups, masks), full_width(ctx.D_T.cpu(), ctx, G_T), info=info)


def _openvino_table(ctx: Context, method: str) -> LatencyTable:
    """G_T's OpenVINO latency table, by which the ``*_fast`` methods allocate their widths."""
    if ctx.latency is None:
        raise ValueError(f"{method} needs Context.latency, the teacher G's latency tables")
    return ctx.latency("openvino")


def _latency_info(table: LatencyTable, groups: ChannelGroups, masks: List[torch.Tensor]) -> Dict[str, object]:
    return {"latency_ms_estimate": float(table(groups, masks)), "teacher_latency_ms": table.full_ms,
            "latency_runtime": table.runtime}


def _d_example(ctx: Context, G: nn.Module) -> torch.Tensor:
    x = ctx.example_x()
    with torch.no_grad():
        was = G.training
        y = G.eval()(x)
        G.train(was)
    return torch.cat([x, y], 1) if ctx.conditional_D else y


def full_width(D: nn.Module, ctx: Context, G: nn.Module) -> nn.Module:
    """D wrapped as a full-width slim network, so every student is saved and reloaded alike."""
    groups_D = ChannelGroups.discover(D, _d_example(ctx, G))
    return slim(D, groups_D, [torch.ones(n, dtype=torch.bool) for n in groups_D.sizes])


def _scratch(ctx: Context, target: float) -> Student:
    G_T = ctx.G_T.cpu()
    groups = ChannelGroups.discover(G_T, ctx.example_x())
    masks = masks_to_budget(groups, target, "uniform", ctx.round_to)
    if ctx.fill:  # channel order as the ranking: the first channels, as a narrower network has
        masks = fill_to_budget(groups, masks, [-torch.arange(n, dtype=torch.float) for n in groups.sizes], target,
                               ctx.round_to)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ctx.seed)
        G = networks.init_weights(slim(G_T, groups, masks))
        D = networks.define_D(**ctx.arch_D)
    return Student(G, full_width(D, ctx, G), info={"widths": [int(m.sum()) for m in masks]})


def validation_split(n: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(train, val)`` of ``n`` training images for the supernet methods: the last
    ``max(1, n // 10)`` images are held out for the search's score and never train the supernet
    (with one image, it is both)."""
    if n < 1:
        raise ValueError("the game data holds no image")
    held_out = max(1, n // 10) if n > 1 else 0
    idx = torch.arange(n)
    return (idx[:n - held_out], idx[n - held_out:]) if held_out else (idx, idx)


def _supernet(ctx: Context, target: float, discriminator: bool) -> Student:
    """GAN Compression's supernet, search and extraction; ``discriminator=False``: AGD's
    discriminator-free variant (module docstring)."""
    device = ctx.device
    G_T, D_T = ctx.G_T.to(device), ctx.D_T.to(device)
    groups = ChannelGroups.discover(G_T, ctx.example_x().to(device))
    serves = sorted(ctx.targets or (target,))
    space = search_space(groups, shared_rates(groups, serves, ctx.round_to), ctx.round_to)
    game = ctx.game
    train, val = validation_split(len(game.x))
    real = ctx.real if ctx.real is not None else game.y_center
    recon = real if ctx.conditional_D and ctx.real is not None else game.y_center

    def batches(step: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(ctx.seed * 1_000_003 + step)
        idx = train[torch.randint(len(train), (ctx.batch_size,), generator=g)]
        return game.x[idx], real[idx], recon[idx]

    paired = ctx.conditional_D  # pix2pix's D is conditional, CycleGAN's is not
    config = SupernetConfig(gan_mode=ctx.gan_mode, conditional_D=ctx.conditional_D,
                            lambda_gan=1.0 if discriminator else 0.0, lambda_recon=100.0 if paired else 10.0,
                            lambda_distill=1.0 if paired else 0.01, seed=ctx.seed)
    steps = ctx.supernet_steps if ctx.supernet_steps is not None else ctx.prune_steps
    supernet = train_supernet(G_T, D_T if discriminator else None, groups, space, batches, steps, config,
                              checkpoint=ctx.checkpoint, save_every=ctx.save_every)
    score = ctx.score if ctx.score is not None else l1_to_teacher(game.x[val], game.y_center[val])
    result = random_search(supernet, target, score, ctx.search_candidates, ctx.seed)
    supernet.G.cpu()
    widths = result.widths
    if ctx.fill:  # channel order as the ranking: the widths grow by first channels, as the supernet shares them
        sizes = supernet.groups.sizes
        masks = fill_to_budget(supernet.groups, first_k(sizes, widths),
                               [-torch.arange(n, dtype=torch.float) for n in sizes], target, ctx.round_to)
        widths = [int(m.sum()) for m in masks]
    G = extract(supernet, widths)
    D = supernet.D.cpu() if supernet.D is not None else ctx.D_T.cpu()
    ctx.G_T.cpu()
    ctx.D_T.cpu()
    info = {"supernet_steps": supernet.steps, "supernet_seconds": supernet.seconds,
            "search_candidates": len(result.candidates), "search_draws": result.draws,
            "search_seconds": result.seconds, "search_score": result.score, "searched_widths": result.widths,
            "macs_before_fill": result.macs / supernet.groups.full_macs, "space": supernet.space,
            "discriminator": discriminator, "supernet_serves": serves}
    return Student(G, full_width(D, ctx, G), supernet.history, info)


@dataclass(frozen=True)
class Method:
    """One row of the table: its label and how it makes the student pair. ``discriminator_free``:
    the student is trained without any D (AGD), so the benchmark finetunes it with
    :func:`mggc_plugin.agd.agd_fit` instead of the shared GAN finetuning. ``game_options``: the
    :class:`~mggc_plugin.pruner.MGGCConfig` options its game plays with (``Context.game_options``;
    ``gan_mode: "teacher"`` is the loss the teacher was trained with). ``once_for_all``: one
    state at ``Context.checkpoint`` serves every budget of ``Context.targets`` (the supernets).
    ``game_of``: the method whose game state this one reuses (the same game, another cut).
    Call :meth:`build`, not ``make``: it makes the student depend on ``Context.seed`` alone."""

    label: str
    make: Callable[[Context, float], Student]
    plays_game: bool = False
    discriminator_free: bool = False
    once_for_all: bool = False
    game_options: Dict[str, object] = field(default_factory=dict)
    game_of: Optional[str] = None

    def build(self, ctx: Context, target: float) -> Student:
        """``make(ctx, target)`` from the global RNG seeded by ``ctx.seed``: weight inits and
        dropout outside a game (which has its own stream) draw from it, so a student does not
        depend on what the process made before it."""
        torch.manual_seed(ctx.seed)
        return self.make(ctx, target)


#: The game options of the plugin's default MGGC (``--model mggc_*`` and the benchmark's ``mggc``).
DEFAULT_GAME: Dict[str, object] = {"gan_mode": "teacher", "lambda_rec": 10.0}


def _floor_label(floor: float) -> str:
    return f", each group ≥ {floor:g} × its uniform width" if floor else " for the MACs"


def _mggc_fast(floor: float) -> Method:
    """``mggc``'s game cut at OpenVINO's fastest widths with ``floor`` (``mggc_fast*``)."""
    return Method(f"MGGC's channels at OpenVINO's fastest widths{_floor_label(floor)}",
                  lambda ctx, t: _play(ctx, t, "mggc", fast_floor=floor), plays_game=True,
                  game_options=DEFAULT_GAME, game_of="mggc")


def _l1_norm_fast_method(floor: float) -> Method:
    """L1-norm's filters at OpenVINO's fastest widths with ``floor`` (``l1_norm_fast*``)."""
    return Method(f"L1-norm at OpenVINO's fastest widths{_floor_label(floor)}",
                  lambda ctx, t: _l1_norm_fast(ctx, t, floor))

METHODS: Dict[str, Method] = {
    "mggc": Method("MGGC (teacher's GAN loss, λ_rec = 10)", lambda ctx, t: _play(ctx, t, "mggc"), plays_game=True,
                   game_options=DEFAULT_GAME),
    "mggc_paper": Method("MGGC, the paper's game", lambda ctx, t: _play(ctx, t, "mggc"), plays_game=True),
    "mggc_stochastic": Method("MGGC on a D'_y of 3 dropout draws per source",
                              lambda ctx, t: _play(ctx, t, "mggc"), plays_game=True,
                              game_options={**DEFAULT_GAME, "neighbor_samples": 3}),
    "mggc_latency": Method("MGGC at a latency budget (r × the teacher's ms)", lambda ctx, t: _play(ctx, t, "mggc"),
                           plays_game=True, game_options={**DEFAULT_GAME, "budget": "latency"}),
    "mggc_fast": _mggc_fast(0.0),
    "mggc_fast50": _mggc_fast(0.5),
    "mggc_fast75": _mggc_fast(0.75),
    "mggc_k0": Method("MGGC, k = 0 (no manifold)", lambda ctx, t: _play(ctx, t, "feedback"), plays_game=True,
                      game_options=DEFAULT_GAME),
    "mggc_paper_k0": Method("MGGC, the paper's game, k = 0", lambda ctx, t: _play(ctx, t, "feedback"),
                            plays_game=True),
    "baseline": Method("Baseline (Table 2)", lambda ctx, t: _play(ctx, t, "baseline"), plays_game=True,
                       game_options=DEFAULT_GAME),
    "l1_norm": Method("L1-norm filter pruning", _l1_norm),
    "l1_norm_fast": _l1_norm_fast_method(0.0),
    "l1_norm_fast50": _l1_norm_fast_method(0.5),
    "l1_norm_fast75": _l1_norm_fast_method(0.75),
    "scratch": Method("From scratch (uniform widths, new weights)", _scratch),
    "gan_compression": Method("GAN Compression (supernet + search)", lambda ctx, t: _supernet(ctx, t, True),
                              once_for_all=True),
    "agd": Method("AutoGAN-Distiller (D-free search + distillation)", lambda ctx, t: _supernet(ctx, t, False),
                  discriminator_free=True, once_for_all=True),
}


def check_methods(names: List[str]) -> List[str]:
    """``names`` if all are keys of :data:`METHODS`, else a ValueError naming the unknown ones."""
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}: choose from {', '.join(METHODS)}")
    return names
