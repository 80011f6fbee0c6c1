"""GAN Compression's recipe (Li et al., "GAN Compression: Efficient Architectures for Interactive
Conditional GANs", CVPR 2020 / TPAMI 2021; reference code ``mit-han-lab/gan-compression``) on the
channel groups of our networks: a once-for-all supernet, a search under the MACs budget, and the
chosen sub-network extracted physically.

1. **Once-for-all training** (:func:`train_supernet`). The supernet has the teacher's
   architecture and starts from the teacher's weights (GAN Compression's pretrained-teacher
   setting starts it from an already distilled student; ours *is* the teacher's architecture, so
   the teacher's weights are the natural start). Every step samples one width per channel group
   uniformly from that group's candidate widths (:func:`search_space`), as the reference's
   ``ResnetSupernet.optimize_parameters`` samples one configuration per step
   (``ChannelConfigs.sample``): no sandwich rule, the largest and smallest sub-networks are not
   trained in extra passes. The sub-network keeps the *first* k channels of every group and runs
   as the gated supernet (``groups.gated``), so all sub-networks share one set of weights, as
   GAN Compression's ``SuperConv2d`` slices its first channels. The objective is the
   reference's: ``λ_gan·f_G(D(G_s(x))) + λ_recon·|G_s(x) − target|₁ + λ_distill·Σ_l
   ‖A_l(F_l^s) − F_l^t‖²`` with a discriminator trained against it (``f_D``,
   :mod:`mggc_plugin.losses`), started from the teacher's D. The distilled features F_l are the
   outputs of every channel group's root layer (the first layer producing the group, a layer the
   supernet shares by name with the teacher: :class:`~mggc_plugin.finetune.FeatureTaps`, as
   the finetuner's KD), the student's masked to its sampled channels, each mapped to the
   teacher's width by a learned 1×1 convolution A_l (started at the identity, since the widest
   sub-network *is* the teacher at step 0). The reference distils four hand-picked ResNet block
   outputs instead; ours are derived from the graph, one per group, and are pre-norm conv outputs.
2. **Search** (:func:`random_search`). Random search: ``n`` distinct width configurations whose
   MACs lie in ``[low·p, p]`` of the budget, drawn by rejection sampling from the same grid,
   each scored by the caller's ``score(G_sub)`` (lower is better) on held-out images; the best
   is returned. The reference evaluates *every* configuration of its (small) grid, later an
   evolutionary search, by FID or mIoU on a validation set.
3. **Extraction** (:func:`extract`): :func:`~mggc_plugin.slim.slim` with the first-k masks, a
   plain slim network ready for the same finetuning as every other student; the adapters and
   the discriminator are not part of it.

Simplified relative to GAN Compression: no depthwise-separable ("mobile") teacher — the
supernet keeps the teacher's convolutions; candidate widths are fractions of each group around
the budget (:func:`rates_around`) rather than hand-written channel lists per layer; no channel
sorting before training (the TPAMI version's optional ``--sort_channels``); no BatchNorm
recalibration of the chosen sub-network (it is finetuned afterwards, and upstream's test mode
normalises each image by its own statistics); random instead of exhaustive or evolutionary
search.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.lr_scheduler import LambdaLR
from tqdm import tqdm

from .baselines import uniform_widths, widths_at_rate
from .channels import ChannelGroups
from .device import restore_rng_states, rng_states
from .fileio import atomic_torch_save, load_torch_file
from .finetune import FeatureTaps, linear_lr
from .losses import GAN_MODES, f_D, f_G
from .slim import slim
from .teacher import inference_copy

#: GAN Compression's pix2pix candidate channels {16, 24, 32, 48, 56, 64} of 64 spread 1/4–1 of
#: the widest; around a budget we span half to one and a half times its uniform keep-rate.
DEFAULT_SPREAD = (0.5, 0.75, 1.0, 1.25, 1.5)

#: ``batches(step) -> (x, real, target)``: the step's sources, D's real samples and the L1
#: reconstruction target (pix2pix: the ground truth; CycleGAN: the teacher's output), a function
#: of the step index alone so that runs are reproducible.
SupernetBatches = Callable[[int], Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
#: One width per channel group, in the order of ``ChannelGroups.sizes``.
Widths = List[int]


def rates_around(groups: ChannelGroups, target_macs: float, round_to: int = 1,
                 spread: Sequence[float] = DEFAULT_SPREAD) -> List[float]:
    """Candidate keep-rates around the budget: ``m·r`` for every m in ``spread`` (capped at 1),
    r being the largest uniform keep-rate whose widths fit ``target_macs`` of the full MACs
    (:func:`~mggc_plugin.baselines.uniform_widths`). GAN Compression likewise sizes its search
    space to the target (its CycleGAN supernet spans 16–32 channels of a 64-channel teacher)."""
    if not spread or any(m <= 0 for m in spread):
        raise ValueError(f"spread={tuple(spread)}: give positive multiples of the uniform keep-rate, e.g. "
                         f"{DEFAULT_SPREAD}")
    rate = uniform_widths(groups, target_macs, round_to).rate
    return sorted({min(1.0, m * rate) for m in spread})


def shared_rates(groups: ChannelGroups, targets: Sequence[float], round_to: int = 1,
                 spread: Sequence[float] = DEFAULT_SPREAD) -> List[float]:
    """The candidate keep-rates of one supernet serving every budget in ``targets``: the union
    of :func:`rates_around` for each. GAN Compression trains its once-for-all supernet once and
    searches it for each computation budget; this space lets one supernet be searched at each."""
    if not targets:
        raise ValueError("targets=(): give at least one MACs budget")
    return sorted({r for t in targets for r in rates_around(groups, t, round_to, spread)})


def search_space(groups: ChannelGroups, rates: Sequence[float], round_to: int = 1) -> List[Widths]:
    """The candidate widths of every group: its width at each keep-rate in ``rates``
    (:func:`~mggc_plugin.baselines.widths_at_rate`: rounded to multiples of ``round_to``, at
    least ``round_to``, at most the group), without duplicates, ascending."""
    if not rates or any(not 0 < r <= 1 for r in rates):
        raise ValueError(f"rates={tuple(rates)}: give keep-rates in (0, 1]")
    per_rate = [widths_at_rate(groups.sizes, r, round_to) for r in rates]
    return [sorted({w[i] for w in per_rate}) for i in range(len(groups))]


def first_k(sizes: Sequence[int], widths: Sequence[int], device: Optional[torch.device] = None
            ) -> List[torch.Tensor]:
    """The masks keeping the first ``widths[i]`` channels of group i (bool, on ``device``)."""
    if len(widths) != len(sizes) or any(not 1 <= w <= n for w, n in zip(widths, sizes)):
        raise ValueError(f"widths {list(widths)}: give one width per group, between 1 and its size {list(sizes)}")
    return [torch.arange(n, device=device) < w for n, w in zip(sizes, widths)]


@dataclass(frozen=True)
class SupernetConfig:
    """Options of :func:`train_supernet`.

    gan_mode, conditional_D: the GAN's objective (:mod:`mggc_plugin.losses`); D reads ``cat(x, y)``
    when conditional (pix2pix). lambda_gan: weight of G's GAN term; 0 trains without any
    discriminator (a distillation-only supernet, as AutoGAN-Distiller's proxy task).
    lambda_recon, lambda_distill: the reference's pix2pix defaults 100 and 1 (its CycleGAN
    scripts use 10 and 0.01). lr, beta1: Adam(2e-4, β1 0.5) for G, the adapters and D, decayed
    by upstream's ``linear`` policy over the steps. seed: the width sampler's generator.
    """

    gan_mode: str = "hinge"
    conditional_D: bool = True
    lambda_gan: float = 1.0
    lambda_recon: float = 100.0
    lambda_distill: float = 1.0
    lr: float = 2e-4
    beta1: float = 0.5
    seed: int = 0

    def __post_init__(self):
        if self.gan_mode not in GAN_MODES:
            raise ValueError(f"unknown gan_mode {self.gan_mode!r}: choose one of {', '.join(GAN_MODES)}")
        if min(self.lambda_gan, self.lambda_recon, self.lambda_distill) < 0 or self.lr <= 0:
            raise ValueError(f"lambda_gan={self.lambda_gan}, lambda_recon={self.lambda_recon}, lambda_distill="
                             f"{self.lambda_distill}, lr={self.lr}: weights must be non-negative and lr positive")


@dataclass
class Supernet:
    """What :func:`train_supernet` returns. ``G``: the trained supernet (the teacher's
    architecture); ``groups``: its channel groups (gates hook ``G``); ``space``: the candidate
    widths per group; ``D``: its discriminator (None without a GAN term); ``adapters``: the 1×1
    distillation maps, keyed by root layer (dots as underscores), not part of any generator;
    ``history``: per-step losses and the sampled MACs fraction; ``steps``, ``seconds``: its cost."""

    G: nn.Module
    groups: ChannelGroups
    space: List[Widths]
    D: Optional[nn.Module]
    adapters: nn.ModuleDict
    history: List[Dict[str, float]] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0


def _identity_adapter(channels: int, device: torch.device) -> nn.Conv2d:
    conv = nn.Conv2d(channels, channels, kernel_size=1).to(device)
    with torch.no_grad():
        conv.weight.copy_(torch.eye(channels, device=device).view(channels, channels, 1, 1))
        if conv.bias is not None:
            conv.bias.zero_()
    return conv


class SupernetTrainer:
    """Once-for-all training (module docstring, step 1) one step at a time, for callers that own
    the loop (upstream's ``train.py``): :func:`train_supernet` is this class driven for a number
    of steps under a linear learning-rate decay; a caller without that loop schedules
    :attr:`optimizers` itself.

    ``G_T``: the teacher, copied as the supernet ``supernet.G``; ``groups``: its channel groups
    (rediscovered on the copy); ``space``: candidate widths per group (:func:`search_space`).
    ``D_T``: the teacher's D, copied as the supernet's D (unused, may be None, when
    ``config.lambda_gan`` is 0). ``G_T`` and ``D_T`` are never changed: the teacher's features
    come from a copy run as upstream's test mode (dropout off, BatchNorm normalising each batch
    by its own statistics), on ``G_T``'s device. Call :meth:`close` when done (it removes the
    feature hooks); :meth:`state_dict`/:meth:`load_state_dict` save and resume everything that
    training changes."""

    def __init__(self, G_T: nn.Module, D_T: Optional[nn.Module], groups: ChannelGroups, space: Sequence[Widths],
                 config: SupernetConfig = SupernetConfig()):
        if groups.model is not G_T:
            raise ValueError("groups were discovered on another module than G_T: pass ChannelGroups.discover(G_T, x)")
        if len(space) != len(groups) or any(not c or not all(1 <= w <= n for w in c)
                                            for c, n in zip(space, groups.sizes)):
            raise ValueError(f"space: give a non-empty list of candidate widths for each of the {len(groups)} "
                             f"groups, each between 1 and the group's size {groups.sizes} (see search_space)")
        if config.lambda_gan > 0 and D_T is None:
            raise ValueError("lambda_gan > 0 trains against a discriminator: pass the teacher's D_T, or set "
                             "lambda_gan=0")
        self.config = config
        self.device = device = next(G_T.parameters()).device
        G = copy.deepcopy(G_T).train().requires_grad_(True)
        sub_groups = ChannelGroups.discover(G, torch.zeros(groups.input_shape, device=device))
        if [g.root for g in sub_groups] != [g.root for g in groups] or sub_groups.sizes != groups.sizes:
            raise ValueError("the copy of G_T traced to other channel groups than `groups`: pass groups discovered "
                             "on G_T at the training input shape")
        self.teacher = inference_copy(G_T)
        D = None
        if config.lambda_gan > 0 and D_T is not None:
            D = copy.deepcopy(D_T).to(device).train().requires_grad_(True)
        self.roots = [g.root for g in groups]
        # A root layer produces all of its group's channels (groups reaching the output are not prunable).
        adapters = nn.ModuleDict({g.root.replace(".", "_"): _identity_adapter(g.size, device) for g in groups})
        self._taps_S = FeatureTaps(G, self.roots) if config.lambda_distill > 0 else None
        self._taps_T = FeatureTaps(self.teacher, self.roots) if config.lambda_distill > 0 else None
        betas = (config.beta1, 0.999)
        self.opt_G = torch.optim.Adam(list(G.parameters()) + list(adapters.parameters()), lr=config.lr, betas=betas)
        self.opt_D = torch.optim.Adam(D.parameters(), lr=config.lr, betas=betas) if D is not None else None
        #: The width sampler, seeded by ``config.seed``.
        self.rng = torch.Generator().manual_seed(config.seed)
        self.supernet = Supernet(G, sub_groups, [sorted(c) for c in space], D, adapters)
        #: Steps taken so far (restored by :meth:`load_state_dict`).
        self.step_count = 0

    @property
    def optimizers(self) -> List[torch.optim.Optimizer]:
        """Adam on G and the adapters, then Adam on D when there is one."""
        optimizers: List[torch.optim.Optimizer] = [self.opt_G]
        return optimizers + ([self.opt_D] if self.opt_D is not None else [])

    def _d_input(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, y], 1) if self.config.conditional_D else y

    def step(self, x: torch.Tensor, real: torch.Tensor, target: Optional[torch.Tensor] = None) -> Dict[str, float]:
        """One step on sources ``x``, D's real samples ``real`` and the L1 reconstruction
        ``target`` (None: the teacher's output G_T(x), CycleGAN's stand-in for missing pairs):
        sample one width per group, update D (when there is one), then G and the adapters.
        Returns the sampled MACs fraction ``macs``, ``D`` (with a discriminator), ``G_gan``,
        ``G_recon`` and ``G_distill``."""
        config, G, D, device = self.config, self.supernet.G, self.supernet.D, self.device
        groups = self.supernet.groups
        x, real = x.to(device), real.to(device)
        widths = sample_widths(self.supernet.space, self.rng)
        masks = first_k(groups.sizes, widths, device)
        with torch.no_grad():
            y_T = self.teacher(x)
        target = y_T if target is None else target.to(device)
        with groups.gated(masks):
            fake = G(x)
        logs = {"macs": float(groups.macs(masks)) / groups.full_macs}
        loss_gan = torch.zeros((), device=device)
        if D is not None and self.opt_D is not None:
            D.requires_grad_(True)
            self.opt_D.zero_grad(set_to_none=True)
            loss_D = f_D(D(self._d_input(x, real)), D(self._d_input(x, fake.detach())), config.gan_mode)
            loss_D.backward()
            self.opt_D.step()
            D.requires_grad_(False)  # G's GAN term builds no graph through D's weights
            loss_gan = f_G(D(self._d_input(x, fake)), config.gan_mode)
            D.requires_grad_(True)
            logs["D"] = loss_D.item()
        loss_recon = F.l1_loss(fake, target)
        loss_distill = torch.zeros((), device=device)
        if self._taps_S is not None and self._taps_T is not None:
            for root, mask in zip(self.roots, masks):
                feat = self._taps_S.features[root]
                feat = feat * mask.to(feat.dtype).view(1, -1, *([1] * (feat.dim() - 2)))
                loss_distill = loss_distill + F.mse_loss(self.supernet.adapters[root.replace(".", "_")](feat),
                                                         self._taps_T.features[root])
        self.opt_G.zero_grad(set_to_none=True)
        (config.lambda_gan * loss_gan + config.lambda_recon * loss_recon
         + config.lambda_distill * loss_distill).backward()
        self.opt_G.step()
        self.step_count += 1
        return {**logs, "G_gan": loss_gan.item(), "G_recon": loss_recon.item(), "G_distill": loss_distill.item()}

    def close(self) -> None:
        """Remove the feature hooks from the supernet and the teacher's copy."""
        for taps in (self._taps_S, self._taps_T):
            if taps is not None:
                taps.remove()

    def state_dict(self) -> Dict[str, object]:
        """Everything training changes: the supernet's G, D and adapters, the optimisers, the width
        sampler's state and the step count (tensors and plain values: ``weights_only`` loads it)."""
        s = self.supernet
        return {"step_count": self.step_count, "G": s.G.state_dict(), "adapters": s.adapters.state_dict(),
                "D": s.D.state_dict() if s.D is not None else None, "opt_G": self.opt_G.state_dict(),
                "opt_D": self.opt_D.state_dict() if self.opt_D is not None else None, "rng": self.rng.get_state()}

    def load_state_dict(self, state: Dict[str, object]) -> None:
        """Resume from :meth:`state_dict`'s result; ValueError when it was saved with or without a
        discriminator unlike this trainer."""
        s = self.supernet
        if (state["D"] is None) != (s.D is None):
            had, has = ("no", "one") if state["D"] is None else ("one", "none")
            raise ValueError(f"the saved supernet state was trained with {had} discriminator, this trainer has {has}: "
                             f"use the configuration (lambda_gan) it was saved with")
        s.G.load_state_dict(state["G"])  # type: ignore[arg-type]
        s.adapters.load_state_dict(state["adapters"])  # type: ignore[arg-type]
        self.opt_G.load_state_dict(state["opt_G"])  # type: ignore[arg-type]
        if s.D is not None and self.opt_D is not None:
            s.D.load_state_dict(state["D"])  # type: ignore[arg-type]
            self.opt_D.load_state_dict(state["opt_D"])  # type: ignore[arg-type]
        self.rng.set_state(state["rng"])  # type: ignore[arg-type]
        self.step_count = int(state["step_count"])  # type: ignore[call-overload]


def train_supernet(G_T: nn.Module, D_T: Optional[nn.Module], groups: ChannelGroups, space: Sequence[Widths],
                   batches: SupernetBatches, steps: int, config: SupernetConfig = SupernetConfig(),
                   progress: bool = True, checkpoint: Optional[Union[str, Path]] = None,
                   save_every: int = 200) -> Supernet:
    """Once-for-all training (module docstring, step 1) of a copy of the teacher ``G_T`` for
    ``steps`` steps of :class:`SupernetTrainer` (whose docstring says what the arguments are),
    the learning rates decayed by upstream's ``linear`` policy over the steps; ``batches(s)``
    gives step s's ``(x, real, target)``. Returns the supernet with its per-step ``history``;
    ``seconds`` is the training's wall time up to its last step, summed over resumed runs.

    With a ``checkpoint`` path, training saved there is resumed first (a finished one is returned
    without a step), and saved atomically every ``save_every`` steps and after the last: the
    trainer's state, the schedulers', the history, the seconds so far and torch's RNG states (G's
    dropout). A resumed run takes the steps an uninterrupted one takes, as
    :func:`~mggc_plugin.game.play` does for games. ValueError when the save was scheduled for
    another number of steps (its learning-rate decay would differ) or samples another space."""
    if steps < 0 or save_every < 1:
        raise ValueError(f"steps={steps}, save_every={save_every}: steps must be >= 0 and save_every >= 1")
    start = time.perf_counter()
    trainer = SupernetTrainer(G_T, D_T, groups, space, config)
    schedulers = [LambdaLR(opt, linear_lr(max(steps, 1))) for opt in trainer.optimizers]
    supernet = trainer.supernet
    spent = 0.0
    if checkpoint is not None and Path(checkpoint).is_file():
        saved = load_torch_file(checkpoint, "a supernet training state",
                                "delete it to train the supernet again from the teacher")
        if saved.get("steps") != steps:
            raise ValueError(f"the supernet saved at {checkpoint} was scheduled for {saved.get('steps')} steps, not "
                             f"{steps}: ask for {saved.get('steps')} steps or delete it to train again")
        if saved.get("space") != supernet.space:
            raise ValueError(f"the supernet saved at {checkpoint} samples widths from another search space "
                             f"({saved.get('space')}, not {supernet.space}): pass its space or delete it to train "
                             f"again")
        trainer.load_state_dict(saved["trainer"])
        for scheduler, state in zip(schedulers, saved["schedulers"]):
            scheduler.load_state_dict(state)
        supernet.history.extend(saved["history"])
        spent = float(saved["seconds"])
        restore_rng_states(saved["torch_rng"], saved["cuda_rng"], trainer.device)  # G's dropout draws

    def save(path: Union[str, Path], seconds: float) -> None:
        torch_rng, cuda_rng = rng_states(trainer.device)
        atomic_torch_save({"steps": steps, "space": supernet.space, "trainer": trainer.state_dict(),
                           "schedulers": [s.state_dict() for s in schedulers], "history": supernet.history,
                           "seconds": seconds, "torch_rng": torch_rng, "cuda_rng": cuda_rng}, path)

    seconds = spent  # at the last step taken: what a finished save records and what resuming it reports
    try:
        with tqdm(total=steps, initial=trainer.step_count, desc="supernet", leave=False, disable=not progress) as bar:
            while trainer.step_count < steps:
                x, real, target = batches(trainer.step_count)
                supernet.history.append(trainer.step(x, real, target))
                for scheduler in schedulers:
                    scheduler.step()
                bar.update()
                seconds = spent + time.perf_counter() - start
                if checkpoint is not None and (trainer.step_count % save_every == 0 or trainer.step_count == steps):
                    save(checkpoint, seconds)
    finally:
        trainer.close()
    supernet.steps = steps
    supernet.seconds = seconds
    return supernet


def sample_widths(space: Sequence[Sequence[int]], generator: torch.Generator) -> Widths:
    """One width per group, each drawn uniformly from the group's candidates."""
    return [int(c[int(torch.randint(len(c), (1,), generator=generator))]) for c in space]


class SubNetwork(nn.Module):
    """The sub-network of ``widths`` as a module without copying anything: the supernet run
    under its first-k gates, which computes exactly what :func:`extract` returns (gated ==
    slimmed). Train/eval mode is the supernet's own."""

    def __init__(self, supernet: Supernet, widths: Sequence[int]):
        super().__init__()
        self.G = supernet.G
        self.widths = list(widths)
        self._groups = supernet.groups
        self._masks = first_k(supernet.groups.sizes, widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with self._groups.gated([m.to(x.device) for m in self._masks]):
            return self.G(x)


@dataclass(frozen=True)
class Candidate:
    """One scored configuration of :func:`random_search`: its widths, MACs and score."""

    widths: Widths
    macs: float
    score: float


@dataclass
class SearchResult:
    """What :func:`random_search` returns: the best configuration (``widths``, ``macs`` — total
    MACs at the traced shape — and ``score``), every scored ``candidates`` in draw order, how many
    configurations were ``draws`` to find them, and the search's ``seconds``."""

    widths: Widths
    macs: float
    score: float
    candidates: List[Candidate]
    draws: int
    seconds: float


def random_search(supernet: Supernet, target_macs: float, score: Callable[[nn.Module], float], n: int = 200,
                  seed: int = 0, low: float = 0.9, max_draws: Optional[int] = None) -> SearchResult:
    """Random search (module docstring, step 2): draw width configurations uniformly from
    ``supernet.space``, keep distinct ones whose MACs lie in ``[low·p, p]`` with ``p =
    target_macs·full MACs`` until ``n`` are kept or ``max_draws`` (default ``100·n``) were
    drawn, score each with ``score(SubNetwork)`` (lower is better; called without gradients,
    the supernet in eval mode, restored afterwards) and return the best. ValueError when no
    configuration of the grid falls in the window: widen the space or lower ``low``."""
    if not 0 < target_macs <= 1 or not 0 <= low <= 1 or n < 1:
        raise ValueError(f"target_macs={target_macs}, low={low}, n={n}: need target_macs in (0, 1], low in [0, 1] "
                         f"and n >= 1")
    start = time.perf_counter()
    groups = supernet.groups
    budget = target_macs * groups.full_macs
    limit = max_draws if max_draws is not None else 100 * n
    rng = torch.Generator().manual_seed(seed)
    seen = set()
    found: List[Tuple[Widths, float]] = []
    draws = 0
    while len(found) < n and draws < limit:
        draws += 1
        widths = sample_widths(supernet.space, rng)
        if tuple(widths) in seen:
            continue
        seen.add(tuple(widths))
        macs = float(groups.macs(first_k(groups.sizes, widths)))
        if low * budget <= macs <= budget:
            found.append((widths, macs))
    if not found:
        raise ValueError(f"no configuration of the search space has MACs within [{low:g}, 1]×{target_macs:g} of the "
                         f"full MACs after {draws} draws: widen the space (rates_around's spread) or lower low")
    modes = {m: m.training for m in supernet.G.modules()}
    supernet.G.eval()
    try:
        with torch.no_grad():
            candidates = [Candidate(w, m, float(score(SubNetwork(supernet, w)))) for w, m in found]
    finally:
        for module, training in modes.items():
            module.training = training
    best = min(candidates, key=lambda c: c.score)
    return SearchResult(best.widths, best.macs, best.score, candidates, draws, time.perf_counter() - start)


def extract(supernet: Supernet, widths: Sequence[int]) -> nn.Module:
    """The sub-network of ``widths`` (first channels of every group) as a physically slimmed
    copy of the supernet (:func:`~mggc_plugin.slim.slim`), ready to finetune and to save with
    :func:`~mggc_plugin.slim.save_slim`; the supernet is unchanged."""
    return slim(supernet.G, supernet.groups, first_k(supernet.groups.sizes, widths))


def l1_to_teacher(x: torch.Tensor, y_teacher: torch.Tensor) -> Callable[[nn.Module], float]:
    """The search's score: mean L1 between a sub-network's outputs and the teacher's ``y_teacher``
    on ``x``, image by image, the sub-network run as upstream's test mode (a per-image-norm
    copy, dropout off): the score of ``--mggc_method gan_compression|agd`` inside upstream and the
    facades benchmark's default."""
    def score(G_sub: nn.Module) -> float:
        G = inference_copy(G_sub)
        device = next(G.parameters()).device
        with torch.no_grad():
            out = torch.cat([G(x[i:i + 1].to(device)).cpu() for i in range(len(x))])
        return float((out - y_teacher).abs().mean())
    return score
