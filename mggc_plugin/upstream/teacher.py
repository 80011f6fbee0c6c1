"""The teacher: finding its upstream checkpoint files, checking them against this run's options,
and loading them into :mod:`mggc_plugin.networks` modules. Files are only ever read.

Nothing here imports upstream.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from torch import nn

from .. import networks
from ..errors import MGGCFileNotFoundError, MGGCUserError
from ..fileio import sha256_file
from ..teacher import TeacherSpec, read_train_opt
from .specs import TEACHER_KINDS, TeacherKind

#: Options whose value must be the teacher's: they decide the architecture (or, for direction,
#: which way G maps).
ARCH_OPTIONS = ("netG", "ngf", "norm", "no_dropout", "input_nc", "output_nc", "netD", "ndf", "n_layers_D", "direction")


@dataclass(frozen=True)
class Teacher:
    """A teacher as upstream saved it: ``folder`` = ``<checkpoints_dir>/<name>``, the generator
    ``G_path`` and discriminator ``D_path`` of ``epoch``, its ``kind`` (which upstream model made
    it) and the options in its ``train_opt.txt`` (empty when the file is missing)."""

    folder: Path
    epoch: str
    kind: TeacherKind
    G_path: Path
    D_path: Path
    train_opt: Dict[str, str]

    def check_options(self, opt: argparse.Namespace) -> None:
        """Raise ValueError naming every architecture option in which this run differs from the
        teacher's ``train_opt.txt`` (nothing to check without one: loading the weights strictly
        catches a different architecture then)."""
        wrong = []
        for name in ARCH_OPTIONS:
            if name not in self.train_opt or not hasattr(opt, name):
                continue
            if name == "n_layers_D" and self.train_opt.get("netD") != "n_layers":
                continue  # only read by netD n_layers
            if str(getattr(opt, name)) != self.train_opt[name]:
                wrong.append((name, self.train_opt[name], getattr(opt, name)))
        if wrong:
            fix = " ".join(_flag(n, v) for n, v, _ in wrong)
            have = ", ".join(f"--{n} {o}" for n, _, o in wrong)
            raise MGGCUserError(f"the teacher {self.folder} was trained with other options than this run ({have}); "
                                f"its train_opt.txt says: {fix}. Pass the teacher's options: {fix}")

    def describe(self) -> Dict[str, Any]:
        """Paths and SHA-256 of the teacher files (for the run record)."""
        return {"folder": str(self.folder.resolve()), "epoch": self.epoch, "model": self.kind.model,
                "G": str(self.G_path.resolve()), "D": str(self.D_path.resolve()),
                "G_sha256": sha256_file(self.G_path), "D_sha256": sha256_file(self.D_path)}


def _flag(name: str, value: str) -> str:
    if name == "no_dropout":
        return "--no_dropout" if value == "True" else "(no --no_dropout)"
    return f"--{name} {value}"


def _available(folder: Path, net: str) -> List[str]:
    suffix = f"_net_{net}.pth"
    return sorted(p.name[: -len(suffix)] for p in folder.glob(f"*{suffix}"))


def find_teacher(checkpoints_dir: str, name: str, epoch: str, kind: Optional[TeacherKind] = None,
                 run_dir: Optional[Path] = None) -> Teacher:
    """Locate ``<checkpoints_dir>/<name>/<epoch>_net_{G,D}.pth`` for ``kind`` (default: the model
    named in the teacher's ``train_opt.txt``, else the one whose files are there). Raises
    FileNotFoundError for a missing folder or file and ValueError when the teacher is of another
    kind or ``run_dir`` (this run's folder, written to) is the teacher's folder."""
    folder = Path(checkpoints_dir) / name
    if not folder.is_dir():
        raise MGGCFileNotFoundError(f"teacher folder {folder} does not exist: train the teacher with upstream "
                                    f"(python train.py --name {name} ...) or link its checkpoint folder there")
    if run_dir is not None and os.path.realpath(run_dir) == os.path.realpath(folder):
        raise MGGCUserError(f"--name {Path(run_dir).name} is the teacher's folder: MGGC never writes there; give this "
                            f"run another --name")
    opt_file = folder / "train_opt.txt"
    train_opt = read_train_opt(opt_file) if opt_file.is_file() else {}
    trained = TEACHER_KINDS.get(train_opt.get("model", ""))
    if kind is None:
        kind = trained or next((k for k in TEACHER_KINDS.values() if _available(folder, k.G)), None)
        if kind is None:
            raise MGGCFileNotFoundError(f"{folder} holds no upstream pix2pix (*_net_G.pth) or cycle_gan "
                                        f"(*_net_G_A.pth) generator")
    elif "model" in train_opt and train_opt["model"] != kind.model:
        raise MGGCUserError(f"the teacher {folder} was trained with --model {train_opt['model']}, this model "
                            f"compresses --model {kind.model} teachers; use --model mggc_{train_opt['model']}")
    paths = {net: folder / f"{epoch}_net_{net}.pth" for net in (kind.G, kind.D)}
    for net, path in paths.items():
        if not path.is_file():
            epochs = _available(folder, net)
            have = f"saved epochs: {', '.join(epochs)}" if epochs else f"no *_net_{net}.pth at all"
            raise MGGCFileNotFoundError(f"teacher file {path} does not exist ({have}): pass --teacher_epoch with a "
                                        f"saved epoch")
    return Teacher(folder, epoch, kind, paths[kind.G], paths[kind.D], train_opt)


def arch_G(opt: argparse.Namespace) -> Dict[str, Any]:
    """``networks.define_G`` arguments of the teacher generator, from upstream's options."""
    return dict(input_nc=opt.input_nc, output_nc=opt.output_nc, ngf=opt.ngf, netG=opt.netG, norm=opt.norm,
                use_dropout=not opt.no_dropout)


def arch_D(opt: argparse.Namespace, kind: TeacherKind) -> Dict[str, Any]:
    """``networks.define_D`` arguments of the teacher discriminator (a conditional D reads x and y)."""
    input_nc = opt.input_nc + opt.output_nc if kind.conditional_D else opt.output_nc
    return dict(input_nc=input_nc, ndf=opt.ndf, netD=opt.netD, n_layers_D=opt.n_layers_D, norm=opt.norm)


def load_G(teacher: Teacher, opt: argparse.Namespace) -> nn.Module:
    """The teacher generator, loaded strictly, on the CPU."""
    return networks.load_state(networks.define_G(**arch_G(opt)), teacher.G_path)


def load_D(teacher: Teacher, opt: argparse.Namespace) -> nn.Module:
    """The teacher discriminator, loaded strictly, on the CPU."""
    return networks.load_state(networks.define_D(**arch_D(opt, teacher.kind)), teacher.D_path)


def inference_spec(teacher: Teacher, opt: argparse.Namespace, norm_stats: str) -> TeacherSpec:
    """The teacher generator as the neighbourhood code runs it (y' = G(x), see TeacherSpec)."""
    a = arch_G(opt)
    return TeacherSpec(teacher.G_path, a["netG"], a["ngf"], a["norm"], a["use_dropout"], a["input_nc"],
                       a["output_nc"], norm_stats)
