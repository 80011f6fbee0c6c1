"""The facades benchmark's tasks, teachers and data: what every method's student is made from
and evaluated on (see :mod:`facades`).

Two tasks, each against a teacher trained by upstream (pytorch-CycleGAN-and-pix2pix):

* ``pix2pix`` — labels → photo at 128², ``unet_128`` ngf 32 (``../shared/teachers/
  facades_pix2pix_unet128_ngf32``), evaluated on the 106 test pairs;
* ``cycle_gan`` — photo → labels (G_A) at 64², ``resnet_6blocks`` ngf 32, trained unpaired
  (``../shared/teachers/facades_cycle_gan_res6_ngf32_64``), evaluated on the 106 test photos.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch
from torch import nn
from tqdm import tqdm

from mggc_plugin.data import DatasetSpec, Preprocess
from mggc_plugin.fileio import atomic_write, atomic_write_json
from mggc_plugin.teacher import inference_copy, read_train_opt
from mggc_plugin.upstream.compat import cpu_flags
from mggc_plugin.upstream.specs import SPECS, GanSpec


@dataclass(frozen=True)
class Task:
    """One benchmark: the MGGC model whose objective it uses (``spec``), the shared teacher
    folder's name, the upstream ``train.py`` arguments that trained that teacher (its README)
    and its epochs (``--n_epochs``, ``--n_epochs_decay``), whether the teacher trained on an
    unpaired split, the file-name suffix of the results, which half of the facades ``A|B``
    files holds the task's targets (``left``: photos, ``right``: label maps) and, for label-map
    outputs, the number of label classes (CMP Facades: 12) that pixel accuracy and mIoU use."""

    spec: GanSpec
    teacher: str
    train_args: Tuple[str, ...]
    epochs: Tuple[int, int]
    unpaired: bool
    suffix: str
    target_half: str
    label_classes: Optional[int] = None


TASKS: Dict[str, Task] = {
    "pix2pix": Task(SPECS["mggc_pix2pix"], "facades_pix2pix_unet128_ngf32", (
        "--model", "pix2pix", "--direction", "BtoA", "--netG", "unet_128", "--ngf", "32", "--ndf", "32",
        "--load_size", "143", "--crop_size", "128"), (40, 40), False, "", "left"),
    "cycle_gan": Task(SPECS["mggc_cycle_gan"], "facades_cycle_gan_res6_ngf32_64", (
        "--model", "cycle_gan", "--netG", "resnet_6blocks", "--ngf", "32", "--ndf", "32", "--load_size", "72",
        "--crop_size", "64"), (10, 10), True, "_cycle_gan", "right", 12),
}


def teacher_options(folder: Path) -> argparse.Namespace:
    """The teacher's upstream options (``train_opt.txt``) with the types upstream parses them to."""
    raw = read_train_opt(folder / "train_opt.txt")
    ints = ("ngf", "ndf", "n_layers_D", "input_nc", "output_nc", "load_size", "crop_size", "n_epochs",
            "n_epochs_decay", "batch_size")
    return argparse.Namespace(**{**raw, **{k: int(raw[k]) for k in ints}, "no_dropout": raw["no_dropout"] == "True"})


def ensure_teacher(task: Task, folder: Path, dataroot: Path, work: Path, upstream: Optional[str],
                   device: str, epochs: Optional[int] = None) -> Path:
    """``folder`` if it holds the teacher; else train it with upstream into ``<work>/checkpoints``
    (``epochs``: fewer than the README's, split evenly into constant and decaying epochs)."""
    G_file = folder / f"latest_net_{task.spec.teacher.G}.pth"
    if G_file.is_file():
        return folder
    trained = work / "checkpoints" / task.teacher
    if (trained / G_file.name).is_file():
        return trained
    if not upstream:
        raise FileNotFoundError(f"no teacher at {G_file}: pass --teacher with the folder of an upstream "
                                f"{task.spec.teacher.model} run, or --upstream <checkout> to train one")
    data = dataroot
    if task.unpaired:
        data = write_unpaired(dataroot, work / "facades_unpaired")
    keep, decay = task.epochs if epochs is None else ((epochs + 1) // 2, epochs // 2)
    cmd = [sys.executable, "train.py", "--dataroot", str(data), "--name", task.teacher,
           "--checkpoints_dir", str(work / "checkpoints"), *task.train_args, "--n_epochs", str(keep),
           "--n_epochs_decay", str(decay), "--save_epoch_freq", str(keep + decay), "--num_threads", "2",
           *([] if device == "cuda" else cpu_flags(upstream, "train"))]
    print(f"training the teacher with upstream: {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, cwd=upstream, check=True)
    return trained


def write_unpaired(dataroot: Path, out: Path) -> Path:
    """The unpaired split the CycleGAN teacher trained on: trainA = photos (left halves),
    trainB = label maps (right halves) shifted by one index, so that no pair lines up."""
    done = out / "done.json"
    if done.is_file():
        return out
    for phase in ("train", "test"):
        sources = DatasetSpec(dataroot, "aligned", "AtoB", phase)
        photos, labels = sources.sources(), sources.targets()
        labels = labels[1:] + labels[:1]
        for side, refs in (("A", photos), ("B", labels)):
            (out / f"{phase}{side}").mkdir(parents=True, exist_ok=True)
            for ref in refs:
                atomic_write(out / f"{phase}{side}" / f"{ref.path.stem}.png",
                             lambda tmp, ref=ref: ref.load().save(tmp, format="PNG"))
    atomic_write_json(done, {"from": str(dataroot)})
    return out


def load_pairs(dataroot: Path, direction: str, phase: str, size: int, limit: Optional[int]
               ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Sources x and targets y of the aligned dataset, resized to ``size``², in [-1, 1]."""
    spec = DatasetSpec(dataroot, "aligned", direction, phase, max_size=limit)
    pre = Preprocess(size)
    sources, targets = spec.sources(), spec.targets()
    x = torch.stack([pre.tensor(r.load(), 3) for r in tqdm(sources, desc=f"{phase} sources", leave=False)])
    y = torch.stack([pre.tensor(r.load(), 3) for r in tqdm(targets, desc=f"{phase} targets", leave=False)])
    return x, y


def random_crops(images: torch.Tensor, idx: torch.Tensor, crop: int, g: torch.Generator) -> torch.Tensor:
    """Upstream's training augmentation on preloaded ``load_size`` images: a random ``crop``²
    window and a random horizontal flip per sample (the same for every tensor given the same
    generator state)."""
    size = images.shape[-1]
    out = []
    for i in idx.tolist():
        top, left = torch.randint(size - crop + 1, (2,), generator=g).tolist()
        patch = images[i, :, top:top + crop, left:left + crop]
        out.append(patch.flip(-1) if torch.rand((), generator=g) < 0.5 else patch)
    return torch.stack(out)


@torch.no_grad()
def translate(G: nn.Module, x: torch.Tensor, device: str) -> torch.Tensor:
    """G(x) image by image, rounded to 8 bits as upstream saves results, in [0, 1], on the CPU."""
    G = inference_copy(G).to(device)
    out = torch.cat([G(x[i:i + 1].to(device)).cpu() for i in range(len(x))])
    return ((out.clamp(-1, 1) + 1) * 127.5).round() / 255
