"""Every difference between the upstream versions MGGC runs against, handled in one place.

Checked versions of junyanz/pytorch-CycleGAN-and-pix2pix:

============================  ======================  =======================================
what                          2021 (00d5574),         2025 (2a7afba)
                              2024 (c3268ed)
============================  ======================  =======================================
device                        ``--gpu_ids``;          no ``--gpu_ids``; ``train.py``/``test.py``
                              ``BaseModel`` derives   set ``opt.device``, ``BaseModel`` copies it
                              ``self.device``         to ``self.device``
``setup()``                   loads ``model_names``   re-initialises every net in ``model_names``
                              when testing or         with ``init_net`` (pretrained weights lost),
                              ``--continue_train``    loads when testing/continuing, moves nets to
                                                      the device, wraps them in DDP under torchrun
``save_networks``             ``net.module`` when     unwraps DDP/``torch.compile``
                              ``gpu_ids`` (assumes
                              DataParallel)
visualizer / CLI              visdom; ``train.py``    no visdom, no ``--display_id``; imports
                              needs ``--display_id    wandb unconditionally
                              0`` without a server
lr scheduler                  stepped at the start    stepped at the end of every epoch
                              of every epoch
============================  ======================  =======================================

How the MGGC models absorb them, without asking which version runs:

- device: ``BaseModel.__init__`` sets ``self.device`` in every version; the models move every
  network they build there themselves (none goes through upstream's ``init_net``).
- ``setup()``: :func:`weights_kept_through_setup` restores, after upstream's ``setup``, the
  weights of every net in ``model_names`` that was not loaded from disk (a no-op where setup
  does not re-initialise); teachers are never in ``model_names``.
- saving: the models write ``<epoch>_net_<name>.pth`` themselves, unwrapped (:func:`unwrap`)
  and atomically, with upstream's file names and state-dict keys (the same in all versions), so
  upstream's loading code reads them in every version.
- several devices: under 2025's torchrun launch (``WORLD_SIZE`` > 1, NCCL) every rank plays the
  game on the batches upstream's ``DistributedSampler`` gives it, with the agents' gradients
  averaged, and finetunes through DDP (:mod:`mggc_plugin.distributed`); 2025's ``setup`` wraps
  the ``model_names`` nets in DDP, which :func:`unwrap_all` undoes (the phases train through
  their own wrappers). 2021/2024 run one process; their ``--gpu_ids 0,1`` (DataParallel, which
  the MGGC models do not use) is refused by :func:`check_processes`.
- CLI flags for running on the CPU: :func:`cpu_flags` (tests and examples).
- schedulers: the prune phase trains its agents at a constant rate (no scheduler); the finetune
  phase follows the running version's scheduling, as upstream's own models do. With 2021/2024,
  ``--n_epochs 1 --n_epochs_decay 0`` therefore finetunes at learning rate 0 (the scheduler is
  stepped before the only epoch): give at least one more epoch, or ``--lr_policy step``.
"""
from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any, Dict, Iterator, List, Union

import torch
from torch import nn

from ..errors import MGGCUserError


def unwrap(net: nn.Module) -> nn.Module:
    """The module itself inside DataParallel/DDP (``.module``) or ``torch.compile`` (``._orig_mod``)."""
    while isinstance(net, (nn.DataParallel, nn.parallel.DistributedDataParallel)) or hasattr(net, "_orig_mod"):
        inner = net.module if hasattr(net, "module") else net._orig_mod
        assert isinstance(inner, nn.Module), f"{type(net).__name__} wraps a {type(inner).__name__}, not a module"
        net = inner
    return net


@contextlib.contextmanager
def weights_kept_through_setup(model, restore: bool) -> Iterator[None]:
    """Around upstream's ``model.setup(opt)``: when ``restore`` (setup does not load the nets from
    disk, i.e. a fresh training run), put back every ``model_names`` net's state as it was before
    setup, undoing 2025's ``init_net`` re-initialisation of pretrained or slimmed weights."""
    saved: Dict[str, Dict[str, torch.Tensor]] = {}
    if restore:
        for name in model.model_names:
            state = unwrap(getattr(model, "net" + name)).state_dict()
            saved[name] = {k: v.detach().clone() for k, v in state.items()}
    yield
    for name, state in saved.items():
        unwrap(getattr(model, "net" + name)).load_state_dict(state)


def device_of(opt: Any) -> str:
    """The device upstream runs its networks on, for the work done before the model exists (the
    neighbourhood dataset): ``opt.device`` where the version sets it (2025), else the first of
    ``--gpu_ids`` (2021/2024; ``-1``: the CPU)."""
    device = getattr(opt, "device", None)
    if device is not None:
        return str(device)
    ids = getattr(opt, "gpu_ids", None) or []
    if isinstance(ids, str):
        ids = [int(i) for i in ids.split(",") if i.strip() and int(i) >= 0]
    return f"cuda:{ids[0]}" if ids else "cpu"


def check_processes(opt: Any) -> None:
    """Refuse ``--gpu_ids`` naming several GPUs (2021/2024: DataParallel in one process): the
    MGGC models run on the first of them only, so the others would sit idle."""
    ids = getattr(opt, "gpu_ids", None) or []
    if len(ids) > 1:
        raise MGGCUserError(f"--gpu_ids {','.join(map(str, ids))}: the MGGC models run on one GPU per process; "
                            f"pass --gpu_ids {ids[0]}, or use several GPUs with upstream 2025 under torchrun "
                            f"(torchrun --nproc_per_node {len(ids)} train.py ...)")


def unwrap_all(model: Any) -> None:
    """Put the plain module back for every net in ``model.model_names`` (2025's ``setup`` wraps
    them in DDP under torchrun; the phases hold the plain modules and train through their own
    wrappers, and an unused DDP wrapper would only keep its buckets alive)."""
    for name in model.model_names:
        setattr(model, "net" + name, unwrap(getattr(model, "net" + name)))


def _defines(path: Path, flag: str) -> bool:
    return path.is_file() and re.search(rf"""['"]{re.escape(flag)}['"]""", path.read_text()) is not None


def cpu_flags(upstream_dir: Union[str, Path], script: str) -> List[str]:
    """The flags ``train.py`` or ``test.py`` of the checkout at ``upstream_dir`` needs to run on
    the CPU without a visdom server: ``--gpu_ids -1`` where the version has ``--gpu_ids``, and,
    for ``train.py``, ``--display_id 0`` where it has visdom (``test.py`` rejects that flag)."""
    if script not in ("train", "test"):
        raise ValueError(f"script {script!r}: train or test")
    options = Path(upstream_dir) / "options"
    flags = ["--gpu_ids", "-1"] if _defines(options / "base_options.py", "--gpu_ids") else []
    if script == "train" and _defines(options / "train_options.py", "--display_id"):
        flags += ["--display_id", "0"]
    return flags
