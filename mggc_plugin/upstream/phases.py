"""What an MGGC model does in each phase: the pruning game, finetuning the slim pair, testing.

An upstream model (:mod:`mggc_plugin.upstream.models`) owns one phase and shows it to
upstream's ``train.py``/``test.py``: :attr:`Phase.nets` become its ``model_names`` (saved as
``<epoch>_net_<name>.pth`` and loaded by upstream), :attr:`Phase.optimizers` get upstream's
learning-rate schedulers, :attr:`Phase.loss_names` are logged and plotted. Nothing here imports
upstream; ``opt`` is upstream's option namespace with the options of :mod:`.options`.
"""
from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .. import baselines, distributed
from ..agd import AGDConfig, AGDTrainer
from ..agents import gumbel_sigmoid
from ..channels import ChannelGroups
from ..distributed import print_main
from ..errors import MGGCFileNotFoundError, MGGCUserError
from ..fileio import atomic_torch_save
from ..finetune import Finetuner
from ..gan_compression import SupernetTrainer, first_k, rates_around, search_space
from ..macs import frozen_eval
from ..networks import arch_of
from ..pruner import MGGCPruner, teacher_mode
from ..slim import load_slim, save_slim, slim, slim_info
from . import checks, options, summary, supernet
from .record import RunRecord
from .specs import GanSpec
from .teacher import Teacher, find_teacher, inference_spec, load_D, load_G


@dataclass
class Batch:
    """One batch in the direction of ``--direction``: source x, target y (paired ground truth,
    or an unpaired real target), for the prune phase y' and y'', and the sources' files (upstream's
    ``A_paths``/``B_paths``; empty when unknown)."""

    x: torch.Tensor
    y: torch.Tensor
    y_center: Optional[torch.Tensor] = None
    y_neighbor: Optional[torch.Tensor] = None
    paths: Sequence[str] = ()


def load_suffix(opt: argparse.Namespace) -> str:
    """The checkpoint prefix upstream loads: ``iter_<load_iter>`` or ``--epoch``."""
    return f"iter_{opt.load_iter}" if opt.load_iter > 0 else opt.epoch


def example_input(opt: argparse.Namespace) -> torch.Tensor:
    """A zero source batch of the training shape, which channel groups and MACs are traced at."""
    return torch.zeros(1, opt.input_nc, opt.crop_size, opt.crop_size)


def pair_groups(G: nn.Module, D: nn.Module, x: torch.Tensor, conditional_D: bool
                ) -> Tuple[ChannelGroups, ChannelGroups]:
    """The channel groups of G at source ``x`` and of D at what it reads: ``G(x)``, after ``x``
    when D is conditional (the groups :class:`MGGCPruner` discovers)."""
    with frozen_eval(G):
        y = G(x)
    return ChannelGroups.discover(G, x), ChannelGroups.discover(D, torch.cat([x, y], 1) if conditional_D else y)


MASKS_FORMAT = "mggc-upstream-masks"
MASKS_VERSION = 1


def masks_file(run_dir: Path, epoch: str) -> Path:
    """``<epoch>_mggc_masks.pt``: the kept channels a baseline's prune phase chose."""
    return run_dir / f"{epoch}_mggc_masks.pt"


def save_masks(path: Path, method: str, round_to: int, groups_G: ChannelGroups, groups_D: ChannelGroups,
               v_G: Sequence[torch.Tensor], v_D: Sequence[torch.Tensor]) -> Path:
    """Write the masks (one bool vector per group of G and of D) atomically, with the method,
    the width rounding and the group sizes they belong to."""
    state = {"format": MASKS_FORMAT, "version": MASKS_VERSION, "method": method, "round_to": round_to,
             "groups_G": list(groups_G.sizes), "groups_D": list(groups_D.sizes),
             "v_G": [v.bool().cpu() for v in v_G], "v_D": [v.bool().cpu() for v in v_D]}
    return atomic_torch_save(state, path)


def load_masks(path: Path, groups_G: ChannelGroups, groups_D: ChannelGroups) -> Dict[str, Any]:
    """Read :func:`save_masks`' file (``weights_only``), checked against the groups of the
    teacher pair it must slim."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != MASKS_FORMAT or state.get("version") != MASKS_VERSION:
        raise MGGCUserError(f"{path} is not a masks file this mggc-plugin reads; run the prune phase again")
    if state["groups_G"] != groups_G.sizes or state["groups_D"] != groups_D.sizes:
        raise MGGCUserError(f"{path} holds masks for channel groups G {state['groups_G']}, D {state['groups_D']}; the "
                            f"teacher pair has G {groups_G.sizes}, D {groups_D.sizes}: run the prune phase again")
    return state


def load_game(pruner: MGGCPruner, path: Path) -> None:
    """:meth:`MGGCPruner.load`, whose refusals of a state saved with other options or networks
    become the user's errors, naming the file."""
    try:
        pruner.load(path)
    except ValueError as err:
        raise MGGCUserError(f"{path}: {err} (or run the prune phase again, with --mggc_restart)") from None


def restart(opt: argparse.Namespace, run_dir: Path) -> None:
    """``--mggc_restart``: before a prune phase writes its record, move the products of the earlier
    run it makes stale aside (:func:`.checks.move_aside`); without the flag, option parsing has
    refused such a run already (:func:`.options.check_earlier_run`)."""
    if opt.mggc_restart and distributed.is_main():  # under torchrun rank 0 moves, as it alone writes
        moved = checks.move_aside(run_dir, opt.continue_train)
        if moved:
            print_main(f"MGGC prune: --mggc_restart: moved {len(moved)} files of the earlier run into "
                       f"{moved[0].parent}")


class Phase:
    """The contract a phase fulfils for the upstream model.

    nets: ``model_names`` → module; upstream saves and (when testing or continuing) loads them.
    optimizers: handed to upstream's schedulers (empty: no learning-rate schedule).
    loss_names: keys of :meth:`step`'s result. visual_names: extra visuals beyond ``real_A``,
    ``fake_B``, ``real_B``, produced by :meth:`visuals` or set from the batch by the model.
    """

    nets: Dict[str, nn.Module]
    optimizers: List[torch.optim.Optimizer]
    loss_names: List[str]
    visual_names: List[str]

    def step(self, batch: Batch) -> Dict[str, float]:
        """One training iteration; returns the losses named in :attr:`loss_names`."""
        raise NotImplementedError

    def visuals(self, batch: Batch) -> Dict[str, torch.Tensor]:
        """``fake_B`` (and the phase's own extra visuals) for ``batch``, without training."""
        raise NotImplementedError

    def save(self, run_dir: Path, epoch: str) -> None:
        """Write what the phase needs beyond upstream's ``<epoch>_net_<name>.pth`` files."""

    def resume(self, run_dir: Path, epoch: str) -> None:
        """After upstream loaded :attr:`nets` for ``--continue_train``: restore the rest."""


class PrunePhase(Phase):
    """Trains the agents gen_G/gen_D on the frozen teacher (Eq. 2). ``nets`` are the agents
    (``<epoch>_net_gen_G.pth``); ``<epoch>_mggc_pruner.pt`` holds the whole game state (agents,
    optimisers, embeddings, step count, RNG) so ``--continue_train`` resumes exactly.
    ``mggc_run.json`` records the teacher and the configuration for the finetune phase. The agents
    learn at the constant ``--mggc_agent_lr``, as the authors' pruning hypernetwork does."""

    loss_names = ["G", "D", "R", "L", "kept_macs"]
    visual_names = ["teacher_B", "neighbor_B"]

    def __init__(self, opt: argparse.Namespace, spec: GanSpec, run_dir: Path, device: torch.device):
        teacher = find_teacher(opt.checkpoints_dir, opt.teacher_name, opt.teacher_epoch, spec.teacher, run_dir)
        teacher.check_options(opt)
        config = options.pruner_config(opt, spec)
        if opt.continue_train:
            RunRecord.read(run_dir).check(opt, teacher)
        G, D = load_G(teacher, opt).to(device), load_D(teacher, opt).to(device)
        x = example_input(opt).to(device)
        groups_G = ChannelGroups.discover(G, x)
        table = None
        if config.target_latency_ms is not None:
            table = checks.latency_table(opt.mggc_latency_table, groups_G, config.target_latency_ms)
        self.pruner = MGGCPruner(G, D, x, config, groups_G=groups_G, latency=table)
        restart(opt, run_dir)
        RunRecord.of_prune_run(opt, teacher, config).write(run_dir)
        if table is not None and distributed.is_main():
            table.save(run_dir / options.LATENCY_TABLE)
        p = self.pruner
        if table is not None:
            target = (f"{config.target_latency_ms:g} ms on {table.runtime} ({table.threads} thread(s)), of the "
                      f"{table.full_ms:.1f} ms measured for the teacher (p = {p.p:.4f} of the removable latency)")
        else:
            assert config.target_macs is not None, "options.pruner_config sets target_macs without a latency budget"
            target = (f"{config.target_macs:.2%} = {config.target_macs * p.groups_G.full_macs / 1e9:.4f} G MACs "
                      f"(p = {p.p:.4f} of the prunable MACs)")
        print_main(f"MGGC prune: teacher {teacher.G_path} ({opt.netG}, ngf {opt.ngf}): "
                   f"{p.groups_G.full_macs / 1e9:.4f} G MACs at {opt.crop_size}x{opt.crop_size}, {len(p.groups_G)} "
                   f"channel groups; target {target}; D {teacher.D_path}: {len(p.groups_D)} groups")
        self.nets = {"gen_G": p.gen_G, **({"gen_D": p.gen_D} if p.gen_D is not None else {})}
        self.optimizers = []

    def step(self, batch: Batch) -> Dict[str, float]:
        if batch.y_center is None:
            raise MGGCUserError("the prune phase got a batch without the teacher's outputs (y_center): train it on "
                                "--dataset_mode neighborhood")
        logs = self.pruner.step(batch.x, batch.y_center, batch.y_neighbor)
        return {"G": logs["loss_G"], "D": logs["loss_D"], "R": logs["R"], "L": logs["L"],
                "kept_macs": logs["kept_macs_G_total"]}

    @torch.no_grad()
    def visuals(self, batch: Batch) -> Dict[str, torch.Tensor]:
        """G(x) under the agent's current deterministic architecture (no Gumbel noise)."""
        p = self.pruner
        o_G, _ = p.gen_G(p.h_D)
        v_G = gumbel_sigmoid(o_G, p.config.tau, deterministic=True)
        with teacher_mode(p.G), p.groups_G.gated(v_G):
            return {"fake_B": p.G(batch.x)}

    def save(self, run_dir: Path, epoch: str) -> None:
        self.pruner.save(run_dir / f"{epoch}_mggc_pruner.pt")

    def resume(self, run_dir: Path, epoch: str) -> None:
        path = run_dir / f"{epoch}_mggc_pruner.pt"
        if not path.is_file():
            raise MGGCFileNotFoundError(f"--continue_train: {path} does not exist; pass --epoch with a saved epoch")
        load_game(self.pruner, path)
        print_main(f"MGGC prune: resumed the pruning game at step {self.pruner.step_count} from {path}")


class BaselinePrunePhase(Phase):
    """``--mggc_method l1_norm|uniform``: no game, no neighbourhoods, no training. When built, it
    prunes the teacher's G to ``--mggc_target_macs`` with :func:`baselines.masks_to_budget
    <mggc_plugin.baselines.masks_to_budget>` (widths multiples of ``--mggc_round_to``), keeps D
    whole, and writes the masks as ``latest_mggc_masks.pt`` (again as ``<epoch>_mggc_masks.pt`` at
    upstream's saves) with ``mggc_run.json``; the finetune phase slims by them. Upstream's loop
    has nothing to do: it is cut to one epoch (``opt.n_epochs`` = ``--epoch_count``, no decay),
    whose steps log the slim G's kept MACs and whose visuals are the slim G's outputs."""

    loss_names = ["kept_macs"]
    visual_names: List[str] = []

    def __init__(self, opt: argparse.Namespace, spec: GanSpec, run_dir: Path, device: torch.device):
        teacher = find_teacher(opt.checkpoints_dir, opt.teacher_name, opt.teacher_epoch, spec.teacher, run_dir)
        teacher.check_options(opt)
        self.method, self.round_to = opt.mggc_method, opt.mggc_round_to
        self.G = load_G(teacher, opt).to(device)
        self.groups_G, self.groups_D = pair_groups(self.G, load_D(teacher, opt).to(device),
                                                   example_input(opt).to(device), spec.teacher.conditional_D)
        checks.check_budget(opt.mggc_target_macs, self.groups_G, self.round_to, opt)
        self.v_G = baselines.masks_to_budget(self.groups_G, opt.mggc_target_macs, self.method, self.round_to)
        self.v_D = [torch.ones(n, dtype=torch.bool) for n in self.groups_D.sizes]
        self.kept_macs = float(self.groups_G.macs(self.v_G)) / self.groups_G.full_macs
        restart(opt, run_dir)
        RunRecord.of_prune_run(opt, teacher, options.pruner_config(opt, spec)).write(run_dir)
        path = self._write_masks(run_dir, "latest")
        opt.n_epochs, opt.n_epochs_decay = opt.epoch_count, 0
        print_main(f"MGGC prune ({self.method}): teacher {teacher.G_path} ({opt.netG}, ngf {opt.ngf}): G keeps "
                   f"{self.kept_macs:.2%} of its {self.groups_G.full_macs / 1e9:.4f} G MACs (target "
                   f"{opt.mggc_target_macs:.2%}), widths {[int(v.sum()) for v in self.v_G]}; D kept whole. Masks in "
                   f"{path}. Nothing to train: upstream's loop is cut to one epoch")
        self.nets = {}
        self.optimizers = []

    def step(self, batch: Batch) -> Dict[str, float]:
        return {"kept_macs": self.kept_macs}

    @torch.no_grad()
    def visuals(self, batch: Batch) -> Dict[str, torch.Tensor]:
        """The pruned G(x) before finetuning (the gated teacher computes what the slim G does)."""
        with teacher_mode(self.G), self.groups_G.gated(self.v_G):
            return {"fake_B": self.G(batch.x)}

    def _write_masks(self, run_dir: Path, epoch: str) -> Path:
        return save_masks(masks_file(run_dir, epoch), self.method, self.round_to, self.groups_G, self.groups_D,
                          self.v_G, self.v_D)

    def save(self, run_dir: Path, epoch: str) -> None:
        self._write_masks(run_dir, epoch)


class SupernetPrunePhase(Phase):
    """``--mggc_method gan_compression|agd`` (:mod:`.supernet`): trains a once-for-all supernet of
    the teacher's G, one :class:`SupernetTrainer` step per iteration of upstream's loop on its own
    batches (pix2pix: D's real samples and the L1 target are the ground truth; CycleGAN: D's real
    samples are the unpaired targets, the L1 target the teacher's output), skipping the held-out
    sources the finetune phase's search scores on. ``nets``: ``supernet_G`` (and ``supernet_D``
    for ``gan_compression``); ``optimizers``: theirs, scheduled by upstream's ``--lr_policy`` over
    this phase's epochs. ``<epoch>_mggc_supernet.pt`` holds the whole training state (atomic) and
    ``--continue_train`` resumes it; ``mggc_run.json`` records the teacher for the finetune phase,
    which searches the widths and extracts the student. Losses: the sampled sub-network's
    ``sampled_macs`` and the terms of the objective (``D`` and ``G_gan`` only with a D); visuals:
    the sub-network of uniform widths at the budget."""

    visual_names: List[str] = []

    def __init__(self, opt: argparse.Namespace, spec: GanSpec, run_dir: Path, device: torch.device):
        teacher = find_teacher(opt.checkpoints_dir, opt.teacher_name, opt.teacher_epoch, spec.teacher, run_dir)
        teacher.check_options(opt)
        if opt.continue_train:
            RunRecord.read(run_dir).check(opt, teacher)
        self.method, self.round_to, self.target = opt.mggc_method, opt.mggc_round_to, opt.mggc_target_macs
        G_T = load_G(teacher, opt).to(device)
        groups = ChannelGroups.discover(G_T, example_input(opt).to(device))
        checks.check_budget(self.target, groups, self.round_to, opt)
        space = search_space(groups, rates_around(groups, self.target, self.round_to), self.round_to)
        config = supernet.supernet_config(opt, spec)
        D_T = load_D(teacher, opt).to(device) if config.lambda_gan > 0 else None
        self.trainer = SupernetTrainer(G_T, D_T, groups, space, config)
        supernet.check_searchable(self.trainer, self.target, self.round_to)
        sources = supernet.training_sources(opt)
        train, self.held_out = supernet.split_held_out(sources)
        self._skip = supernet.held_out_keys(train, self.held_out)
        self._recon_is_teacher = spec.l1_target == "teacher"
        # A continued run is refused before it rewrites the run record, not when upstream's setup resumes it.
        self._saved = self._saved_state(run_dir, load_suffix(opt)) if opt.continue_train else None
        restart(opt, run_dir)
        RunRecord.of_prune_run(opt, teacher, options.pruner_config(opt, spec)).write(run_dir)
        net = self.trainer.supernet
        self._view = first_k(groups.sizes, baselines.uniform_widths(groups, self.target, self.round_to).widths, device)
        against = "against a copy of the teacher's D" if D_T is not None else "without a discriminator"
        print_main(f"MGGC prune ({self.method}): teacher {teacher.G_path} ({opt.netG}, ngf {opt.ngf}): "
                   f"{groups.full_macs / 1e9:.4f} G MACs at {opt.crop_size}x{opt.crop_size}, {len(groups)} channel "
                   f"groups; a supernet of widths from {[c[0] for c in net.space]} to {[c[-1] for c in net.space]} "
                   f"around the target {self.target:.2%}, trained {against}; {len(self._skip)} of {len(sources)} "
                   f"training images held out for the finetune phase's search")
        self.nets = {"supernet_G": net.G, **({"supernet_D": net.D} if net.D is not None else {})}
        self.optimizers = self.trainer.optimizers
        self.loss_names = ["sampled_macs"] + (["D", "G_gan"] if net.D is not None else []) + ["G_recon", "G_distill"]
        self._last = {name: 0.0 for name in self.loss_names}

    def step(self, batch: Batch) -> Dict[str, float]:
        """One supernet step on the batch's training sources; a batch of held-out sources only
        trains nothing and repeats the last losses."""
        keep = [i for i, p in enumerate(batch.paths) if supernet.path_key(p) not in self._skip] \
            if batch.paths else list(range(len(batch.x)))
        if not keep:
            return dict(self._last)
        index = torch.tensor(keep, device=batch.x.device)
        x, y = batch.x.index_select(0, index), batch.y.index_select(0, index)
        logs = self.trainer.step(x, y, None if self._recon_is_teacher else y)
        self._last = {name: logs["macs" if name == "sampled_macs" else name] for name in self.loss_names}
        return dict(self._last)

    @torch.no_grad()
    def visuals(self, batch: Batch) -> Dict[str, torch.Tensor]:
        """The sub-network of uniform widths at the budget, as in training (BatchNorm statistics
        left untouched)."""
        net = self.trainer.supernet
        with teacher_mode(net.G), net.groups.gated(self._view):
            return {"fake_B": net.G(batch.x)}

    def save(self, run_dir: Path, epoch: str) -> None:
        payload = supernet.state_payload(self.method, self.target, self.round_to, self.trainer, self.held_out)
        supernet.save_state(supernet.state_file(run_dir, epoch), payload)

    def _saved_state(self, run_dir: Path, epoch: str) -> Dict[str, Any]:
        """The saved supernet state of ``epoch``, refused when trained with other options."""
        path = supernet.state_file(run_dir, epoch)
        state = supernet.read_state(path, self.method)
        now = {"target_macs": self.target, "round_to": self.round_to, "config": asdict(self.trainer.config),
               "space": self.trainer.supernet.space}
        changed = [k for k, v in now.items() if state[k] != v]
        if changed:
            raise MGGCUserError(f"{path} was trained with other {', '.join(changed)} than this run's options "
                                f"(--mggc_target_macs, --mggc_round_to, --lr, --beta1, --gan_mode, --lambda_L1, "
                                f"--mggc_seed): pass those of the saved run, or prune again with --mggc_restart")
        return state

    def resume(self, run_dir: Path, epoch: str) -> None:
        state = self._saved if self._saved is not None else self._saved_state(run_dir, epoch)
        self.trainer.load_state_dict(state["trainer"])
        self._saved = None
        print_main(f"MGGC prune ({self.method}): resumed the supernet at step {self.trainer.step_count} from "
                   f"{supernet.state_file(run_dir, epoch)}")


class FinetunePhase(Phase):
    """Slims the teacher's G and D by the agents' final architecture (``--mggc_prune_epoch``,
    rounded to ``--mggc_round_to``), or, after a baseline's prune phase (``--mggc_method``), by
    its masks ``<mggc_prune_epoch>_mggc_masks.pt``, or, after a supernet method's, extracts the
    sub-network the width search picks from ``<mggc_prune_epoch>_mggc_supernet.pt``
    (:func:`.supernet.search_student`; D: the supernet's), and trains the slim pair with
    :class:`Finetuner`: the GAN's own objective, ``--lambda_L1``·L1 to :attr:`GanSpec.l1_target`, and with ``--mggc_kd``
    feature distillation through 1×1 adapters (``nets['KD']``). After ``--mggc_method agd`` there
    is no D: G alone trains with :class:`~mggc_plugin.agd.AGDTrainer` (L1 to the teacher's output,
    ``--mggc_lambda_perceptual``·the FID Inception perceptual term, ``--mggc_lambda_tv``·total
    variation). Saves, besides upstream's ``<epoch>_net_G.pth``/``_net_D.pth``, the
    self-describing ``<epoch>_slim_G.pt`` and ``<epoch>_slim_D.pt`` and the optimiser states
    ``<epoch>_mggc_finetune.pt``; writes ``mggc_report.json`` when it slims. ``game``: the pruning
    game of this very run (``--mggc_phase all``), slimmed by in memory instead of from a file."""

    def __init__(self, opt: argparse.Namespace, spec: GanSpec, run_dir: Path, device: torch.device,
                 game: Optional[MGGCPruner] = None):
        record = RunRecord.read(run_dir)
        if opt.teacher_name and opt.teacher_name != record.teacher_name:
            raise MGGCUserError(f"--teacher_name {opt.teacher_name}: the prune phase of {opt.name} compressed "
                                f"{record.teacher_name}; leave --teacher_name out or prune again")
        teacher = find_teacher(opt.checkpoints_dir, record.teacher_name, record.teacher["epoch"], spec.teacher, run_dir)
        teacher.check_options(opt)
        record.check(opt, teacher)
        self.spec, self.kd = spec, opt.mggc_kd
        #: Whether G trains without a discriminator (AGD's objective).
        self.distill_only = game is None and record.method in options.DISCRIMINATOR_FREE
        if self.distill_only and self.kd:
            raise MGGCUserError(f"--mggc_kd: the prune phase of {opt.name} ran --mggc_method {record.method}, whose "
                                f"finetuning is distillation to the teacher's output already; leave --mggc_kd out")
        #: The slim G's fraction of the teacher G's MACs, when this phase slimmed it.
        self.kept_macs: Optional[float] = None
        if opt.continue_train and game is None:
            G, D = self._reload(opt, run_dir)
        else:
            G, D = self._slim(opt, record, teacher, run_dir, game, device)
        G = G.to(device).train()
        self.teacher_B: Optional[torch.Tensor] = None
        if D is None:
            config = AGDConfig(lambda_perceptual=opt.mggc_lambda_perceptual, lambda_tv=opt.mggc_lambda_tv, lr=opt.lr,
                               beta1=opt.beta1)
            self.distiller = AGDTrainer(G, load_G(teacher, opt).to(device), config)
            self.nets = {"G": G}
            self.optimizers = [self.distiller.opt_G]
            self.loss_names = ["G_content", "G_perceptual", "G_tv"]
            self.visual_names = ["teacher_B"]
            return
        D = D.to(device).train()
        needs_teacher = self.kd or spec.l1_target == "teacher"
        self.teacher = inference_spec(teacher, opt, record.norm_stats).load().to(device) if needs_teacher else None
        self.finetuner = Finetuner(G, D, options.finetune_config(opt, spec), teacher=self.teacher,
                                   kd_layers=slim_info(G)["groups"])
        self.nets = {"G": G, "D": D, **({"KD": self.finetuner.adapters} if self.kd else {})}
        self.optimizers = [self.finetuner.opt_G, self.finetuner.opt_D]
        self.loss_names = self.losses(self.kd)
        self.visual_names = ["teacher_B"] if spec.l1_target == "teacher" else []

    @staticmethod
    def losses(kd: bool) -> List[str]:
        """The loss names of the phase, with or without ``--mggc_kd``."""
        return ["G_GAN", "G_L1", "D"] + (["G_KD"] if kd else [])

    def _slim(self, opt: argparse.Namespace, record: RunRecord, teacher: Teacher, run_dir: Path,
              game: Optional[MGGCPruner], device: torch.device) -> Tuple[nn.Module, Optional[nn.Module]]:
        G_T, D_T = load_G(teacher, opt), load_D(teacher, opt)
        if game is None and record.method in options.SUPERNET_METHODS:
            _one_process(f"the finetune phase of --mggc_method {record.method}")
            _, groups_D = pair_groups(G_T, D_T, example_input(opt), self.spec.teacher.conditional_D)
            path = supernet.state_file(run_dir, opt.mggc_prune_epoch)
            with torch.random.fork_rng(devices=[]):  # the search draws nothing from training's stream
                G, D, groups_G, origin, how = supernet.search_student(
                    path, record.method, G_T, D_T, groups_D, example_input(opt), opt.mggc_search_candidates,
                    opt.mggc_seed, device)
        else:
            if game is not None:
                parts = self._final(opt, record, game, "this run's pruning game")
            else:
                by = self._by_game if record.method == "mggc" else self._by_masks
                parts = by(opt, record, G_T, D_T, run_dir)
            groups_G, groups_D, v_G, v_D, origin, how = parts
            G, D = slim(G_T, groups_G, v_G), slim(D_T, groups_D, v_D)
        self.kept_macs = self._report(opt, record, groups_G, groups_D, origin, how, G_T, D_T, G, D, run_dir)
        return G, D

    @staticmethod
    def _by_game(opt: argparse.Namespace, record: RunRecord, G_T: nn.Module, D_T: nn.Module, run_dir: Path):
        """The agents' final architecture from the saved game, and what the report says of it."""
        pruner_file = run_dir / f"{opt.mggc_prune_epoch}_mggc_pruner.pt"
        if not pruner_file.is_file():
            raise MGGCFileNotFoundError(f"{pruner_file} does not exist: the prune phase saves it (at "
                                        f"--save_epoch_freq epochs and every --save_latest_freq iterations); pass "
                                        f"--mggc_prune_epoch with a saved epoch")
        config, x = record.config(), example_input(opt)
        groups_G = ChannelGroups.discover(G_T, x)
        table = None
        if config.target_latency_ms is not None:
            table = checks.latency_table(run_dir / options.LATENCY_TABLE, groups_G, config.target_latency_ms)
        pruner = MGGCPruner(G_T, D_T, x, config, groups_G=groups_G, latency=table)
        load_game(pruner, pruner_file)
        return FinetunePhase._final(opt, record, pruner, str(pruner_file))

    @staticmethod
    def _final(opt: argparse.Namespace, record: RunRecord, pruner: MGGCPruner, source: str):
        """The agents' final architecture (rounded to ``--mggc_round_to``), and what the report
        says of it; ``source``: the saved state or this run's game."""
        if pruner.latency is None:
            checks.check_round_to(record.pruner["target_macs"], pruner.groups_G, opt.mggc_round_to)
        try:
            arch = pruner.finalize(round_to=opt.mggc_round_to)
        except ValueError as err:  # a latency budget the rounded widths cannot meet
            raise MGGCUserError(f"--mggc_round_to {opt.mggc_round_to}: {err}") from None
        masks_G, masks_D = [v.cpu() for v in arch.v_G], [v.cpu() for v in arch.v_D]
        origin = {"pruner_state": source, "pruning_steps": pruner.step_count, "round_to": opt.mggc_round_to}
        if arch.latency_ms_G is not None:
            origin.update(target_latency_ms=record.pruner["target_latency_ms"], latency_ms_G=arch.latency_ms_G)
        how = f"{source} (after {pruner.step_count} pruning steps)"
        if opt.mggc_widths == "fastest":
            masks_G, fastest = FinetunePhase._fastest(opt, record, pruner, arch.logits_G)
            origin.update(fastest)
            how += f", at the widths --mggc_latency_table estimates fastest (floor {opt.mggc_width_floor:g})"
        return pruner.groups_G, pruner.groups_D, masks_G, masks_D, origin, how

    @staticmethod
    def _fastest(opt: argparse.Namespace, record: RunRecord, pruner: MGGCPruner,
                 logits_G: Sequence[torch.Tensor]) -> Tuple[List[torch.Tensor], Dict[str, Any]]:
        """``--mggc_widths fastest``: G's masks at :func:`~mggc_plugin.baselines.fastest_widths` for
        the game's MAC budget on ``--mggc_latency_table``, each group keeping its channels of
        highest keep-logit, and what the report says of them."""
        if pruner.latency is not None:
            raise MGGCUserError("--mggc_widths fastest: this game was budgeted in milliseconds "
                                "(--mggc_target_latency_ms); its own widths already spend the latency")
        table = checks.latency_table(opt.mggc_latency_table, pruner.groups_G)
        try:
            widths = baselines.fastest_widths(pruner.groups_G, table, record.pruner["target_macs"],
                                              opt.mggc_round_to, opt.mggc_width_floor)
        except ValueError as err:
            raise MGGCUserError(f"--mggc_widths fastest --mggc_round_to {opt.mggc_round_to}: {err}") from None
        masks = baselines.top_channels([t.cpu() for t in logits_G], widths)
        return masks, {"widths_by": "fastest", "width_floor": opt.mggc_width_floor,
                       "latency_table": str(opt.mggc_latency_table),
                       "fastest_latency_ms_G": float(table(pruner.groups_G, masks)),
                       "teacher_latency_ms_G": table.full_ms}

    def _by_masks(self, opt: argparse.Namespace, record: RunRecord, G_T: nn.Module, D_T: nn.Module, run_dir: Path):
        """The masks a baseline's prune phase wrote, and what the report says of them."""
        path = masks_file(run_dir, opt.mggc_prune_epoch)
        if not path.is_file():
            raise MGGCFileNotFoundError(f"{path} does not exist: the prune phase of --mggc_method {record.method} "
                                        f"writes latest_mggc_masks.pt; pass --mggc_prune_epoch with a saved epoch")
        groups_G, groups_D = pair_groups(G_T, D_T, example_input(opt), self.spec.teacher.conditional_D)
        masks = load_masks(path, groups_G, groups_D)
        origin = {"masks": str(path), "round_to": masks["round_to"]}
        return groups_G, groups_D, masks["v_G"], masks["v_D"], origin, f"{path} ({record.method})"

    @staticmethod
    def _report(opt: argparse.Namespace, record: RunRecord, groups_G: ChannelGroups, groups_D: ChannelGroups,
                origin: Dict[str, Any], how: str, G_T: nn.Module, D_T: nn.Module, G: nn.Module, D: Optional[nn.Module],
                run_dir: Path) -> float:
        # Writes mggc_report.json and prints its summary; returns the slim G's fraction of the MACs.
        # D None: the student trains without a discriminator, only the teacher's D is described.
        shape_G, shape_D = groups_G.input_shape, groups_D.input_shape
        nets = {"teacher": {"G": summary.describe(G_T, shape_G), "D": summary.describe(D_T, shape_D)},
                "slim": {"G": summary.describe(G, shape_G),
                          **({"D": summary.describe(D, shape_D)} if D is not None else {})}}
        path = summary.write_report(run_dir, {
            "model": opt.model, "method": record.method, "teacher_files": record.teacher,
            "target_macs": record.pruner["target_macs"], **origin,
            "input_shape_G": list(shape_G), "input_shape_D": list(shape_D), **nets,
            "widths_G": summary.widths(groups_G, G),
            "widths_D": summary.widths(groups_D, D) if D is not None else None})
        print_main(f"MGGC finetune: slimmed by {how}, at {opt.crop_size}x{opt.crop_size}:")
        for net in ("G", "D") if D is not None else ("G",):
            print_main("  " + summary.ratio_line(net, nets["teacher"][net], nets["slim"][net]))
        if D is None:
            print_main(f"  D: none, --mggc_method {record.method} trains G without a discriminator")
        if "latency_ms_G" in origin:
            print_main(f"  target {origin['target_latency_ms']:g} ms; the latency table estimates the slim G at "
                       f"{origin['latency_ms_G']:.2f} ms; widths and totals in {path}")
        else:
            print_main(f"  target {record.pruner['target_macs']:.2%} of G's MACs; widths and totals in {path}")
        if "fastest_latency_ms_G" in origin:
            print_main(f"  --mggc_widths fastest: the latency table estimates the slim G at "
                       f"{origin['fastest_latency_ms_G']:.2f} ms, the teacher's at "
                       f"{origin['teacher_latency_ms_G']:.2f} ms")
        return nets["slim"]["G"]["macs"] / nets["teacher"]["G"]["macs"]

    def _reload(self, opt: argparse.Namespace, run_dir: Path) -> Tuple[nn.Module, Optional[nn.Module]]:
        suffix = load_suffix(opt)
        nets = ("G",) if self.distill_only else ("G", "D")
        paths = [run_dir / f"{suffix}_slim_{net}.pt" for net in nets]
        if self.kd:
            paths.append(run_dir / f"{suffix}_net_KD.pth")
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise MGGCFileNotFoundError(f"--continue_train: {', '.join(missing)} missing: continue a finetune run from "
                                        f"a saved --epoch (with --mggc_kd only if that run used it)")
        return load_slim(paths[0]), load_slim(paths[1]) if not self.distill_only else None

    def _target(self, batch: Batch) -> torch.Tensor:
        if self.spec.l1_target == "ground_truth":
            return batch.y
        assert self.teacher is not None, "__init__ loads the teacher whenever l1_target is 'teacher'"
        with torch.no_grad():
            self.teacher_B = self.teacher(batch.x)
        return self.teacher_B

    def step(self, batch: Batch) -> Dict[str, float]:
        if self.distill_only:
            logs = self.distiller.step(batch.x)
            return {"G_content": logs["content"], "G_perceptual": logs["perceptual"], "G_tv": logs["tv"]}
        logs = self.finetuner.step(batch.x, batch.y, self._target(batch))
        return {name: logs[name] for name in self.loss_names}

    @torch.no_grad()
    def visuals(self, batch: Batch) -> Dict[str, torch.Tensor]:
        G = self.nets["G"]
        with teacher_mode(G):  # train mode as in training, BatchNorm statistics left untouched
            out = {"fake_B": G(batch.x)}
        if self.distill_only:
            out["teacher_B"] = self.distiller.teacher(batch.x)
        elif self.spec.l1_target == "teacher":
            out["teacher_B"] = self.teacher_B if self.teacher_B is not None else self._target(batch)
        return out

    def save(self, run_dir: Path, epoch: str) -> None:
        save_slim(self.nets["G"], run_dir / f"{epoch}_slim_G.pt")
        if "D" in self.nets:
            save_slim(self.nets["D"], run_dir / f"{epoch}_slim_D.pt")
        names = ("opt_G", "opt_D")
        state = {name: opt.state_dict() for name, opt in zip(names, self.optimizers)}
        atomic_torch_save(state, run_dir / f"{epoch}_mggc_finetune.pt")

    def resume(self, run_dir: Path, epoch: str) -> None:
        path = run_dir / f"{epoch}_mggc_finetune.pt"
        if path.is_file():
            state = torch.load(path, map_location="cpu", weights_only=True)
            for name, opt in zip(("opt_G", "opt_D"), self.optimizers):
                opt.load_state_dict(state[name])
            print_main(f"MGGC finetune: resumed the optimisers from {path}")


class TestPhase(Phase):
    """Rebuilds the slim G from ``<epoch>_slim_G.pt`` (its architecture and widths); upstream's
    ``setup`` then loads ``<epoch>_net_G.pth`` into it. G stays in train mode unless test.py's
    ``--eval`` is given, as upstream's own models behave."""

    loss_names: List[str] = []
    visual_names: List[str] = []

    def __init__(self, opt: argparse.Namespace, spec: GanSpec, run_dir: Path, device: torch.device):
        path = run_dir / f"{load_suffix(opt)}_slim_G.pt"
        if not path.is_file():
            raise MGGCFileNotFoundError(f"{path} does not exist: finetune first (python train.py --model "
                                        f"{spec.name} --name {opt.name} --mggc_phase finetune ...), or pass --epoch "
                                        f"with a saved epoch")
        G = load_slim(path).to(device).train()
        arch = arch_of(G)
        assert arch is not None, "load_slim() gives every network it rebuilds its ArchSpec"
        print_main(f"MGGC test: slim G rebuilt from {path} ({arch.kwargs['netG']}, widths {slim_info(G)['widths']})")
        self.nets = {"G": G}
        self.optimizers = []

    def visuals(self, batch: Batch) -> Dict[str, torch.Tensor]:
        return {"fake_B": self.nets["G"](batch.x)}


def resumes_finetuning(opt: argparse.Namespace, run_dir: Path, prune_epochs: int) -> bool:
    """``--mggc_phase all --continue_train``: whether the run continues in its finetuning (the
    epoch to continue is past the game and the checkpoint to load holds the slim pair) rather
    than in its pruning game (which then ends at once if its epochs are over)."""
    return opt.epoch_count > prune_epochs and (run_dir / f"{load_suffix(opt)}_slim_G.pt").is_file()


def _one_process(what: str) -> None:
    # The supernet methods train and search in one process: several would each train their own.
    if distributed.active():
        raise MGGCUserError(f"{what} runs in one process: launch train.py with python, not torchrun (the MGGC game "
                            f"and the baselines run under torchrun)")


def build_phase(opt: argparse.Namespace, spec: GanSpec, run_dir: Path, device: torch.device,
                prune_epochs: Optional[int] = None) -> Phase:
    """The phase ``opt`` asks for: test outside training, else ``--mggc_phase``; for ``all``, the
    one it starts in (given its ``prune_epochs``): the game, or its finetuning when continued
    there."""
    if not opt.isTrain:
        return TestPhase(opt, spec, run_dir, device)
    if opt.mggc_phase == "prune" and opt.mggc_method in options.SUPERNET_METHODS:
        _one_process(f"--mggc_method {opt.mggc_method}")
        return SupernetPrunePhase(opt, spec, run_dir, device)
    if opt.mggc_phase == "prune" and opt.mggc_method != "mggc":
        return BaselinePrunePhase(opt, spec, run_dir, device)
    if opt.mggc_phase == "all":
        assert prune_epochs is not None, "the one-run phase is built with its number of game epochs"
        if opt.continue_train and resumes_finetuning(opt, run_dir, prune_epochs):
            return FinetunePhase(opt, spec, run_dir, device)
        return PrunePhase(opt, spec, run_dir, device)
    return {"prune": PrunePhase, "finetune": FinetunePhase}[opt.mggc_phase](opt, spec, run_dir, device)
