"""``--model mggc_pix2pix`` and ``--model mggc_cycle_gan``: MGGC inside upstream's train.py/test.py.

Imported by the shims ``mggc register`` writes into an upstream checkout, so upstream's own
``models`` package is importable and the classes below subclass its very ``BaseModel``.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import ClassVar

import torch
from models.base_model import BaseModel

from ..fileio import atomic_write
from . import compat, options
from .phases import Batch, Phase, build_phase, load_suffix
from .specs import SPECS, GanSpec


class MggcModel(BaseModel):
    """MGGC for one GAN (:attr:`spec`), in the phase the options ask for.

    Training (``train.py``), ``--mggc_phase``:

    - ``prune``: the teacher ``checkpoints/<teacher_name>/<teacher_epoch>_net_*.pth`` stays
      frozen; only the agents gen_G/gen_D learn (Eq. 2) on ``--dataset_mode neighborhood``.
      Losses G, D, R, L and kept_macs (the sampled G's fraction of the teacher's MACs) go
      through ``get_current_losses``. Saves ``<epoch>_net_gen_{G,D}.pth`` and
      ``<epoch>_mggc_pruner.pt``; ``--continue_train`` resumes the game. With ``--mggc_method
      l1_norm|uniform`` a baseline replaces the game: G's masks at the budget are written at
      once (``<epoch>_mggc_masks.pt``), without neighbourhoods or training.
    - ``finetune`` (same ``--name``): slims G and D physically by the agents' final
      architecture and trains them with the GAN's objective (+ L1, + optional KD). Saves the
      slim pair as ``<epoch>_net_{G,D}.pth`` together with ``<epoch>_slim_{G,D}.pt`` (the slim
      checkpoints ``load_slim`` and ``mggc export`` read) and writes ``mggc_report.json``.

    Testing (``test.py``): rebuilds the slim G from ``<epoch>_slim_G.pt``, upstream loads
    ``<epoch>_net_G.pth`` into it, and the visuals real_A, fake_B, real_B make the result page.

    Works with upstream 2021, 2024 and 2025 alike; their differences are handled in
    :mod:`mggc_plugin.upstream.compat`.
    """

    spec: ClassVar[GanSpec]

    def __init__(self, opt: argparse.Namespace) -> None:
        BaseModel.__init__(self, opt)
        compat.require_single_process()
        if self.isTrain:
            options.check_train_options(opt)
        self.run_dir = Path(opt.checkpoints_dir) / opt.name
        self.phase: Phase = build_phase(opt, self.spec, self.run_dir, self.device)
        self.loss_names = list(self.phase.loss_names)
        self.model_names = list(self.phase.nets)
        for name, net in self.phase.nets.items():
            setattr(self, "net" + name, net)
        self.visual_names = ["real_A", "fake_B", "real_B"] + self.phase.visual_names
        self.optimizers = list(self.phase.optimizers)

    def set_input(self, input):
        """Unpack upstream's batch dict in ``--direction``; the neighbourhood dataset's y' and
        y'' become the visuals teacher_B and neighbor_B."""
        AtoB = self.opt.direction == "AtoB"
        self.real_A = input["A" if AtoB else "B"].to(self.device)
        self.real_B = input["B" if AtoB else "A"].to(self.device)
        self.image_paths = input["A_paths" if AtoB else "B_paths"]
        if "y_center" in input:
            self.teacher_B = input["y_center"].to(self.device)
            self.neighbor_B = input["y_neighbor"].to(self.device)

    def _batch(self) -> Batch:
        return Batch(self.real_A, self.real_B, getattr(self, "teacher_B", None), getattr(self, "neighbor_B", None))

    def forward(self):
        """fake_B (and the phase's own visuals) for the current input."""
        for name, image in self.phase.visuals(self._batch()).items():
            setattr(self, name, image)

    def compute_visuals(self):
        if self.isTrain:
            with torch.no_grad():
                self.forward()

    def optimize_parameters(self):
        for name, value in self.phase.step(self._batch()).items():
            setattr(self, "loss_" + name, value)

    def setup(self, opt):
        """Upstream's setup, keeping pretrained and slimmed weights through a version's
        re-initialisation; then, with ``--continue_train``, the phase's own state."""
        loads = not self.isTrain or opt.continue_train
        with compat.weights_kept_through_setup(self, restore=not loads):
            BaseModel.setup(self, opt)
        if self.isTrain and opt.continue_train:
            self.phase.resume(self.run_dir, load_suffix(opt))

    def update_learning_rate(self):
        if self.optimizers:
            BaseModel.update_learning_rate(self)

    def save_networks(self, epoch):
        """``<epoch>_net_<name>.pth`` for every net in ``model_names`` (unwrapped, on the CPU,
        written atomically), then the phase's own files."""
        for name in self.model_names:
            state = {k: v.detach().cpu() for k, v in compat.unwrap(getattr(self, "net" + name)).state_dict().items()}
            atomic_write(self.run_dir / f"{epoch}_net_{name}.pth", lambda tmp, s=state: torch.save(s, tmp))
        self.phase.save(self.run_dir, str(epoch))


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
