"""``mggc neighbors``: the neighbourhood file (Eq. 1) and its HTML page from a dataset folder and
an upstream teacher checkpoint, outside upstream."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any, Callable, Dict

from .. import distributed, encoders, networks
from ..data import DATASET_MODES, DIRECTIONS, DatasetSpec, Preprocess, detect_dataset_mode
from ..device import AMP_CHOICES, add_device_argument, amp_dtype, resolve_device
from ..encoders.swav import SwAVConfig
from ..errors import MGGCUserError
from ..neighborhoods.html import write_neighborhood_html
from ..neighborhoods.pipeline import build_neighborhoods
from ..teacher import NORM_STATS, TeacherSpec, read_train_opt

logger = logging.getLogger("mggc_plugin.neighborhoods")

def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``mggc neighbors``. Teacher options left out are read from the
    ``train_opt.txt`` beside the checkpoint (as upstream wrote it), else upstream's defaults."""
    p = parser
    p.add_argument("--dataroot", required=True, help="dataset folder in upstream's layout (aligned: <phase>/ "
                   "with A|B images; unaligned: <phase>A/ and <phase>B/)")
    p.add_argument("--teacher", required=True, help="teacher generator: a *_net_G.pth (or *_net_G_A.pth) file, "
                   "or the checkpoints/<name> folder holding it and train_opt.txt")
    p.add_argument("--out", required=True, help="neighbourhood file to write (e.g. neighbors.pt)")
    p.add_argument("--epoch", default="latest", help="which <epoch>_net_G*.pth when --teacher is a folder")
    p.add_argument("--phase", default="train")
    p.add_argument("--dataset_mode", choices=DATASET_MODES, help="default: from train_opt.txt, else detected")
    p.add_argument("--direction", choices=DIRECTIONS, help="default: from train_opt.txt, else AtoB")
    p.add_argument("--netG", choices=networks.GENERATORS, help="default: from train_opt.txt")
    p.add_argument("--ngf", type=int, help="default: from train_opt.txt, else 64")
    p.add_argument("--norm", choices=networks.NORMS, help="default: from train_opt.txt, else instance")
    p.add_argument("--no_dropout", action="store_const", const=True,
                   help="the teacher has no dropout layers (CycleGAN's default; they shift resnet "
                        "generators' weight names). Default: from train_opt.txt, else dropout")
    p.add_argument("--input_nc", type=int, help="default: from train_opt.txt, else 3")
    p.add_argument("--output_nc", type=int, help="default: from train_opt.txt, else 3")
    p.add_argument("--crop_size", type=int, help="size the sources are resized to, the teacher's training "
                   "crop (default: from train_opt.txt, else 256)")
    p.add_argument("--norm_stats", choices=NORM_STATS, default="per_image",
                   help="teacher BatchNorm at inference: each image's own statistics, as upstream test.py "
                        "without --eval and as --model mggc_* (default; better for pix2pix teachers), or "
                        "running statistics (eval mode); dropout is off either way")
    p.add_argument("--k", type=int, default=5, help="neighbours per sample (paper: 5)")
    p.add_argument("--encoder", choices=encoders.ENCODER_CHOICES, default="auto",
                   help="auto (default): swav when --swav_checkpoint is given, else inception. swav: fine-tuned on "
                        "the real targets (paper), from the checkpoint or from scratch; inception: the frozen FID "
                        "Inception network, nothing to train")
    p.add_argument("--swav_checkpoint", help="SwAV weights to start from (official layout, e.g. "
                   "swav_800ep_pretrain.pth.tar); selects swav under --encoder auto. Without it --encoder swav "
                   "trains from scratch")
    p.add_argument("--swav_arch", choices=encoders.SWAV_ARCHS, default="resnet50")
    p.add_argument("--swav_epochs", type=int, default=SwAVConfig.epochs)
    p.add_argument("--swav_batch_size", type=int, default=SwAVConfig.batch_size,
                   help="lowered to the number of real target images when there are fewer")
    p.add_argument("--swav_lr", type=float, help="peak learning rate (default 0.6·batch/256)")
    p.add_argument("--swav_prototypes", type=int, default=SwAVConfig.n_prototypes,
                   help="prototypes when training from scratch (a checkpoint brings its own)")
    p.add_argument("--swav_crops", type=int, nargs=2, default=list(SwAVConfig.size_crops),
                   metavar=("LARGE", "SMALL"), help="multi-crop resolutions (official: 224 96)")
    p.add_argument("--swav_nmb_crops", type=int, nargs=2, default=list(SwAVConfig.nmb_crops),
                   metavar=("LARGE", "SMALL"), help="crops per resolution (official: 2 6)")
    p.add_argument("--seed", dest="swav_seed", type=int, default=SwAVConfig.seed,
                   help="seed of SwAV's training and of the HTML page's sample of centres")
    p.add_argument("--cache_dir", help="where D'_y, E and E' are cached (default: <out>.cache beside --out)")
    p.add_argument("--batch_size", type=int, default=8, help="teacher inference batch size")
    add_device_argument(p, "the teacher outputs, SwAV's training, the embeddings and the top-k run there; the caches "
                           "are reused on any device")
    p.add_argument("--amp", choices=AMP_CHOICES, default=None,
                   help="mixed precision for SwAV's training and the embeddings: bf16 (CPU or CUDA) or fp16 (CUDA "
                        "only). Default: float32. It changes the embeddings slightly, and with them a few neighbour "
                        "lists; the caches keep float32 and amp results apart")
    p.add_argument("--html", help="HTML page folder (default: <out>.html beside --out)")
    p.add_argument("--html_centres", type=int, default=20, help="centres shown on the HTML page (0: no page)")
    p.add_argument("--no_progress", action="store_true", help="no progress bars")


def _teacher_file(path: Path, epoch: str, opts: Dict[str, str], direction: str) -> Path:
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"--teacher {path} does not exist: pass a *_net_G.pth file or a "
                                "checkpoints/<name> folder")
    names = [f"{epoch}_net_G.pth"]
    if opts.get("model") == "cycle_gan" or not (path / names[0]).is_file():
        # CycleGAN's G_A maps the training direction's source to its target; G_B the reverse.
        trained = opts.get("direction", "AtoB")
        names = [f"{epoch}_net_G_A.pth" if direction == trained else f"{epoch}_net_G_B.pth"]
    for name in names:
        if (path / name).is_file():
            return path / name
    raise FileNotFoundError(f"{path} has no {' or '.join(names)}: check --epoch, or pass the generator file itself")


#: Flags of ``mggc neighbors`` with a lower bound (None: the flag was left out).
_AT_LEAST = (("k", 1), ("batch_size", 1), ("html_centres", 0), ("ngf", 1), ("crop_size", 1), ("swav_epochs", 0),
             ("swav_batch_size", 2), ("swav_prototypes", 1))


def _check_numbers(args: argparse.Namespace) -> None:
    # Before any work: the flags whose values no step can use, each named with its fix.
    wrong = [f"--{name} {getattr(args, name)} (at least {low})" for name, low in _AT_LEAST
             if getattr(args, name) is not None and getattr(args, name) < low]
    if min(args.swav_crops) < 1:
        wrong.append(f"--swav_crops {' '.join(map(str, args.swav_crops))} (at least 1 pixel)")
    if min(args.swav_nmb_crops) < 0 or sum(args.swav_nmb_crops) < 2:
        wrong.append(f"--swav_nmb_crops {' '.join(map(str, args.swav_nmb_crops))} (none negative, 2 or more in all)")
    if wrong:
        raise MGGCUserError(f"{'; '.join(wrong)}: give values in those ranges")


def run(args: argparse.Namespace) -> int:
    """Build the neighbourhood file (and the HTML page) from a dataset folder and a teacher."""
    # Under torchrun every process runs this; they share the work (build_neighborhoods), rank 0
    # writes and logs.
    device = distributed.init_from_env(resolve_device(args.device))
    amp_dtype(args.amp, device)
    _check_numbers(args)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="mggc neighbors: %(message)s")
    logger.setLevel(logging.INFO if distributed.is_main() else logging.WARNING)
    teacher_path = Path(args.teacher)
    opt_file = (teacher_path if teacher_path.is_dir() else teacher_path.parent) / "train_opt.txt"
    opts = read_train_opt(opt_file) if opt_file.is_file() else {}
    if opts:
        logger.info("teacher options from %s", opt_file)

    def option(name: str, default: Any, cast: Callable[[str], Any] = str) -> Any:
        value = getattr(args, name)
        return value if value is not None else (cast(opts[name]) if name in opts else default)

    dataroot = Path(args.dataroot)
    if not dataroot.is_dir():
        raise FileNotFoundError(f"--dataroot {dataroot} is not a folder")
    direction = option("direction", "AtoB")
    if opts.get("model") == "pix2pix" and opts.get("direction") and direction != opts["direction"]:
        raise ValueError(f"--direction {direction}: the pix2pix teacher was trained with --direction "
                         f"{opts['direction']} ({opt_file}); pass --direction {opts['direction']}")
    mode = option("dataset_mode", None) or detect_dataset_mode(dataroot, args.phase)
    netG = option("netG", None)
    if netG is None:
        raise ValueError(f"no --netG given and no train_opt.txt beside {teacher_path}: pass --netG "
                         f"({', '.join(networks.GENERATORS)}) and the other options the teacher was trained with")
    checkpoint = _teacher_file(teacher_path, args.epoch, opts, direction)
    teacher = TeacherSpec(checkpoint, netG, option("ngf", 64, int), option("norm", "instance"),
                          not option("no_dropout", False, lambda v: v == "True"), option("input_nc", 3, int),
                          option("output_nc", 3, int), args.norm_stats)
    preprocess = Preprocess(option("crop_size", 256, int), teacher.input_nc, teacher.output_nc)
    dataset = DatasetSpec(dataroot, mode, direction, args.phase)
    out = Path(args.out)
    cache_dir = Path(args.cache_dir) if args.cache_dir else out.with_name(out.name + ".cache")
    logger.info("teacher %s (%s, ngf %d, %s norm, %s statistics); %s dataset %s, %s, %d²", checkpoint, netG,
                teacher.ngf, teacher.norm, teacher.norm_stats, mode, dataroot, direction, preprocess.size)
    logger.info("device %s%s", device, f", mixed precision {args.amp}" if args.amp else "")
    nb, outputs = build_neighborhoods(dataset, teacher, preprocess, out, cache_dir, args.k, args.encoder,
                                      encoders.swav_config_from_flags(args), args.swav_checkpoint, args.batch_size,
                                      not args.no_progress, device=device, amp=args.amp)
    logger.info("wrote %s: %d samples × k=%d, mean similarity %.3f (encoder %s)", out, len(nb), nb.k,
                nb.similarities.mean().item(), nb.metadata["encoder"]["name"])
    if args.html_centres > 0 and distributed.is_main():
        html_dir = Path(args.html) if args.html else out.with_name(out.name + ".html")
        index = write_neighborhood_html(html_dir, nb, outputs, args.html_centres, args.swav_seed, dataset.sources())
        logger.info("wrote %s", index)
    return 0
