"""``--mggc_method gan_compression|agd`` inside upstream: the once-for-all supernet the prune phase
trains, the file it saves at upstream's save points, and the width search with which the
finetune phase turns it into the slim student.

* **Prune phase** (:class:`~.phases.SupernetPrunePhase`): one :class:`SupernetTrainer` step per
  ``optimize_parameters`` on upstream's own batches (the teacher's dataset mode, no
  neighbourhoods). Candidate widths: :func:`rates_around` the budget at ``--mggc_round_to``.
  ``gan_compression``: GAN + L1 + feature distillation against a copy of the teacher's D, the
  reference's weights per task (:func:`supernet_config`); ``agd``: the same without a
  discriminator (AGD's distillation-guided proxy task). The last ``max(1, n // 10)`` training
  sources (upstream's order) are held out: the supernet never trains on them
  (:func:`split_held_out`).
* **Finetune phase** (:func:`search_student`): :func:`random_search` of
  ``--mggc_search_candidates`` configurations within 90–100 % of ``--mggc_target_macs``, scored
  by the mean L1 between the sub-network's outputs and the teacher's on the held-out sources,
  both run as upstream's ``test.py`` (per-image BatchNorm, no dropout), as the benchmark's default
  score; the best is extracted physically (:func:`extract`). ``gan_compression`` finetunes it
  with the supernet's D and the GAN objective like every other student; ``agd`` with
  :class:`~mggc_plugin.agd.AGDTrainer` and no D.

Nothing here imports upstream.
"""
from __future__ import annotations

import argparse
import copy
import math
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple, Union

import torch
from torch import nn

from ..channels import ChannelGroups
from ..data import DATASET_MODES, DatasetSpec, ImageRef, Preprocess, detect_dataset_mode
from ..errors import MGGCFileNotFoundError, MGGCUserError
from ..fileio import atomic_torch_save, load_torch_file
from ..gan_compression import SupernetConfig, SupernetTrainer, Widths, extract, l1_to_teacher, random_search
from ..slim import slim
from ..teacher import inference_copy
from .specs import GanSpec

STATE_FORMAT = "mggc-upstream-supernet"
STATE_VERSION = 1
#: The search keeps configurations with MACs in [SEARCH_LOW, 1] × the budget (the benchmark's window).
SEARCH_LOW = 0.9


def state_file(run_dir: Path, epoch: str) -> Path:
    """``<epoch>_mggc_supernet.pt``: the supernet's whole training state and its search space."""
    return Path(run_dir) / f"{epoch}_mggc_supernet.pt"


def supernet_config(opt: argparse.Namespace, spec: GanSpec) -> SupernetConfig:
    """The supernet's objective for ``--mggc_method``: the GAN's ``--gan_mode`` and D's input, a
    GAN term only for ``gan_compression``, L1 weighted by ``--lambda_L1`` (the reference's 100 for
    pix2pix, 10 for CycleGAN, this model's defaults), distillation weighted as the reference per
    task (1 paired, 0.01 unpaired), Adam at upstream's ``--lr``/``--beta1``, widths sampled from
    ``--mggc_seed``."""
    paired = spec.teacher.conditional_D  # pix2pix's D is conditional, CycleGAN's is not
    return SupernetConfig(gan_mode=opt.gan_mode, conditional_D=spec.teacher.conditional_D,
                          lambda_gan=0.0 if opt.mggc_method == "agd" else 1.0, lambda_recon=opt.lambda_L1,
                          lambda_distill=1.0 if paired else 0.01, lr=opt.lr, beta1=opt.beta1, seed=opt.mggc_seed)


def training_sources(opt: argparse.Namespace) -> List[ImageRef]:
    """The training sources x_i of upstream's dataset for ``opt``, in its order (the first
    ``--max_dataset_size``)."""
    mode = opt.dataset_mode if opt.dataset_mode in DATASET_MODES else detect_dataset_mode(opt.dataroot, opt.phase)
    limit = opt.max_dataset_size
    max_size = None if limit is None or math.isinf(limit) else int(limit)
    return DatasetSpec(Path(opt.dataroot), mode, opt.direction, opt.phase, max_size).sources()


def split_held_out(sources: Sequence[ImageRef]) -> Tuple[List[ImageRef], List[ImageRef]]:
    """``(train, held_out)``: the last ``max(1, n // 10)`` sources are held out for the search's
    score and never train the supernet (with one source, it is both), as the benchmark's
    validation split."""
    n = len(sources)
    if n < 1:
        raise MGGCUserError("the training set holds no image: check --dataroot and --phase")
    held = max(1, n // 10) if n > 1 else 0
    return (list(sources[:n - held]), list(sources[n - held:])) if held else (list(sources), list(sources))


def path_key(path: Union[str, os.PathLike]) -> str:
    """How a file is compared with upstream's ``A_paths``/``B_paths``: its real path."""
    return os.path.realpath(path)


def held_out_keys(train: Sequence[ImageRef], held_out: Sequence[ImageRef]) -> Set[str]:
    """The files a training step skips: the held-out sources unless they also train (one image)."""
    training = {path_key(r.path) for r in train}
    return {path_key(r.path) for r in held_out} - training


def check_searchable(trainer: SupernetTrainer, target: float, round_to: int) -> None:
    """Refuse a search space holding no configuration within the search's window of the budget
    before any training (draws widths only; nothing is run)."""
    try:
        random_search(trainer.supernet, target, lambda G_sub: 0.0, n=1, low=SEARCH_LOW, max_draws=10_000)
    except ValueError:
        raise MGGCUserError(f"--mggc_target_macs {target:g}: no width configuration of the supernet's candidates "
                            f"(multiples of --mggc_round_to {round_to}) has MACs within {SEARCH_LOW:.0%}-100% of the "
                            f"budget: lower --mggc_round_to or change --mggc_target_macs") from None


def state_payload(method: str, target: float, round_to: int, trainer: SupernetTrainer,
                  held_out: Sequence[ImageRef]) -> Dict[str, Any]:
    """What :func:`state_file` holds: the method, budget and rounding it was trained for, the
    configuration and search space, the held-out sources and :meth:`SupernetTrainer.state_dict`."""
    return {"format": STATE_FORMAT, "version": STATE_VERSION, "method": method, "target_macs": target,
            "round_to": round_to, "config": asdict(trainer.config), "space": trainer.supernet.space,
            "held_out": [[str(r.path), r.half] for r in held_out], "trainer": trainer.state_dict()}


def save_state(path: Path, payload: Dict[str, Any]) -> Path:
    """Write :func:`state_payload`'s result atomically."""
    return atomic_torch_save(payload, path)


def read_state(path: Path, method: str) -> Dict[str, Any]:
    """Read a :func:`state_file` (``weights_only``), refusing one of another format or method."""
    if not path.is_file():
        raise MGGCFileNotFoundError(f"{path} does not exist: the prune phase of --mggc_method {method} saves it (at "
                                    f"--save_epoch_freq epochs and every --save_latest_freq iterations); pass "
                                    f"--mggc_prune_epoch (finetune) or --epoch (--continue_train) with a saved epoch")
    fix = "run the prune phase again (with --mggc_restart)"
    state = load_torch_file(path, "a supernet state", fix)
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT or state.get("version") != STATE_VERSION:
        raise MGGCUserError(f"{path} is not a supernet state this mggc-plugin reads: {fix}")
    if state["method"] != method:
        raise MGGCUserError(f"{path} holds a supernet of --mggc_method {state['method']}, not {method}: continue with "
                            f"--mggc_method {state['method']}, or {fix}")
    return state


def held_out_images(refs: Sequence[ImageRef], size: int, input_nc: int) -> torch.Tensor:
    """The held-out sources as an N×C×size×size batch in [-1, 1] (upstream's resize, no crop)."""
    preprocess = Preprocess(size, input_nc)
    return torch.stack([preprocess.tensor(r.load(), input_nc) for r in refs])


def search_student(path: Path, method: str, G_T: nn.Module, D_T: nn.Module, groups_D: ChannelGroups,
                   example_x: torch.Tensor, candidates: int, seed: int, device: Union[str, torch.device] = "cpu"
                   ) -> Tuple[nn.Module, Optional[nn.Module], ChannelGroups, Dict[str, Any], str]:
    """The student of a supernet method (module docstring): rebuild the supernet saved at
    ``path`` on copies of the teacher pair ``G_T``/``D_T`` (CPU modules, unchanged), search
    ``candidates`` width configurations under its budget with ``seed``, running the networks on
    ``device``, and extract the best. Returns the slim G and the supernet's D as a full-width
    slim network (None for a discriminator-free method), both on the CPU, the supernet's channel
    groups, what the report says of it and a one-line summary."""
    state = read_state(path, method)
    config = SupernetConfig(**state["config"])
    G_dev = copy.deepcopy(G_T).to(device)
    groups = ChannelGroups.discover(G_dev, example_x.to(device))
    space: List[Widths] = state["space"]
    try:
        D_dev = copy.deepcopy(D_T).to(device) if config.lambda_gan > 0 else None
        trainer = SupernetTrainer(G_dev, D_dev, groups, space, config)
        trainer.load_state_dict(state["trainer"])
    except (ValueError, RuntimeError) as err:
        raise MGGCUserError(f"{path} does not fit the teacher's networks ({err}): run the prune phase again (with "
                            f"--mggc_restart)") from None
    trainer.close()
    supernet = trainer.supernet
    refs = [ImageRef(Path(p), half) for p, half in state["held_out"]]
    x = held_out_images(refs, example_x.shape[-1], example_x.shape[1])
    teacher = inference_copy(G_dev)
    with torch.no_grad():
        y_T = torch.cat([teacher(x[i:i + 1].to(device)).cpu() for i in range(len(x))])
    target = float(state["target_macs"])
    try:
        result = random_search(supernet, target, l1_to_teacher(x, y_T), n=candidates, seed=seed, low=SEARCH_LOW)
    except ValueError as err:
        raise MGGCUserError(f"{path}: {err}") from None
    supernet.G.cpu()  # slimming traces on the CPU
    G = extract(supernet, result.widths)
    D = None
    if supernet.D is not None:
        D = slim(supernet.D.cpu(), groups_D, [torch.ones(n, dtype=torch.bool) for n in groups_D.sizes])
    origin = {"supernet_state": str(path), "supernet_steps": trainer.step_count, "round_to": state["round_to"],
              "search": {"method": "random", "candidates": len(result.candidates), "draws": result.draws,
                         "window": [SEARCH_LOW, 1.0], "held_out_images": len(refs), "score": "L1 to the teacher",
                         "best_score": result.score, "widths": result.widths, "seconds": result.seconds}}
    how = (f"{path} ({method}: {trainer.step_count} supernet steps, random search of {len(result.candidates)} "
           f"configurations scored on {len(refs)} held-out images, best L1 to the teacher {result.score:.4f})")
    return G, D, supernet.groups, origin, how
