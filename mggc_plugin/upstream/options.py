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
import fnmatch
import os
from pathlib import Path
from typing import Any, List, Tuple

from .. import baselines, networks
from ..agd import AGDConfig
from ..data import DATASET_MODES
from ..encoders.base import ENCODER_CHOICES
from ..encoders.swav import SWAV_ARCHS, SwAVConfig, swav_config_from_flags
from ..errors import MGGCUserError
from ..finetune import KD_AT, FinetuneConfig
from ..losses import GAN_MODES
from ..pruner import ABLATIONS, GATES, MGGCConfig
from ..teacher import NORM_STATS, read_train_opt
from .specs import GanSpec
from .summary import REPORT_NAME

#: ``--mggc_phase``: ``all`` (the default) plays the game and finetunes in one run of train.py.
PHASES = ("all", "prune", "finetune")
#: The methods whose prune phase trains a once-for-all supernet that the finetune phase searches:
#: GAN Compression (:mod:`mggc_plugin.gan_compression`) and AutoGAN-Distiller's objective on the
#: same width search, without a discriminator (:mod:`mggc_plugin.agd`).
SUPERNET_METHODS = ("gan_compression", "agd")
#: The methods whose student trains without any discriminator.
DISCRIMINATOR_FREE = ("agd",)
#: ``--mggc_method``: the pruning game, a baseline of :mod:`mggc_plugin.baselines` (no game), or a
#: supernet method.
METHODS = ("mggc",) + baselines.METHODS + SUPERNET_METHODS
#: ``--mggc_lambda_rec``'s default, beyond the paper (whose game has no such term, i.e. 0): chosen by
#: the game screen on a validation split; on the facades benchmark its pix2pix students are closer
#: to the teacher than L1-norm pruning's (intervals excluding 0 at 10 % and 5 % of the MACs, and at
#: 5 % with 20 finetuning epochs), while their KID is not resolved from L1-norm's (5 seeds at 5 %).
#: The README's "Beyond the paper" gives the figures.
DEFAULT_LAMBDA_REC = 10.0
#: ``--mggc_round_to``'s default for generators of ``--ngf`` >= :data:`ROUND_TO_MIN_NGF`: widths in
#: multiples of 8 run closer to the MAC ratio's speed-up than free widths (ONNX Runtime, 1 thread,
#: resnet_9blocks at 10 % of the MACs: 0.75 of the ideal speed-up against 0.57,
#: ``benchmarks/results/speed_gap.md``), and the facades benchmark measures every student at them.
ROUND_TO = 8
ROUND_TO_MIN_NGF = 32
#: The prune phase's record in the run folder (:mod:`.record`), which marks a folder as an MGGC run.
RUN_RECORD = "mggc_run.json"
#: ``--mggc_widths``: the agents' final architecture, or the latency table's fastest widths for
#: the game's MAC budget (:func:`mggc_plugin.baselines.fastest_widths`).
WIDTHS = ("game", "fastest")
#: ``--mggc_width_floor``'s default: of 0, ½ and ¾, the floor whose MGGC students kept the teacher's
#: quality best on the facades validation split at 10 % of the MACs
#: (``benchmarks/results/game_screen_pix2pix_fast.md``).
DEFAULT_WIDTH_FLOOR = 0.75
#: The prune phase's copy of ``--mggc_latency_table``, which the finetune phase finalises by.
LATENCY_TABLE = "mggc_latency_table.json"
#: What the finetune phase writes (and ``test.py``/``mggc export`` read), stale once G is pruned
#: again; ``<epoch>_net_G.pth``/``_net_D.pth`` are upstream's names for the slim pair's weights.
FINETUNE_PRODUCTS = ("*_slim_G.pt", "*_slim_D.pt", "*_net_G.pth", "*_net_D.pth", "*_net_KD.pth",
                     "*_mggc_finetune.pt", REPORT_NAME)
#: What the prune phase writes besides the run record: the game's states and agents, a
#: baseline's masks, or a supernet's state and networks.
PRUNE_PRODUCTS = ("*_mggc_pruner.pt", "*_net_gen_G.pth", "*_net_gen_D.pth", "*_mggc_masks.pt", "*_mggc_rng.pt",
                  "*_mggc_supernet.pt", "*_net_supernet_G.pth", "*_net_supernet_D.pth", LATENCY_TABLE)
#: Where ``--mggc_restart`` moves an earlier run's products, inside the run folder.
SUPERSEDED = "superseded_{time}"


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
    _add(parser, "--mggc_encoder", choices=ENCODER_CHOICES, default="auto",
         help="MGGC: encoder E of Eq. 1. auto (default): swav when --mggc_swav_checkpoint is given, else inception. "
              "swav: SwAV fine-tuned on the real targets (the paper), from the checkpoint or from scratch; "
              "inception: the frozen FID Inception network, nothing to train")
    _add(parser, "--mggc_swav_checkpoint", type=str, default=None,
         help="MGGC: SwAV weights to start E from (official layout, e.g. swav_800ep_pretrain.pth.tar); with "
              "--mggc_encoder auto this selects SwAV. Without it --mggc_encoder swav trains from scratch")
    _add(parser, "--mggc_swav_arch", choices=SWAV_ARCHS, default=SwAVConfig.arch, help="MGGC: SwAV backbone")
    _add(parser, "--mggc_swav_epochs", type=int, default=SwAVConfig.epochs, help="MGGC: SwAV training epochs")
    _add(parser, "--mggc_swav_batch_size", type=int, default=SwAVConfig.batch_size,
         help="MGGC: SwAV batch size (lowered to the number of real target images when there are fewer)")
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
    _add(parser, "--mggc_phase", choices=PHASES, default="all",
         help="MGGC: all (default): one run, the pruning game for --mggc_prune_epochs epochs, then slim G and D and "
              "finetune them for the remaining epochs; prune: only train the agents gen_G/gen_D on the frozen "
              "teacher; finetune: slim G and D by the agents' final architecture and train them")
    _add(parser, "--mggc_prune_epochs", type=int, default=None,
         help="MGGC: --mggc_phase all: epochs of the pruning game before finetuning (default: 10%% of the teacher's "
              "n_epochs + n_epochs_decay in its train_opt.txt, at least 1, as the paper)")
    add_teacher_options(parser)
    add_neighborhood_options(parser)
    _add(parser, "--mggc_target_macs", type=float, default=None,
         help="MGGC: fraction of the teacher generator's total MACs to keep, e.g. 0.05 (prune phase)")
    _add(parser, "--mggc_target_latency_ms", type=float, default=None,
         help="MGGC (beyond the paper): budget the game by latency instead of MACs: the slim G's latency in ms on "
              "the machine and runtime of --mggc_latency_table, in place of --mggc_target_macs (--mggc_method mggc)")
    _add(parser, "--mggc_latency_table", type=str, default=None,
         help="MGGC: the teacher G's latency table, measured on the target device with `mggc latency-table` "
              "(same --netG/--ngf/--norm/--no_dropout, --size = --crop_size); needed by --mggc_target_latency_ms "
              "and --mggc_widths fastest")
    _add(parser, "--mggc_method", choices=METHODS, default="mggc",
         help="MGGC: prune phase: mggc (the pruning game on neighbourhoods); a baseline without game and "
              "neighbourhoods that prunes G to --mggc_target_macs at once, keeping D: l1_norm (Li et al. 2017, "
              "the highest-L1 filters at a uniform keep-rate) or uniform (the first channels at a uniform rate); "
              "or a supernet trained on the teacher's data, whose widths the finetune phase searches under "
              "--mggc_target_macs: gan_compression (GAN Compression: GAN + L1 + feature distillation) or agd "
              "(AutoGAN-Distiller's objective: no discriminator, in the supernet nor in the finetuning)")
    _add(parser, "--mggc_lambda_R", type=float, default=3.0, help="MGGC: λ1, weight of the MACs budget R (Eq. 5)")
    _add(parser, "--mggc_lambda_L", type=float, default=0.1, help="MGGC: λ2, weight of D's sparsity L (Eq. 6)")
    _add(parser, "--mggc_agent_lr", type=float, default=MGGCConfig.lr,
         help="MGGC: AdamW learning rate of the agents, constant over the prune phase")
    _add(parser, "--mggc_ablation", choices=tuple(ABLATIONS), default="mggc",
         help="MGGC: Table 2 row (mggc is the full method)")
    _add(parser, "--mggc_seed", type=int, default=MGGCConfig.seed,
         help="MGGC: seed of the agents and their noise, and of torch's and Python's random numbers at the start of "
              "a training run (not when continuing one: the saved states are restored), so that a run repeats on "
              "the CPU")
    _add(parser, "--mggc_lambda_rec", type=float, default=DEFAULT_LAMBDA_REC,
         help="MGGC (beyond the paper): weight of a teacher-fidelity term |G(x; v_G) - y'|_1 in gen_G's objective, "
              "which keeps gen_G learning when D stops telling the teacher's samples from G's (0: off, the paper's "
              f"game; default {DEFAULT_LAMBDA_REC:g}, the facades benchmark's winner)")
    _add(parser, "--mggc_min_keep_D", type=float, default=MGGCConfig.min_keep_D,
         help="MGGC (beyond the paper): floor on the fraction of D's channels gen_D keeps (0: none)")
    _add(parser, "--mggc_final_window", type=int, default=MGGCConfig.final_window,
         help="MGGC (beyond the paper): cut the final architecture from the agents' logits averaged over the last "
              "N steps of the game (1: the last state, the paper)")
    _add(parser, "--mggc_no_refill", action="store_true",
         help="MGGC: leave G at the agents' rounded and trimmed widths, often below --mggc_target_macs (the paper). "
              "By default (beyond the paper) G's dropped channels are added back by keep-logit until the budget is "
              "met, so the student lands at --mggc_target_macs")
    _add(parser, "--mggc_cost_lr", action="store_true",
         help="MGGC (beyond the paper): cost-aware gen_G: each channel group's own parameters learn at the agent's "
              "rate times the MACs one of its channels costs, relative to the costliest group's")
    _add(parser, "--mggc_gates", choices=GATES, default=MGGCConfig.gates,
         help="MGGC: how the game samples architectures: paper (Eq. 3-4 as written: Gumbel noise on the drop side, "
              "G and D gated by the rounded vectors) or authors (beyond the paper's text, as the authors' earlier "
              "hypernetwork: noise on the keep side, G and D gated by the soft vectors, R and L counting their "
              "rounding)")
    _add(parser, "--mggc_baseline_lr", type=float, default=MGGCConfig.baseline_lr,
         help="MGGC: AdamW learning rate of the logit vectors of Table 2's Baseline and d_pruning rows "
              "(--mggc_ablation baseline|d_pruning), which reaches the budget within a few hundred steps")
    _add(parser, "--mggc_prune_epoch", type=str, default="latest",
         help="MGGC: which saved pruning state (<epoch>_mggc_pruner.pt) the finetune phase slims by")
    _add(parser, "--mggc_round_to", type=int, default=None,
         help=f"MGGC: finetune phase: round every kept width to a multiple of this (1 keeps the agents' widths). "
              f"Default: {ROUND_TO} when --ngf >= {ROUND_TO_MIN_NGF} (such widths run closer to the MAC ratio's "
              f"speed-up), else 1. With any other --mggc_method it applies in the prune phase, which chooses the "
              f"widths (l1_norm, uniform) or the supernet's candidate widths (gan_compression, agd)")
    _add(parser, "--mggc_widths", choices=WIDTHS, default="game",
         help="MGGC: finetune phase after the game: how many channels each group of G keeps. game (default): the "
              "agents' final architecture; fastest (beyond the paper): the widths within the game's MAC budget that "
              "--mggc_latency_table estimates fastest on its device, no group below --mggc_width_floor of its "
              "uniform width, each group keeping its channels of highest keep-logit")
    _add(parser, "--mggc_width_floor", type=float, default=DEFAULT_WIDTH_FLOOR,
         help=f"MGGC: --mggc_widths fastest: the share of its uniform width (L1-norm's at the same budget) below "
              f"which no group falls, in [0, 1] (default {DEFAULT_WIDTH_FLOOR:g}, chosen on a facades validation "
              f"split: 0 lets the latency table narrow the encoder to --mggc_round_to channels and costs quality)")
    _add(parser, "--mggc_search_candidates", type=int, default=200,
         help="MGGC: finetune phase after --mggc_method gan_compression|agd: how many width configurations within "
              "90-100%% of the budget the random search scores (L1 to the teacher on held-out training images)")
    _add(parser, "--mggc_lambda_perceptual", type=float, default=AGDConfig.lambda_perceptual,
         help="MGGC: finetune phase after --mggc_method agd: weight of the perceptual term (L1 between FID "
              "Inception feature maps of G(x) and of the teacher's output; 0: off, no Inception network loaded)")
    _add(parser, "--mggc_lambda_tv", type=float, default=AGDConfig.lambda_tv,
         help="MGGC: finetune phase after --mggc_method agd: weight of the total variation of G(x)")
    _add(parser, "--mggc_kd", action="store_true",
         help="MGGC: finetune phase: add feature distillation from the teacher through learned 1x1 adapters")
    _add(parser, "--mggc_lambda_kd", type=float, default=1.0, help="MGGC: weight of the --mggc_kd term")
    _add(parser, "--mggc_kd_at", choices=KD_AT, default=FinetuneConfig.kd_at,
         help="MGGC: where --mggc_kd taps each channel group: root (the root convolution's output, before its "
              "norm) or norm (beyond the paper: the normalisation layer's output, as GAN Compression distils)")
    _add(parser, "--lambda_L1", type=float, default=spec.lambda_L1,
         help="finetune phase: weight of the L1 term (to the ground truth for pix2pix, to the teacher's output "
              "for CycleGAN)")
    _add(parser, "--mggc_restart", action="store_true",
         help="MGGC: prune again in a --name that holds the slim networks of an earlier finetune phase (refused "
              "without this flag, as they would go stale): the earlier run's pruning state and slim networks are "
              "moved into <checkpoints_dir>/<name>/superseded_<time>/, never deleted. With --continue_train only "
              "the slim networks are moved and the game continues")
    known = parser.parse_known_args()[0]
    check_run_folder(known)
    check_earlier_run(known)
    parser.set_defaults(gan_mode=teacher_gan_mode(known, spec), mggc_round_to=default_round_to(known.ngf),
                        mggc_base_mode=spec.teacher.dataset_mode,
                        dataset_mode="neighborhood" if plays_game(known) else spec.teacher.dataset_mode)
    return parser


def default_round_to(ngf: int) -> int:
    """``--mggc_round_to``'s default: :data:`ROUND_TO` for generators of ``ngf >= ROUND_TO_MIN_NGF``
    (every upstream default), 1 for narrower ones, where a step of 8 channels would be too coarse a
    share of the narrowest group (``ngf`` channels) to meet small budgets."""
    return ROUND_TO if ngf >= ROUND_TO_MIN_NGF else 1


def teacher_gan_mode(opt: argparse.Namespace, spec: GanSpec) -> str:
    """The default ``--gan_mode``: the one the teacher was trained with (its ``train_opt.txt``),
    so that the game's f_D/f_G and the finetuning read its D's logits on the scale D learnt
    (upstream trains pix2pix with ``vanilla``: under hinge, ``relu(1 + D(fake))`` is 0 on 88 %
    of the facades teacher's patches, ``DESIGN.md``); the paper's choice for the model (hinge for
    pix2pix, lsgan for CycleGAN) when the teacher's options are not there. ``--gan_mode``
    overrides it."""
    name = getattr(opt, "teacher_name", None)
    if name:
        opt_file = Path(opt.checkpoints_dir) / name / "train_opt.txt"
        if opt_file.is_file():
            mode = read_train_opt(opt_file).get("gan_mode")
            if mode in GAN_MODES:
                return mode
    return spec.gan_mode


def plays_game(opt: argparse.Namespace) -> bool:
    """Whether this run plays the pruning game (which trains on neighbourhoods): the prune phase,
    or the one-run ``all``, of ``--mggc_method mggc``."""
    return opt.mggc_phase in ("prune", "all") and opt.mggc_method == "mggc"


def check_run_folder(opt: argparse.Namespace) -> None:
    """Refuse a training ``--name`` whose folder is the teacher's or another experiment's. Called
    while the options are parsed, before upstream writes ``train_opt.txt`` into that folder."""
    run = Path(opt.checkpoints_dir) / opt.name
    if opt.teacher_name and os.path.realpath(run) == os.path.realpath(Path(opt.checkpoints_dir) / opt.teacher_name):
        raise MGGCUserError(f"--name {opt.name} is the teacher's folder: MGGC never writes there; give this run "
                            f"another --name")
    if run.is_dir() and not (run / RUN_RECORD).is_file() and any(run.glob("*_net_*.pth")):
        raise MGGCUserError(f"{run} holds another experiment's networks and no MGGC run ({RUN_RECORD}): give this run "
                            f"another --name (upstream would overwrite that experiment's train_opt.txt)")


def _matching(run_dir: Path, patterns: Tuple[str, ...]) -> List[Path]:
    # In the order of the patterns (what a user looks for first comes first).
    files = sorted(p for p in run_dir.iterdir() if p.is_file()) if run_dir.is_dir() else []
    return [p for pat in patterns for p in files if fnmatch.fnmatch(p.name, pat)]


def earlier_products(run_dir: Path, continue_train: bool) -> List[Path]:
    """The files of an earlier run in ``run_dir`` that a new prune phase leaves stale: the
    finetune phase's (:data:`FINETUNE_PRODUCTS`), and unless the game is continued
    (``continue_train``) the prune phase's (:data:`PRUNE_PRODUCTS`)."""
    return _matching(run_dir, FINETUNE_PRODUCTS + (() if continue_train else PRUNE_PRODUCTS))


def check_earlier_run(opt: argparse.Namespace) -> None:
    """Refuse a prune phase (or a new one-run ``all``) in a ``--name`` holding the slim networks of
    an earlier finetune phase, which it would leave stale (``test.py`` and ``mggc export`` would
    go on using them), unless ``--mggc_restart`` asks to move the earlier run's products aside.
    An earlier game's own files are overwritten by the new game, as upstream overwrites a run's
    checkpoints. Called while the options are parsed, before upstream writes anything."""
    if opt.mggc_phase == "finetune" or opt.mggc_restart or (opt.mggc_phase == "all" and opt.continue_train):
        return  # a continued one-run ``all`` goes on with its own products
    run_dir = Path(opt.checkpoints_dir) / opt.name
    stale = _matching(run_dir, FINETUNE_PRODUCTS)
    if not stale:
        return
    doing = "continuing the pruning game" if opt.continue_train else "a new pruning game"
    names = ", ".join(p.name for p in stale[:4]) + (f" and {len(stale) - 4} more" if len(stale) > 4 else "")
    raise MGGCUserError(f"--name {opt.name} holds the slim networks of an earlier finetune phase ({names}), which "
                        f"{doing} would leave stale (test.py and mggc export would go on using them): give this run "
                        f"another --name, or pass --mggc_restart to move them into "
                        f"{run_dir / SUPERSEDED.format(time='<time>')}/")


def check_architecture(opt: argparse.Namespace) -> None:
    """The networks must be ones :mod:`mggc_plugin.networks` builds (it traces and slims them)."""
    for flag, value, choices in (("--netG", opt.netG, networks.GENERATORS), ("--norm", opt.norm, networks.NORMS)):
        if value not in choices:
            raise MGGCUserError(f"{flag} {value}: MGGC compresses upstream's own architectures; choose one of "
                                f"{', '.join(choices)}")
    if opt.isTrain and opt.netD not in networks.DISCRIMINATORS:
        raise MGGCUserError(f"--netD {opt.netD}: choose one of {', '.join(networks.DISCRIMINATORS)}")


def check_train_options(opt: argparse.Namespace) -> None:
    """Values the phases cannot work with, each named with its fix."""
    check_architecture(opt)
    if opt.gan_mode not in GAN_MODES:
        raise MGGCUserError(f"--gan_mode {opt.gan_mode}: MGGC's objectives are {', '.join(GAN_MODES)} (paper: hinge "
                            f"for pix2pix, lsgan for CycleGAN)")
    if opt.mggc_phase in ("prune", "all"):
        if not opt.teacher_name:
            raise MGGCUserError(f"--mggc_phase {opt.mggc_phase} needs the teacher: pass --teacher_name <its experiment "
                                f"name in {opt.checkpoints_dir}>")
        if opt.mggc_target_latency_ms is not None:
            check_latency_options(opt)
        elif opt.mggc_target_macs is None or not 0 < opt.mggc_target_macs <= 1:
            given = "None" if opt.mggc_target_macs is None else f"{opt.mggc_target_macs:g}"
            raise MGGCUserError(f"--mggc_target_macs {given}: give the fraction of the teacher's MACs "
                                f"to keep, in (0, 1], e.g. 0.05")
        if plays_game(opt) and opt.dataset_mode != "neighborhood":
            raise MGGCUserError(f"--dataset_mode {opt.dataset_mode}: the prune phase trains on teacher outputs and "
                                f"their neighbours; use --dataset_mode neighborhood (the default of this phase)")
        if opt.mggc_phase == "all" and opt.mggc_method in SUPERNET_METHODS:
            raise MGGCUserError(f"--mggc_method {opt.mggc_method} trains a supernet in the prune phase and searches "
                                f"it in the finetune phase: run --mggc_phase prune, then --mggc_phase finetune "
                                f"(--mggc_phase all plays MGGC's game only)")
        if opt.mggc_phase == "all" and opt.mggc_method != "mggc":
            raise MGGCUserError(f"--mggc_method {opt.mggc_method} prunes at once, without a game: run --mggc_phase "
                                f"prune, then --mggc_phase finetune")
        if opt.mggc_phase == "all" and opt.mggc_prune_epochs is not None and opt.mggc_prune_epochs < 1:
            raise MGGCUserError(f"--mggc_prune_epochs {opt.mggc_prune_epochs}: the game needs at least 1 epoch "
                                f"(leave it out for 10% of the teacher's epochs)")
        if not plays_game(opt) and opt.dataset_mode == "neighborhood":
            raise MGGCUserError(f"--dataset_mode neighborhood: --mggc_method {opt.mggc_method} needs no "
                                f"neighbourhoods; leave --dataset_mode out (the teacher's own is the default)")
    if opt.mggc_round_to < 1:
        raise MGGCUserError(f"--mggc_round_to {opt.mggc_round_to}: use 1 (the agents' widths) or e.g. 8")
    if opt.lambda_L1 < 0 or opt.mggc_lambda_kd < 0:
        raise MGGCUserError(f"--lambda_L1 {opt.lambda_L1}, --mggc_lambda_kd {opt.mggc_lambda_kd}: weights must be >= 0")
    if opt.mggc_phase == "finetune":
        check_supernet_options(opt)
    if opt.mggc_widths == "fastest":
        check_fastest_options(opt)


def check_fastest_options(opt: argparse.Namespace) -> None:
    """``--mggc_widths fastest``: the game's method, a MAC budget, a floor in [0, 1] and a table file."""
    if opt.mggc_method != "mggc":
        raise MGGCUserError(f"--mggc_widths fastest cuts the pruning game's channels; --mggc_method "
                            f"{opt.mggc_method} chooses its own widths")
    if opt.mggc_target_latency_ms is not None:
        raise MGGCUserError(f"--mggc_widths fastest spends a MAC budget where the table says time is cheap; with "
                            f"--mggc_target_latency_ms {opt.mggc_target_latency_ms:g} the game already budgets "
                            f"the latency: leave one of them out")
    if not 0 <= opt.mggc_width_floor <= 1:
        raise MGGCUserError(f"--mggc_width_floor {opt.mggc_width_floor:g}: give the share of each group's uniform "
                            f"width it keeps at least, in [0, 1] (default {DEFAULT_WIDTH_FLOOR:g})")
    _check_table_file(opt)


def check_supernet_options(opt: argparse.Namespace) -> None:
    """The finetune phase's options for the supernet methods' students: the search and AGD's
    objective (read only after a prune phase of ``--mggc_method gan_compression|agd``)."""
    if opt.mggc_search_candidates < 1:
        raise MGGCUserError(f"--mggc_search_candidates {opt.mggc_search_candidates}: the search scores at least one "
                            f"configuration (default 200)")
    if opt.mggc_lambda_perceptual < 0 or opt.mggc_lambda_tv < 0:
        raise MGGCUserError(f"--mggc_lambda_perceptual {opt.mggc_lambda_perceptual}, --mggc_lambda_tv "
                            f"{opt.mggc_lambda_tv}: weights must be >= 0 (AGD: 1 and 1e-7)")


def check_neighborhood_options(opt: argparse.Namespace) -> None:
    """What ``--dataset_mode neighborhood`` needs."""
    if not getattr(opt, "teacher_name", None):
        raise MGGCUserError("--dataset_mode neighborhood computes the teacher's outputs: pass --teacher_name")
    if "resize" not in opt.preprocess:
        raise MGGCUserError(f"--preprocess {opt.preprocess}: the teacher's outputs are cached at --crop_size and "
                            f"resized with x, so x must be resized too; use --preprocess resize_and_crop "
                            f"(default) or resize")
    if opt.mggc_k < 1:
        raise MGGCUserError(f"--mggc_k {opt.mggc_k}: need at least one neighbour (paper: 5)")
    if opt.mggc_swav_epochs < 0 or opt.mggc_swav_batch_size < 2 or opt.mggc_swav_prototypes < 1 \
            or min(opt.mggc_swav_crops) < 1:
        raise MGGCUserError(f"--mggc_swav_epochs {opt.mggc_swav_epochs} --mggc_swav_batch_size "
                            f"{opt.mggc_swav_batch_size} --mggc_swav_prototypes {opt.mggc_swav_prototypes} "
                            f"--mggc_swav_crops {' '.join(map(str, opt.mggc_swav_crops))}: SwAV needs epochs >= 0, a "
                            f"batch size >= 2, at least one prototype and crops of at least 1 pixel")


def check_latency_options(opt: argparse.Namespace) -> None:
    """A latency budget: one budget, the game's method, a positive value and a table file."""
    if opt.mggc_target_macs is not None:
        raise MGGCUserError(f"--mggc_target_macs {opt.mggc_target_macs:g} and --mggc_target_latency_ms "
                            f"{opt.mggc_target_latency_ms:g}: give one budget")
    if opt.mggc_method != "mggc":
        raise MGGCUserError(f"--mggc_target_latency_ms budgets the pruning game; --mggc_method {opt.mggc_method} "
                            f"takes --mggc_target_macs")
    if not opt.mggc_target_latency_ms > 0:
        raise MGGCUserError(f"--mggc_target_latency_ms {opt.mggc_target_latency_ms:g}: give a positive latency in ms")
    _check_table_file(opt)


def _check_table_file(opt: argparse.Namespace) -> None:
    if not opt.mggc_latency_table or not Path(opt.mggc_latency_table).is_file():
        raise MGGCUserError(f"--mggc_latency_table {opt.mggc_latency_table}: no such file; measure the teacher G's "
                            f"table on the target device with `mggc latency-table --netG {opt.netG} --ngf {opt.ngf} "
                            f"--norm {opt.norm} --size {opt.crop_size}` and pass its JSON")


def check_game_options(opt: argparse.Namespace) -> None:
    """The pruning game's own options (Eq. 2, 5, 6): what :class:`MGGCConfig` would refuse, named
    by their flags."""
    if not opt.mggc_agent_lr > 0 or not opt.mggc_lambda_R >= 0 or not opt.mggc_lambda_L >= 0:
        raise MGGCUserError(f"--mggc_agent_lr {opt.mggc_agent_lr} --mggc_lambda_R {opt.mggc_lambda_R} --mggc_lambda_L "
                            f"{opt.mggc_lambda_L}: the agents' learning rate must be positive, the weights λ1 and λ2 "
                            f">= 0 (paper: 3.0 and 0.1)")
    if opt.mggc_lambda_rec < 0 or not 0 <= opt.mggc_min_keep_D < 1 or opt.mggc_final_window < 1:
        raise MGGCUserError(f"--mggc_lambda_rec {opt.mggc_lambda_rec} --mggc_min_keep_D {opt.mggc_min_keep_D} "
                            f"--mggc_final_window {opt.mggc_final_window}: the weight must be >= 0, the floor in "
                            f"[0, 1), the window at least 1 step")
    if not opt.mggc_baseline_lr > 0:
        raise MGGCUserError(f"--mggc_baseline_lr {opt.mggc_baseline_lr}: give a positive learning rate")


def swav_config(opt: argparse.Namespace) -> SwAVConfig:
    """SwAV's configuration from the ``--mggc_swav_*`` options."""
    return swav_config_from_flags(opt, prefix="mggc_")


def pruner_config(opt: argparse.Namespace, spec: GanSpec) -> MGGCConfig:
    """The pruning game's configuration (Eq. 2, 5, 6) from the options."""
    latency = opt.mggc_target_latency_ms
    return MGGCConfig(target_macs=opt.mggc_target_macs if latency is None else None, target_latency_ms=latency,
                      gan_mode=opt.gan_mode,
                      conditional_D=spec.teacher.conditional_D, lambda1=opt.mggc_lambda_R, lambda2=opt.mggc_lambda_L,
                      lr=opt.mggc_agent_lr, ablation=opt.mggc_ablation, seed=opt.mggc_seed,
                      baseline_lr=opt.mggc_baseline_lr, lambda_rec=opt.mggc_lambda_rec, min_keep_D=opt.mggc_min_keep_D,
                      final_window=opt.mggc_final_window, refill=not opt.mggc_no_refill,
                      cost_lr=opt.mggc_cost_lr, gates=opt.mggc_gates)


def finetune_config(opt: argparse.Namespace, spec: GanSpec) -> FinetuneConfig:
    """The finetune objective from the options (upstream's ``--lr``/``--beta1``/``--gan_mode``)."""
    return FinetuneConfig(gan_mode=opt.gan_mode, conditional_D=spec.teacher.conditional_D, lambda_L1=opt.lambda_L1,
                          lambda_kd=opt.mggc_lambda_kd if opt.mggc_kd else 0.0, kd_at=opt.mggc_kd_at, lr=opt.lr,
                          beta1=opt.beta1)
