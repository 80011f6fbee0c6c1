"""What an MGGC model does in each phase: the pruning game, finetuning the slim pair, testing.

An upstream model (:mod:`mggc_plugin.upstream.models`) owns one phase and shows it to
upstream's ``train.py``/``test.py``: :attr:`Phase.nets` become its ``model_names`` (saved as
``<epoch>_net_<name>.pth`` and loaded by upstream), :attr:`Phase.optimizers` get upstream's
learning-rate schedulers, :attr:`Phase.loss_names` are logged and plotted. Nothing here imports
upstream; ``opt`` is upstream's option namespace with the options of :mod:`.options`.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .. import baselines
from ..agents import gumbel_sigmoid
from ..channels import ChannelGroups
from ..errors import MGGCFileNotFoundError, MGGCUserError
from ..fileio import atomic_torch_save
from ..finetune import Finetuner
from ..macs import frozen_eval
from ..networks import arch_of
from ..pruner import MGGCPruner, teacher_mode
from ..slim import load_slim, save_slim, slim, slim_info
from . import checks, options, summary
from .record import RunRecord
from .specs import GanSpec
from .teacher import Teacher, find_teacher, inference_spec, load_D, load_G


@dataclass
class Batch:
    """One batch in the direction of ``--direction``: source x, target y (paired ground truth,
    or an unpaired real target), and for the prune phase y' and y''."""

    x: torch.Tensor
    y: torch.Tensor
    y_center: Optional[torch.Tensor] = None
    y_neighbor: Optional[torch.Tensor] = None


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
    if opt.mggc_restart:
        moved = checks.move_aside(run_dir, opt.continue_train)
        if moved:
            print(f"MGGC prune: --mggc_restart: moved {len(moved)} files of the earlier run into {moved[0].parent}")


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
        self.pruner = MGGCPruner(G, D, example_input(opt).to(device), config)
        restart(opt, run_dir)
        RunRecord.of_prune_run(opt, teacher, config).write(run_dir)
        p = self.pruner
        target = config.target_macs
        assert target is not None, "options.pruner_config always sets target_macs (--mggc_target_macs)"
        print(f"MGGC prune: teacher {teacher.G_path} ({opt.netG}, ngf {opt.ngf}): {p.groups_G.full_macs / 1e9:.4f} G "
              f"MACs at {opt.crop_size}x{opt.crop_size}, {len(p.groups_G)} channel groups; target "
              f"{target:.2%} = {target * p.groups_G.full_macs / 1e9:.4f} G MACs "
              f"(p = {p.p:.4f} of the prunable MACs); D {teacher.D_path}: {len(p.groups_D)} groups")
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
        print(f"MGGC prune: resumed the pruning game at step {self.pruner.step_count} from {path}")


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
        print(f"MGGC prune ({self.method}): teacher {teacher.G_path} ({opt.netG}, ngf {opt.ngf}): G keeps "
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


class FinetunePhase(Phase):
    """Slims the teacher's G and D by the agents' final architecture (``--mggc_prune_epoch``,
    rounded to ``--mggc_round_to``), or, after a baseline's prune phase (``--mggc_method``), by
    its masks ``<mggc_prune_epoch>_mggc_masks.pt``, and trains the slim pair with
    :class:`Finetuner`: the GAN's own objective, ``--lambda_L1``·L1 to :attr:`GanSpec.l1_target`, and with ``--mggc_kd``
    feature distillation through 1×1 adapters (``nets['KD']``). Saves, besides upstream's
    ``<epoch>_net_G.pth``/``_net_D.pth``, the self-describing ``<epoch>_slim_G.pt`` and
    ``<epoch>_slim_D.pt`` and the optimiser states ``<epoch>_mggc_finetune.pt``; writes
    ``mggc_report.json`` when it slims. ``game``: the pruning game of this very run (``--mggc_phase
    all``), slimmed by in memory instead of from a file."""

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
        #: The slim G's fraction of the teacher G's MACs, when this phase slimmed it.
        self.kept_macs: Optional[float] = None
        if opt.continue_train and game is None:
            G, D = self._reload(opt, run_dir)
        else:
            G, D = self._slim(opt, record, teacher, run_dir, game)
        G, D = G.to(device), D.to(device)
        G.train()
        D.train()
        needs_teacher = self.kd or spec.l1_target == "teacher"
        self.teacher = inference_spec(teacher, opt, record.norm_stats).load().to(device) if needs_teacher else None
        self.finetuner = Finetuner(G, D, options.finetune_config(opt, spec), teacher=self.teacher,
                                   kd_layers=slim_info(G)["groups"])
        self.nets = {"G": G, "D": D, **({"KD": self.finetuner.adapters} if self.kd else {})}
        self.optimizers = [self.finetuner.opt_G, self.finetuner.opt_D]
        self.loss_names = self.losses(self.kd)
        self.visual_names = ["teacher_B"] if spec.l1_target == "teacher" else []
        self.teacher_B: Optional[torch.Tensor] = None

    @staticmethod
    def losses(kd: bool) -> List[str]:
        """The loss names of the phase, with or without ``--mggc_kd``."""
        return ["G_GAN", "G_L1", "D"] + (["G_KD"] if kd else [])

    def _slim(self, opt: argparse.Namespace, record: RunRecord, teacher: Teacher, run_dir: Path,
              game: Optional[MGGCPruner]):
        G_T, D_T = load_G(teacher, opt), load_D(teacher, opt)
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
        pruner = MGGCPruner(G_T, D_T, example_input(opt), record.config())
        load_game(pruner, pruner_file)
        return FinetunePhase._final(opt, record, pruner, str(pruner_file))

    @staticmethod
    def _final(opt: argparse.Namespace, record: RunRecord, pruner: MGGCPruner, source: str):
        """The agents' final architecture (rounded to ``--mggc_round_to``), and what the report
        says of it; ``source``: the saved state or this run's game."""
        checks.check_round_to(record.pruner["target_macs"], pruner.groups_G, opt.mggc_round_to)
        arch = pruner.finalize(round_to=opt.mggc_round_to)
        masks_G, masks_D = [v.cpu() for v in arch.v_G], [v.cpu() for v in arch.v_D]
        origin = {"pruner_state": source, "pruning_steps": pruner.step_count, "round_to": opt.mggc_round_to}
        return (pruner.groups_G, pruner.groups_D, masks_G, masks_D, origin,
                f"{source} (after {pruner.step_count} pruning steps)")

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
                origin: Dict[str, Any], how: str, G_T: nn.Module, D_T: nn.Module, G: nn.Module, D: nn.Module,
                run_dir: Path) -> float:
        # Writes mggc_report.json and prints its summary; returns the slim G's fraction of the MACs.
        shape_G, shape_D = groups_G.input_shape, groups_D.input_shape
        nets = {"teacher": {"G": summary.describe(G_T, shape_G), "D": summary.describe(D_T, shape_D)},
                "slim": {"G": summary.describe(G, shape_G), "D": summary.describe(D, shape_D)}}
        path = summary.write_report(run_dir, {
            "model": opt.model, "method": record.method, "teacher_files": record.teacher,
            "target_macs": record.pruner["target_macs"], **origin,
            "input_shape_G": list(shape_G), "input_shape_D": list(shape_D), **nets,
            "widths_G": summary.widths(groups_G, G), "widths_D": summary.widths(groups_D, D)})
        print(f"MGGC finetune: slimmed by {how}, at {opt.crop_size}x{opt.crop_size}:")
        for net in ("G", "D"):
            print("  " + summary.ratio_line(net, nets["teacher"][net], nets["slim"][net]))
        print(f"  target {record.pruner['target_macs']:.2%} of G's MACs; widths and totals in {path}")
        return nets["slim"]["G"]["macs"] / nets["teacher"]["G"]["macs"]

    def _reload(self, opt: argparse.Namespace, run_dir: Path):
        suffix = load_suffix(opt)
        paths = [run_dir / f"{suffix}_slim_{net}.pt" for net in ("G", "D")]
        if self.kd:
            paths.append(run_dir / f"{suffix}_net_KD.pth")
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise MGGCFileNotFoundError(f"--continue_train: {', '.join(missing)} missing: continue a finetune run from "
                                        f"a saved --epoch (with --mggc_kd only if that run used it)")
        return load_slim(paths[0]), load_slim(paths[1])

    def _target(self, batch: Batch) -> torch.Tensor:
        if self.spec.l1_target == "ground_truth":
            return batch.y
        assert self.teacher is not None, "__init__ loads the teacher whenever l1_target is 'teacher'"
        with torch.no_grad():
            self.teacher_B = self.teacher(batch.x)
        return self.teacher_B

    def step(self, batch: Batch) -> Dict[str, float]:
        logs = self.finetuner.step(batch.x, batch.y, self._target(batch))
        return {name: logs[name] for name in self.loss_names}

    @torch.no_grad()
    def visuals(self, batch: Batch) -> Dict[str, torch.Tensor]:
        G = self.nets["G"]
        with teacher_mode(G):  # train mode as in training, BatchNorm statistics left untouched
            out = {"fake_B": G(batch.x)}
        if self.spec.l1_target == "teacher":
            out["teacher_B"] = self.teacher_B if self.teacher_B is not None else self._target(batch)
        return out

    def save(self, run_dir: Path, epoch: str) -> None:
        save_slim(self.nets["G"], run_dir / f"{epoch}_slim_G.pt")
        save_slim(self.nets["D"], run_dir / f"{epoch}_slim_D.pt")
        state = {"opt_G": self.finetuner.opt_G.state_dict(), "opt_D": self.finetuner.opt_D.state_dict()}
        atomic_torch_save(state, run_dir / f"{epoch}_mggc_finetune.pt")

    def resume(self, run_dir: Path, epoch: str) -> None:
        path = run_dir / f"{epoch}_mggc_finetune.pt"
        if path.is_file():
            state = torch.load(path, map_location="cpu", weights_only=True)
            self.finetuner.opt_G.load_state_dict(state["opt_G"])
            self.finetuner.opt_D.load_state_dict(state["opt_D"])
            print(f"MGGC finetune: resumed the optimisers from {path}")


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
        print(f"MGGC test: slim G rebuilt from {path} ({arch.kwargs['netG']}, widths {slim_info(G)['widths']})")
        self.nets = {"G": G}
        self.optimizers = []

    def visuals(self, batch: Batch) -> Dict[str, torch.Tensor]:
        return {"fake_B": self.nets["G"](batch.x)}


def resumes_finetuning(opt: argparse.Namespace, run_dir: Path, prune_epochs: int) -> bool:
    """``--mggc_phase all --continue_train``: whether the run continues in its finetuning (the
    epoch to continue is past the game and the checkpoint to load holds the slim pair) rather
    than in its pruning game (which then ends at once if its epochs are over)."""
    return opt.epoch_count > prune_epochs and (run_dir / f"{load_suffix(opt)}_slim_G.pt").is_file()


def build_phase(opt: argparse.Namespace, spec: GanSpec, run_dir: Path, device: torch.device,
                prune_epochs: Optional[int] = None) -> Phase:
    """The phase ``opt`` asks for: test outside training, else ``--mggc_phase``; for ``all``, the
    one it starts in (given its ``prune_epochs``): the game, or its finetuning when continued
    there."""
    if not opt.isTrain:
        return TestPhase(opt, spec, run_dir, device)
    if opt.mggc_phase == "prune" and opt.mggc_method != "mggc":
        return BaselinePrunePhase(opt, spec, run_dir, device)
    if opt.mggc_phase == "all":
        assert prune_epochs is not None, "the one-run phase is built with its number of game epochs"
        if opt.continue_train and resumes_finetuning(opt, run_dir, prune_epochs):
            return FinetunePhase(opt, spec, run_dir, device)
        return PrunePhase(opt, spec, run_dir, device)
    return {"prune": PrunePhase, "finetune": FinetunePhase}[opt.mggc_phase](opt, spec, run_dir, device)
