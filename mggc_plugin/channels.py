"""Prunable channel groups of a conv net, channel gates, and the differentiable MACs T(v).

A *channel group* is a set of output channels that must be pruned together: torch-pruning's
dependency graph couples every layer that produces them (a ResNet trunk: the second
down-sampling conv and the last conv of every residual branch, whose outputs are added) and every
layer that reads them (with concatenation offsets resolved, as in the U-Net). Groups are derived
from the graph of the user's model, never from layer names; groups whose channels reach the
network's output are not prunable and are left out.

The gate vector v of a group (one entry per channel, binary or soft) multiplies the input
channels of every layer that *reads* the group, in a forward pre-hook. That is the tensor the
consumers read, after every bias, norm, activation, padding and residual addition on the way, so
a gated full network computes exactly what the slimmed network computes (norms are per channel
and the activations in between keep zeros), and a gate never sits in front of an affine-free
InstanceNorm, whose scale invariance would zero its gradient.

The same index map drives :meth:`ChannelGroups.macs`, the T(v_G) of the paper's Eq. 5: every
counted layer l has MACs ``c_l · a_in(v) · a_out(v)`` with ``a_in``/``a_out`` the number of its
active input/output channels and ``c_l`` read off the fvcore profile of :func:`count_macs`, so the
differentiable count and the reported count have one source.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Dict, Iterator, List, Sequence, Set, Tuple

import torch
import torch_pruning as tp
from torch import nn

from .macs import COUNTED_LAYERS, count_macs

#: The flag of in-place activations and dropouts, read and set by name: nn.Module's attribute
#: typing covers only tensors and submodules.
_INPLACE = "inplace"


@dataclass(frozen=True)
class ChannelGroup:
    """One prunable group: ``size`` channels, rooted at the producer layer ``root`` (the first
    producer in module order), produced by ``producers`` and read by ``consumers``."""

    root: str
    size: int
    producers: Tuple[str, ...]
    consumers: Tuple[str, ...]


@dataclass(frozen=True)
class CountedLayerWidths:
    """A counted layer of a :class:`ChannelGroups`: its module name, full input and output
    channels, whether it is depthwise, and how many of its input and output channels belong to
    no group (they are never pruned: the image's, the output's)."""

    name: str
    in_channels: int
    out_channels: int
    depthwise: bool
    fixed_in: int
    fixed_out: int


@dataclass(frozen=True)
class _LayerIndex:
    """Where a counted layer's channels come from in the concatenated gate vector ``[v_1, ..., v_G, 1]``
    (the last slot is the constant 1 for channels outside every group)."""

    name: str
    in_index: torch.Tensor
    out_index: torch.Tensor
    coef: float
    depthwise: bool


@contextlib.contextmanager
def traceable(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode (no BatchNorm statistics updated, no dropout) and out-of-place activations for a
    torch-pruning trace; both restored afterwards. In-place ReLU/LeakyReLU after InstanceNorm
    returns a view that hides the norm from the dependency graph."""
    modes = {m: m.training for m in model.modules()}
    inplace: Dict[nn.Module, bool] = {m: getattr(m, _INPLACE) for m in model.modules()
                                      if isinstance(getattr(m, _INPLACE, None), bool)}
    model.eval()
    for m in inplace:
        setattr(m, _INPLACE, False)
    try:
        yield model
    finally:
        for m, training in modes.items():
            m.training = training
        for m, flag in inplace.items():
            setattr(m, _INPLACE, flag)


def dependency_graph(model: nn.Module, input_shape: Sequence[int]) -> tp.DependencyGraph:
    """torch-pruning's dependency graph of ``model`` traced on a zero input (call it inside
    :func:`traceable`). The trace follows autograd, so it runs with gradients on, and with every
    parameter requiring a gradient (a frozen layer would be invisible to it), even when the
    caller is inside ``torch.no_grad()`` or froze the model; the flags are restored."""
    device = next(model.parameters()).device
    flags = {p: p.requires_grad for p in model.parameters()}
    try:
        for p in flags:
            p.requires_grad_(True)
        with torch.enable_grad():
            return tp.DependencyGraph().build_dependency(
                model, example_inputs=torch.zeros(*input_shape, device=device), verbose=False)
    finally:
        for p, flag in flags.items():
            p.requires_grad_(flag)


def _reaches_output(dg: tp.DependencyGraph, group: tp.Group) -> bool:
    # A node without successors is the network's output: if the group's channels flow into one
    # (not merely are read by it), pruning them would change the output's shape.
    return any(len(item.dep.target.outputs) == 0 and dg.is_out_channel_pruning_fn(item.dep.handler)
               for item in group.items)


class ChannelGroups:
    """The prunable channel groups of one model, in module order, for one input shape.

    Use :meth:`discover` to build it. ``sizes`` lists the channels per group; gates and masks are
    always given as one vector per group in that order.
    """

    def __init__(self, model: nn.Module, input_shape: Tuple[int, ...], groups: List[ChannelGroup],
                 layers: List[_LayerIndex], full_macs: float):
        self.model = model
        self.input_shape = input_shape
        self.groups = groups
        self.full_macs = full_macs
        self._layers = layers
        self._coef = torch.tensor([layer.coef for layer in layers], dtype=torch.float64)

    @classmethod
    def discover(cls, model: nn.Module, example_input: torch.Tensor) -> "ChannelGroups":
        """Trace ``model`` on ``example_input`` (only its shape is used) and return its prunable
        groups. The model is left as it was."""
        input_shape = tuple(example_input.shape)
        profile = count_macs(model, input_shape)
        names = {m: n for n, m in model.named_modules()}
        order = {n: i for i, n in enumerate(names.values())}
        with traceable(model):
            dg = dependency_graph(model, input_shape)
            tp_groups = [g for g in dg.get_all_groups(root_module_types=COUNTED_LAYERS) if not _reaches_output(dg, g)]

        found = []
        for g in tp_groups:
            producer_set: Set[str] = set()
            consumer_set: Set[str] = set()
            for item in g.items:
                m = item.dep.target.module
                if isinstance(m, COUNTED_LAYERS):
                    (producer_set if dg.is_out_channel_pruning_fn(item.dep.handler) else consumer_set).add(names[m])
            producers = tuple(sorted(producer_set, key=order.__getitem__))
            found.append((g, ChannelGroup(producers[0], len(g[0].idxs), producers,
                                          tuple(sorted(consumer_set, key=order.__getitem__)))))
        found.sort(key=lambda pair: order[pair[1].root])

        const = sum(group.size for _, group in found)
        index: Dict[str, Dict[str, torch.Tensor]] = {}
        for layer in profile.layers:
            index[layer.name] = {"in": torch.full((layer.in_channels,), const, dtype=torch.long),
                                 "out": torch.full((layer.out_channels,), const, dtype=torch.long)}
        offset = 0
        for g, group in found:
            for item in g.items:
                name = names.get(item.dep.target.module)
                if name not in index:
                    continue
                side = "out" if dg.is_out_channel_pruning_fn(item.dep.handler) else "in"
                index[name][side][torch.as_tensor(item.idxs)] = offset + torch.as_tensor(item.root_idxs)
            offset += group.size

        layers = []
        for layer in profile.layers:
            depthwise = layer.groups > 1 and layer.groups == layer.in_channels == layer.out_channels
            if layer.groups > 1 and not depthwise:
                raise ValueError(f"layer {layer.name!r} is a grouped convolution (groups={layer.groups}); only "
                                 f"dense and depthwise convolutions are supported: leave it out of the model "
                                 f"you prune or make it depthwise")
            per_pair = layer.out_channels * (1 if depthwise else layer.in_channels)
            layers.append(_LayerIndex(layer.name, index[layer.name]["in"], index[layer.name]["out"],
                                      layer.macs / per_pair, depthwise))
        return cls(model, input_shape, [group for _, group in found], layers, profile.total)

    def __len__(self) -> int:
        return len(self.groups)

    def __iter__(self) -> Iterator[ChannelGroup]:
        return iter(self.groups)

    def __getitem__(self, i: int) -> ChannelGroup:
        return self.groups[i]

    @property
    def sizes(self) -> List[int]:
        return [group.size for group in self.groups]

    @property
    def total_channels(self) -> int:
        return sum(self.sizes)

    def check(self, gates: Sequence[torch.Tensor], what: str = "gates") -> List[torch.Tensor]:
        """Validate one vector per group with the group's length; returns them as float tensors."""
        if len(gates) != len(self.groups):
            raise ValueError(f"got {len(gates)} {what} vectors for {len(self.groups)} channel groups: pass one "
                             f"vector per group, in the order of ChannelGroups.sizes = {self.sizes}")
        out = []
        for i, (v, group) in enumerate(zip(gates, self.groups)):
            v = torch.as_tensor(v)
            if v.dim() != 1 or v.numel() != group.size:
                raise ValueError(f"{what}[{i}] has shape {tuple(v.shape)} but group {i} (rooted at "
                                 f"{group.root!r}) has {group.size} channels: pass a vector of length {group.size}")
            out.append(v.float() if not v.is_floating_point() else v)
        return out

    def _concat(self, gates: Sequence[torch.Tensor]) -> torch.Tensor:
        gates = self.check(gates)
        one = torch.ones(1, dtype=gates[0].dtype, device=gates[0].device)
        return torch.cat([*gates, one])

    @contextlib.contextmanager
    def gated(self, gates: Sequence[torch.Tensor]) -> Iterator[None]:
        """Within the block, every forward of the model multiplies each group's channels by its
        gate vector (binary or soft, differentiable) at the input of every layer that reads them.
        The hooks are removed on exit, also on error."""
        v = self._concat(gates)
        modules = dict(self.model.named_modules())
        handles = []

        def hook(multiplier: torch.Tensor):
            def scale(module: nn.Module, args: tuple) -> tuple:
                x = args[0]
                shape = (1, -1) + (1,) * (x.dim() - 2)
                return (x * multiplier.to(x.dtype).view(shape),) + tuple(args[1:])
            return scale

        const = v.numel() - 1
        try:
            for layer in self._layers:
                if bool((layer.in_index != const).any()):
                    multiplier = v[layer.in_index.to(v.device)]
                    handles.append(modules[layer.name].register_forward_pre_hook(hook(multiplier)))
            yield
        finally:
            for h in handles:
                h.remove()

    @property
    def layers(self) -> List[CountedLayerWidths]:
        """Every counted layer (convolution or linear, in module order) with its full widths."""
        return [CountedLayerWidths(layer.name, len(layer.in_index), len(layer.out_index), layer.depthwise,
                                   int((layer.in_index == self.total_channels).sum()),
                                   int((layer.out_index == self.total_channels).sum()))
                for layer in self._layers]

    def widths(self, gates: Sequence[torch.Tensor]) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        """``(a_in, a_out)`` of every counted layer, in the order of :attr:`layers`: the input and
        output channels it keeps when each group keeps the channels its gate selects (float64
        0-d tensors, differentiable in the gates; channels outside every group count 1)."""
        v = self._concat(gates).double()
        return [(v[layer.in_index.to(v.device)].sum(), v[layer.out_index.to(v.device)].sum())
                for layer in self._layers]

    def macs(self, gates: Sequence[torch.Tensor]) -> torch.Tensor:
        """T(v) of Eq. 5: the model's MACs (in the convention of :func:`count_macs`) when each
        group keeps the channels its gate selects; a float64 0-d tensor, differentiable in the
        gates. For binary gates it equals ``count_macs(slim(model, groups, gates)).total``."""
        widths = self.widths(gates)
        total = torch.zeros((), dtype=torch.float64, device=widths[0][0].device if widths else None)
        coef = self._coef.to(total.device)
        for i, (layer, (a_in, a_out)) in enumerate(zip(self._layers, widths)):
            total = total + coef[i] * (1.0 if layer.depthwise else a_in) * a_out
        return total
