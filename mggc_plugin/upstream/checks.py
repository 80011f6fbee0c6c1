"""What a training run of the MGGC models is refused for, checked before any work, what a new
prune phase does to the products of an earlier run under the same ``--name``, and how many
epochs the game of a one-run ``--mggc_phase all`` plays.

Upstream's ``train.py`` builds the dataset before the model, so for the pruning game the
neighbourhood dataset calls :func:`check_prune_run` first thing (before the teacher outputs,
the encoder and the embeddings are built), and the model checks again for the runs that do not
use that dataset. Nothing here imports upstream.
"""
from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path
from typing import List, Optional, Tuple, Union

import torch
from torch import nn

from ..baselines import widths_at_rate
from ..channels import ChannelGroups
from ..errors import MGGCUserError
from ..latency_table import LatencyTable
from ..pruner import latency_fraction
from . import options
from .specs import GanSpec
from .teacher import Teacher, find_teacher, load_D, load_G


def narrowest_fraction(groups: ChannelGroups, round_to: int) -> float:
    """The smallest fraction of G's total MACs any pruning reaches: every channel group keeps
    ``round_to`` channels (all of them if it has fewer), the narrowest widths both the game's
    final architecture and the baselines allow."""
    widths = widths_at_rate(groups.sizes, 0.0, round_to)
    masks = [torch.arange(n) < w for n, w in zip(groups.sizes, widths)]
    return float(groups.macs(masks)) / groups.full_macs


def check_budget(target: float, groups_G: ChannelGroups, round_to: int, opt: argparse.Namespace) -> None:
    """Refuse ``--mggc_target_macs`` below :func:`narrowest_fraction` of the teacher's G."""
    floor = narrowest_fraction(groups_G, round_to)
    if target < floor:
        each = "one channel" if round_to == 1 else f"{round_to} channels (--mggc_round_to {round_to})"
        raise MGGCUserError(f"--mggc_target_macs {target:g} is below what G ({opt.netG}, ngf {opt.ngf}) can be pruned "
                            f"to: with {each} in each of its {len(groups_G)} channel groups it keeps {floor:.4f} of "
                            f"its MACs; give --mggc_target_macs {_ceil(floor)} or more")


def latency_table(path: Union[str, Path], groups_G: ChannelGroups, target_ms: Optional[float] = None) -> LatencyTable:
    """The latency table at ``path``, refused (naming the flags) when it cannot be read, was
    measured for another G or input size, or cannot reach ``target_ms`` (``None``: the table of
    ``--mggc_widths fastest``, no latency budget)."""
    flags = "--mggc_widths fastest" if target_ms is None else f"--mggc_target_latency_ms {target_ms:g}"
    try:
        table = LatencyTable.load(path)
        if target_ms is None:
            table.check(groups_G)
        else:
            latency_fraction(table, groups_G, target_ms)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise MGGCUserError(f"--mggc_latency_table {path} {flags}: {err}") from None
    return table


def check_round_to(target: float, groups_G: ChannelGroups, round_to: int) -> None:
    """Refuse a finetune phase's ``--mggc_round_to`` whose narrowest widths exceed the budget the
    game was played for (``target``, the prune phase's ``--mggc_target_macs``)."""
    floor = narrowest_fraction(groups_G, round_to)
    if target < floor:
        raise MGGCUserError(f"--mggc_round_to {round_to}: with every width a multiple of {round_to}, G keeps at least "
                            f"{floor:.4f} of its MACs, more than the prune phase's --mggc_target_macs {target:g}: "
                            f"lower --mggc_round_to (1 keeps the agents' widths)")


def _ceil(fraction: float) -> str:
    # The smallest 4-decimal number at or above the fraction: a value the user can paste.
    return f"{-(-fraction * 1e4 // 1) / 1e4:.4f}"


def prune_epochs(opt: argparse.Namespace, spec: GanSpec, run_dir: Path) -> Tuple[int, str]:
    """``--mggc_phase all``: how many epochs the pruning game plays, and why: ``--mggc_prune_epochs``,
    else the paper's 10 % of the teacher's ``n_epochs + n_epochs_decay`` (its ``train_opt.txt``),
    rounded, at least 1."""
    if opt.mggc_prune_epochs is not None:
        return opt.mggc_prune_epochs, "--mggc_prune_epochs"
    teacher = find_teacher(opt.checkpoints_dir, opt.teacher_name, opt.teacher_epoch, spec.teacher, run_dir)
    try:
        total = int(teacher.train_opt["n_epochs"]) + int(teacher.train_opt["n_epochs_decay"])
    except (KeyError, ValueError):
        raise MGGCUserError(f"the teacher {teacher.folder} has no train_opt.txt with n_epochs and n_epochs_decay, "
                            f"from which the game's length is 10% of its epochs: pass --mggc_prune_epochs") from None
    return max(1, round(total / 10)), f"10% of the teacher's {total} epochs"


def check_prune_run(opt: argparse.Namespace, spec: GanSpec, run_dir: Path) -> Tuple[Teacher, nn.Module]:
    """Everything a prune phase can be refused for, before any work: the option values, the
    teacher (found, trained with this run's architecture options, its files loadable into that
    architecture) and the budget against the narrowest G. Returns the teacher and its G (on the
    CPU)."""
    options.check_train_options(opt)
    options.check_game_options(opt)
    teacher = find_teacher(opt.checkpoints_dir, opt.teacher_name, opt.teacher_epoch, spec.teacher, run_dir)
    teacher.check_options(opt)
    G = load_G(teacher, opt)  # strict loads: a wrong architecture or a damaged file fails here
    load_D(teacher, opt)
    x = torch.zeros(1, opt.input_nc, opt.crop_size, opt.crop_size)
    groups = ChannelGroups.discover(G, x)
    if opt.mggc_target_latency_ms is not None:
        latency_table(opt.mggc_latency_table, groups, opt.mggc_target_latency_ms)
    else:
        check_budget(opt.mggc_target_macs, groups, opt.mggc_round_to, opt)
    if opt.mggc_phase == "all":
        prune_epochs(opt, spec, run_dir)
    return teacher, G


def move_aside(run_dir: Path, continue_train: bool) -> List[Path]:
    """``--mggc_restart``: move the :func:`~.options.earlier_products` of ``run_dir`` into a new
    ``superseded_<time>/`` folder inside it, with a copy of the earlier run record, and return
    the moved files' new paths. Nothing is deleted."""
    stale = options.earlier_products(run_dir, continue_train)
    if not stale:
        return []
    folder = run_dir / options.SUPERSEDED.format(time=time.strftime("%Y%m%d-%H%M%S"))
    n = 1
    while folder.exists():
        n += 1
        folder = folder.with_name(f"{folder.name.split('.')[0]}.{n}")
    folder.mkdir()
    record = run_dir / options.RUN_RECORD
    if record.is_file():
        shutil.copy2(record, folder / record.name)
    moved = []
    for path in stale:
        moved.append(Path(shutil.move(str(path), str(folder / path.name))))
    return moved
