"""Physical slimming and self-describing slim checkpoints (export: :mod:`mggc_plugin.deploy`).

:func:`slim` removes the channels a mask drops with torch-pruning, so the result is a smaller
network (smaller weight tensors, fewer MACs, faster), not a masked one.

A slim checkpoint (:func:`save_slim`) is one ``torch.save`` file of plain containers and tensors,
readable with ``torch.load(weights_only=True)``::

    {"format": "mggc-slim", "version": 1,
     "arch": {"builder": "mggc_plugin.networks:define_G", "kwargs": {...}},
     "input_shape": [1, 3, 256, 256],        # the shape the channel groups were traced at
     "groups": ["model.1", ...],             # each group's root layer, to detect another architecture
     "widths": [48, 96, ...],                # kept channels per group
     "state_dict": {...}}

:func:`load_slim` rebuilds the full architecture with a *registered* builder (it never imports
code a file names), slims it to the stored widths and loads the weights.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Union

import torch
import torch_pruning as tp
from torch import nn

from . import networks
from .channels import ChannelGroups, dependency_graph, traceable
from .errors import MGGCFileNotFoundError, MGGCUserError
from .fileio import atomic_torch_save
from .networks import ArchSpec

FORMAT = "mggc-slim"
VERSION = 1
SLIM_G_NAME = "latest_slim_G.pt"
#: The attribute in which :func:`slim` records the traced input shape, the group roots and the
#: kept widths; read and set by name, as :data:`mggc_plugin.networks.ARCH_ATTR`.
SLIM_ATTR = "mggc_slim"
PathLike = Union[str, Path]

BUILDERS: Dict[str, Callable[..., nn.Module]] = {
    "mggc_plugin.networks:define_G": networks.define_G,
    "mggc_plugin.networks:define_D": networks.define_D,
}


def register_builder(name: str, builder: Callable[..., nn.Module]) -> None:
    """Make ``name`` (the ``builder`` of an :class:`ArchSpec`) loadable by :func:`load_slim`.
    Needed for your own architectures: give the model ``model.mggc_arch = ArchSpec(name, kwargs)``
    before slimming and register the same name before loading."""
    BUILDERS[name] = builder


def _binary_masks(groups: ChannelGroups, masks: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    out = []
    for i, m in enumerate(groups.check(masks, what="masks")):
        if not torch.all((m == 0) | (m == 1)):
            raise ValueError(f"masks[{i}] is not binary: slim() keeps channels whose mask is 1 and drops those "
                             f"whose mask is 0; threshold soft gates first (e.g. gate > 0.5)")
        if not bool(m.any()):
            raise ValueError(f"masks[{i}] drops every channel of group {i} (rooted at {groups[i].root!r}); "
                             f"every group must keep at least one channel")
        out.append(m.bool().cpu())
    return out


def _round_up(groups: ChannelGroups, dg: tp.DependencyGraph, modules: Dict[str, nn.Module],
              masks: List[torch.Tensor], round_to: int) -> List[torch.Tensor]:
    """Grow each mask to a multiple of ``round_to`` kept channels (capped at the group size),
    re-adding the dropped channels of largest group L2 magnitude (torch-pruning's
    GroupMagnitudeImportance), so widths suit vectorised kernels."""
    importance = tp.importance.GroupMagnitudeImportance(p=2)
    out = []
    for group, keep in zip(groups, masks):
        want = min(group.size, math.ceil(int(keep.sum()) / round_to) * round_to)
        missing = want - int(keep.sum())
        if missing > 0:
            root = modules[group.root]
            full = dg.get_pruning_group(root, dg.get_pruner_of_module(root).prune_out_channels, list(range(group.size)))
            score = importance(full).detach().cpu().clone()
            score[keep] = -float("inf")
            keep = keep.clone()
            keep[score.topk(missing).indices] = True
        out.append(keep)
    return out


def slim(model: nn.Module, groups: ChannelGroups, masks: Sequence[torch.Tensor], round_to: int = 1) -> nn.Module:
    """Return a physically slimmed copy of ``model`` keeping, in group i, the channels where
    ``masks[i]`` is 1 (``model`` is unchanged). With ``round_to > 1`` each kept width is rounded
    up to a multiple of it. The copy remembers its architecture and widths for :func:`save_slim`."""
    if round_to < 1:
        raise ValueError(f"round_to={round_to}: use 1 (exact masks) or a positive multiple such as 8")
    masks = _binary_masks(groups, masks)
    small = copy.deepcopy(model)
    modules = dict(small.named_modules())
    with traceable(small):
        dg = dependency_graph(small, groups.input_shape)
        if round_to > 1:
            masks = _round_up(groups, dg, modules, masks, round_to)
        for group, keep in zip(groups, masks):
            drop = (~keep).nonzero().flatten().tolist()
            if drop:
                root = modules[group.root]
                dg.get_pruning_group(root, dg.get_pruner_of_module(root).prune_out_channels, drop).prune()
    setattr(small, SLIM_ATTR, {"input_shape": list(groups.input_shape), "groups": [g.root for g in groups],
                               "widths": [int(k.sum()) for k in masks]})
    return small


def slim_info(model: nn.Module) -> Dict[str, Any]:
    """``model.mggc_slim``: what :func:`slim` recorded (``input_shape``, ``groups``, ``widths``).
    Raises ValueError when ``model`` was not produced by :func:`slim`."""
    info = getattr(model, SLIM_ATTR, None)
    if info is None:
        raise ValueError("the model was not produced by mggc_plugin.slim(): slim it first (masks of all ones keep "
                         "the full width)")
    return info


def save_slim(model: nn.Module, path: PathLike) -> Path:
    """Write ``model`` (a result of :func:`slim`) as a slim checkpoint, atomically."""
    arch = networks.arch_of(model)
    if arch is None:
        raise ValueError("the model has no architecture description (model.mggc_arch): build it with "
                         "mggc_plugin.networks.define_G/define_D, or set model.mggc_arch = ArchSpec(name, kwargs) "
                         "and register_builder(name, fn) for your own architecture")
    info = slim_info(model)
    payload = {"format": FORMAT, "version": VERSION, "arch": arch.to_dict(),
               "input_shape": list(info["input_shape"]), "groups": list(info["groups"]),
               "widths": list(info["widths"]),
               "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
    return atomic_torch_save(payload, path)


def read_slim_checkpoint(path: PathLike) -> dict:
    """Read and validate a slim checkpoint's contents without building anything."""
    path = Path(path)
    if not path.is_file():
        raise MGGCFileNotFoundError(f"no slim checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises many types: zip, pickle, EOF, weights_only refusals
        raise MGGCUserError(f"{path} is not a readable torch file (truncated, corrupt or another format: "
                            f"{type(err).__name__}: {err}); point to a slim checkpoint written by save_slim "
                            f"(*_slim_G.pt), or write it again") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        kind = "a state dict" if isinstance(payload, dict) else type(payload).__name__
        raise MGGCUserError(f"{path} is not a slim checkpoint (it holds {kind}); an upstream *_net_G.pth holds only "
                            f"weights: point to a file written by save_slim (*_slim_G.pt)")
    if payload.get("version") != VERSION:
        raise MGGCUserError(f"{path} is a slim checkpoint of format version {payload.get('version')}, this "
                            f"mggc-plugin reads version {VERSION}: upgrade mggc-plugin")
    return payload


def load_slim(path: PathLike) -> nn.Module:
    """Rebuild the slim network stored at ``path`` (on the CPU, in eval mode). Needs no upstream."""
    payload = read_slim_checkpoint(path)
    arch = ArchSpec(payload["arch"]["builder"], payload["arch"]["kwargs"])
    if arch.builder not in BUILDERS:
        raise MGGCUserError(f"{path} was built by {arch.builder!r}, which is not registered: call "
                            f"mggc_plugin.register_builder({arch.builder!r}, fn) first (load_slim never imports code "
                            f"that a file names)")
    full = BUILDERS[arch.builder](**arch.kwargs)
    networks.set_arch(full, arch)
    shape = tuple(payload["input_shape"])
    groups = ChannelGroups.discover(full, torch.zeros(shape))
    roots = [g.root for g in groups]
    widths = payload["widths"]
    if roots != list(payload["groups"]) or any(not 1 <= w <= g.size for w, g in zip(widths, groups)):
        raise MGGCUserError(f"{path} does not fit the architecture {arch.kwargs}: it has {len(widths)} channel "
                            f"groups with widths {widths}, the rebuilt network has {len(groups)} groups of sizes "
                            f"{groups.sizes}; the checkpoint is for another architecture or was edited")
    masks = [torch.arange(g.size) < w for g, w in zip(groups, widths)]
    model = slim(full, groups, masks)
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as err:
        raise MGGCUserError(f"{path}: the stored weights do not fit the slim architecture rebuilt from it; the file "
                            f"was edited or written by another version:\n{err}") from None
    return model.eval()


def find_slim_checkpoint(path: PathLike) -> Path:
    """``path`` itself if it is a file, else ``path/latest_slim_G.pt`` (a ``checkpoints/<name>``
    folder of a finetuned MGGC run)."""
    path = Path(path)
    if path.is_dir():
        candidate = path / SLIM_G_NAME
        if not candidate.is_file():
            raise MGGCFileNotFoundError(f"{path} holds no {SLIM_G_NAME}: finetune first (--mggc_phase finetune) or "
                                        f"point to a slim checkpoint file")
        return candidate
    if not path.exists():
        raise MGGCFileNotFoundError(f"{path} does not exist: point to a slim checkpoint or a checkpoints/<name> folder")
    return path


def __getattr__(name: str) -> Any:
    """``export`` and ``ExportResult`` moved to :mod:`mggc_plugin.deploy`; imported from there on
    first use (not at import time: ``deploy`` imports this module)."""
    if name in ("export", "ExportResult"):
        from . import deploy

        return getattr(deploy, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
