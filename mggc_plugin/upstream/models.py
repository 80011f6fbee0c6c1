"""``--model mggc_pix2pix`` and ``--model mggc_cycle_gan``: MGGC inside upstream's train.py/test.py.

Imported by the shims ``mggc register`` writes into an upstream checkout, so upstream's own
``models`` package is importable and the classes below subclass its very ``BaseModel``.
"""
from __future__ import annotations

import argparse
import random
import warnings
from pathlib import Path
from typing import ClassVar, Optional

import torch
from models.base_model import BaseModel
from models.networks import get_scheduler

from .. import distributed
from ..distributed import print_main
from ..errors import install_excepthook
from ..fileio import atomic_torch_save, atomic_write
from . import compat, options
from .checks import prune_epochs
from .phases import Batch, FinetunePhase, Phase, PrunePhase, build_phase, load_suffix
from .specs import SPECS, GanSpec

install_excepthook()  # upstream's train.py/test.py catch nothing: show our user errors as one line


class MggcModel(BaseModel):
    """MGGC for one GAN (:attr:`spec`), in the phase the options ask for.

    Training (``train.py``), ``--mggc_phase``:

    - ``all`` (the default): one run. The pruning game (as ``prune``) for the first
      ``--mggc_prune_epochs`` epochs (default: 10 % of the teacher's), then G and D are slimmed
      by the agents' final architecture (as ``finetune``) and finetuned for the remaining epochs
      with upstream's learning-rate schedule over the whole run (as if the finetuning had been
      scheduled from epoch 1). Upstream saves and ``--continue_train`` resumes at any epoch: in
      the game or in the finetuning, whichever the checkpoint to load holds. The losses and
      visuals are those of both phases throughout (those of the other phase read 0).
    - ``prune``: the teacher ``checkpoints/<teacher_name>/<teacher_epoch>_net_*.pth`` stays
      frozen; only the agents gen_G/gen_D learn (Eq. 2) on ``--dataset_mode neighborhood``.
      Losses G, D, R, L and kept_macs (the sampled G's fraction of the teacher's MACs) go
      through ``get_current_losses``. Saves ``<epoch>_net_gen_{G,D}.pth`` and
      ``<epoch>_mggc_pruner.pt``; ``--continue_train`` resumes the game. With ``--mggc_method
      l1_norm|uniform`` a baseline replaces the game: G's masks at the budget are written at
      once (``<epoch>_mggc_masks.pt``), without neighbourhoods or training. With
      ``--mggc_method gan_compression|agd`` a once-for-all supernet of G trains on the teacher's
      own data instead (``<epoch>_mggc_supernet.pt``; :mod:`.supernet`).
    - ``finetune`` (same ``--name``): slims G and D physically by the agents' final
      architecture and trains them with the GAN's objective (+ L1, + optional KD). Saves the
      slim pair as ``<epoch>_net_{G,D}.pth`` together with ``<epoch>_slim_{G,D}.pt`` (the slim
      checkpoints ``load_slim`` and ``mggc export`` read) and writes ``mggc_report.json``. After
      a supernet method it first searches the supernet's widths under the budget and extracts
      the best sub-network; after ``agd`` G trains alone (no D) by AGD's distillation objective.

    A training run seeds torch's and Python's random numbers with ``--mggc_seed``; every save
    also writes ``<epoch>_mggc_rng.pt`` (the CPU torch and Python random states), which
    ``--continue_train`` restores, so on the CPU a run repeats, and a resumed run draws what the
    uninterrupted one would have; computing visuals draws nothing from them.

    Testing (``test.py``): rebuilds the slim G from ``<epoch>_slim_G.pt``, upstream loads
    ``<epoch>_net_G.pth`` into it, and the visuals real_A, fake_B, real_B make the result page.

    Works with upstream 2021, 2024 and 2025 alike; their differences are handled in
    :mod:`mggc_plugin.upstream.compat`.
    """

    spec: ClassVar[GanSpec]

    def __init__(self, opt: argparse.Namespace) -> None:
        BaseModel.__init__(self, opt)
        compat.check_processes(opt)
        if self.isTrain:
            options.check_train_options(opt)
            if options.plays_game(opt):
                options.check_game_options(opt)
        self.run_dir = Path(opt.checkpoints_dir) / opt.name
        if self.isTrain and not opt.continue_train:
            # Upstream seeds nothing; before the first epoch draws its order, crops and dropout,
            # a run's random numbers start from --mggc_seed (a continued run restores its own).
            # Under torchrun each rank draws its own crops and dropout: --mggc_seed + rank (the
            # agents and their Gumbel noise are seeded by --mggc_seed alone, the same on every rank).
            rank = distributed.world()[0]
            torch.manual_seed(opt.mggc_seed + rank)
            random.seed(opt.mggc_seed + rank)
        #: ``--mggc_phase all``: the epochs of the game; None for a single phase or test.py.
        self.prune_epochs: Optional[int] = None
        why = ""
        if self.isTrain and opt.mggc_phase == "all":
            self.prune_epochs, why = prune_epochs(opt, self.spec, self.run_dir)
        phase = build_phase(opt, self.spec, self.run_dir, self.device, self.prune_epochs)
        # Upstream tells a model nothing of epochs: the epoch of the next iteration is counted
        # from --epoch_count, one more at each update_learning_rate that follows iterations
        # (2021/2024 call it before an epoch, 2025 after one).
        self.epoch = opt.epoch_count if self.isTrain else 0
        self._iterations, self._lr_updates, self._game_over = 0, 0, False
        if self.prune_epochs is not None:
            self.loss_names = PrunePhase.loss_names + [n for n in FinetunePhase.losses(opt.mggc_kd)
                                                       if n not in PrunePhase.loss_names]
            self.visual_names = ["real_A", "fake_B", "real_B"] + PrunePhase.visual_names
            for name in self.loss_names:
                setattr(self, "loss_" + name, 0.0)
            last = opt.n_epochs + opt.n_epochs_decay
            print_main(f"MGGC: one run: the pruning game in epochs 1-{self.prune_epochs} ({why}), then G and D slimmed "
                       f"and finetuned in epochs {self.prune_epochs + 1}-{last}")
            if last <= self.prune_epochs:
                print_main(f"MGGC: this run ends at epoch {last}, within the game: continue it with --continue_train "
                           f"--epoch_count {last + 1} and --n_epochs/--n_epochs_decay of the whole run to finetune")
        self._use(phase)

    def _use(self, phase: Phase) -> None:
        # Show upstream this phase's networks, optimisers, losses and visuals.
        for name in getattr(self, "model_names", []):
            delattr(self, "net" + name)
        self.phase = phase
        self.model_names = list(phase.nets)
        for name, net in phase.nets.items():
            setattr(self, "net" + name, net)
        self.optimizers = list(phase.optimizers)
        if self.prune_epochs is None:
            self.loss_names = list(phase.loss_names)
            self.visual_names = ["real_A", "fake_B", "real_B"] + phase.visual_names
        self._game_over = isinstance(phase, PrunePhase) and self.prune_epochs is not None \
            and self.epoch > self.prune_epochs

    def _finish_game(self) -> None:
        """``--mggc_phase all``, first iteration after the game's epochs: slim and finetune."""
        assert isinstance(self.phase, PrunePhase), "only the game ends"
        with torch.random.fork_rng(devices=[]):  # building the finetuning draws nothing from training's stream
            finetune = FinetunePhase(self.opt, self.spec, self.run_dir, self.device, game=self.phase.pruner)
        self._use(finetune)
        for name in ("G", "R", "L"):
            setattr(self, "loss_" + name, 0.0)
        self.loss_kept_macs = finetune.kept_macs
        # Upstream's schedule over the whole run: a scheduler made at setup would have been
        # stepped once at each update_learning_rate so far.
        self.schedulers = [get_scheduler(optimizer, self.opt) for optimizer in self.optimizers]
        if self.opt.lr_policy != "plateau":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "lr_scheduler.step() before optimizer.step()"
                for _ in range(self._lr_updates):
                    for scheduler in self.schedulers:
                        scheduler.step()
        print_main(f"MGGC: epoch {self.epoch}: the pruning game is over after {self.prune_epochs} epochs; finetuning "
                   f"the slim G and D, learning rate {self.optimizers[0].param_groups[0]['lr']:.7f}")

    def set_input(self, input):
        """Unpack upstream's batch dict in ``--direction``; the neighbourhood dataset's y' and
        y'' become the visuals teacher_B and neighbor_B."""
        if self._game_over:
            self._finish_game()
        AtoB = self.opt.direction == "AtoB"
        self.real_A = input["A" if AtoB else "B"].to(self.device)
        self.real_B = input["B" if AtoB else "A"].to(self.device)
        self.image_paths = input["A_paths" if AtoB else "B_paths"]
        if "y_center" in input:
            self.teacher_B = input["y_center"].to(self.device)
            self.neighbor_B = input["y_neighbor"].to(self.device)

    def _batch(self) -> Batch:
        return Batch(self.real_A, self.real_B, getattr(self, "teacher_B", None), getattr(self, "neighbor_B", None),
                     list(getattr(self, "image_paths", ())))

    def forward(self):
        """fake_B (and the phase's own visuals) for the current input."""
        for name, image in self.phase.visuals(self._batch()).items():
            setattr(self, name, image)

    def compute_visuals(self):
        if self.isTrain:
            devices = [self.device] if self.device.type == "cuda" else []
            with torch.no_grad(), torch.random.fork_rng(devices=devices):  # dropout in visuals draws nothing
                self.forward()

    def optimize_parameters(self):
        self._iterations += 1
        for name, value in self.phase.step(self._batch()).items():
            setattr(self, "loss_" + name, value)

    def setup(self, opt):
        """Upstream's setup, keeping pretrained and slimmed weights through a version's
        re-initialisation; then, with ``--continue_train``, the phase's own state and the random
        states saved with it."""
        loads = not self.isTrain or opt.continue_train
        with compat.weights_kept_through_setup(self, restore=not loads):
            BaseModel.setup(self, opt)
        compat.unwrap_all(self)
        if self.isTrain and opt.continue_train:
            self.phase.resume(self.run_dir, load_suffix(opt))
            rng = self.run_dir / f"{load_suffix(opt)}_mggc_rng.pt"
            if rng.is_file():
                state = torch.load(rng, map_location="cpu", weights_only=True)
                rank, size = distributed.world()
                ranks = state.get("ranks")
                torch_state, python_state = ranks[rank] if ranks and len(ranks) == size else (state["torch"],
                                                                                             state["python"])
                torch.set_rng_state(torch_state)
                random.setstate(python_state)

    def update_learning_rate(self):
        self._lr_updates += 1
        if self._iterations:
            self.epoch, self._iterations = self.epoch + 1, 0
        self._game_over = isinstance(self.phase, PrunePhase) and self.prune_epochs is not None \
            and self.epoch > self.prune_epochs
        if self.optimizers:
            BaseModel.update_learning_rate(self)

    def save_networks(self, epoch):
        """``<epoch>_net_<name>.pth`` for every net in ``model_names`` (unwrapped, on the CPU,
        written atomically), then the phase's own files and the random states. Under torchrun
        every rank calls it (upstream 2025's ``train.py`` does) and rank 0 writes; the random
        states of every rank go into ``<epoch>_mggc_rng.pt``, for ``--continue_train`` with as
        many processes."""
        for name in self.model_names:
            state = {k: v.detach().cpu() for k, v in compat.unwrap(getattr(self, "net" + name)).state_dict().items()}
            atomic_write(self.run_dir / f"{epoch}_net_{name}.pth", lambda tmp, s=state: torch.save(s, tmp))
        self.phase.save(self.run_dir, str(epoch))
        rng = {"torch": torch.get_rng_state(), "python": random.getstate()}
        if distributed.active():
            rng["ranks"] = distributed.gather_objects((rng["torch"], rng["python"]))
        atomic_torch_save(rng, self.run_dir / f"{epoch}_mggc_rng.pt")


class MggcPix2PixModel(MggcModel):
    """MGGC for a pix2pix teacher (``--model pix2pix``): hinge GAN, conditional D, L1 to the
    paired ground truth in the finetune phase. Defaults as upstream's pix2pix: unet_256, batch
    norm, dropout."""

    spec = SPECS["mggc_pix2pix"]

    @staticmethod
    def modify_commandline_options(parser, is_train=True):
        return options.add_model_options(parser, is_train, SPECS["mggc_pix2pix"])


class MggcCycleGanModel(MggcModel):
    """MGGC for a CycleGAN teacher (``--model cycle_gan``), pruning G_A (A→B) judged by D_A:
    least-squares GAN, unconditional D; the finetune phase's L1 pulls G(x) to the teacher's
    G_A(x). Defaults as upstream's cycle_gan: resnet_9blocks, instance norm, no dropout."""

    spec = SPECS["mggc_cycle_gan"]

    @staticmethod
    def modify_commandline_options(parser, is_train=True):
        return options.add_model_options(parser, is_train, SPECS["mggc_cycle_gan"])
