"""MACs in the convention of the GAN-compression literature, counted by fvcore.

The published figures (56.8 G for CycleGAN's ``resnet_9blocks`` at 256², used by GAN Compression,
GCC and MGGC's Table 1) count the multiply-accumulates of convolutions and linear layers only,
and count a transposed convolution by its *output* size (``out_elements × C_in/groups × k²``, the
torchprofile convention). fvcore's defaults differ twice: they add norm layers (+0.13 G) and count
a transposed convolution by its input size (49.68 G in all). :func:`count_macs` therefore runs
fvcore's tracer with exactly one handle per counted operator.

The per-layer profile is the single source of truth for MACs in this package: the
differentiable T(v) of Eq. 5 (:meth:`mggc_plugin.ChannelGroups.macs`) is built from it.
"""
from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass
from typing import Dict, Iterator, List, Sequence, Tuple, Union

import torch
from torch import nn

with warnings.catch_warnings():
    # fvcore.nn scripts its focal loss at import time, which torch >= 2.10 reports as deprecated.
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
    from fvcore.nn.jit_analysis import JitModelAnalysis
    from fvcore.nn.jit_handles import addmm_flop_jit, bmm_flop_jit, get_shape, linear_flop_jit, matmul_flop_jit

COUNTED_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                  nn.ConvTranspose3d, nn.Linear)
#: The layers of COUNTED_LAYERS as a type.
CountedLayer = Union[nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                     nn.ConvTranspose3d, nn.Linear]


def _conv_macs(inputs, outputs) -> int:
    """``aten::_convolution`` / ``aten::convolution``: output elements × (C_in/groups) × kernel
    size, for plain and transposed convolutions alike (a transposed conv's weight is
    ``(C_in, C_out/groups, *k)``)."""
    w_shape = get_shape(inputs[1])
    transposed = inputs[6].toIValue()
    groups = inputs[8].toIValue()
    in_per_group = w_shape[0] // groups if transposed else w_shape[1]
    return math.prod(get_shape(outputs[0])) * in_per_group * math.prod(w_shape[2:])


_HANDLES = {
    "aten::_convolution": _conv_macs,
    "aten::convolution": _conv_macs,
    "aten::linear": linear_flop_jit,
    "aten::addmm": addmm_flop_jit,
    "aten::matmul": matmul_flop_jit,
    "aten::mm": matmul_flop_jit,
    "aten::bmm": bmm_flop_jit,
}


@dataclass(frozen=True)
class LayerMacs:
    """One convolution or linear layer of a profile."""

    name: str
    kind: str
    in_channels: int
    out_channels: int
    groups: int
    macs: int


@dataclass(frozen=True)
class MacProfile:
    """MACs of a network for one input shape: ``total`` (a float, in MACs) and ``layers``, every
    counted layer in the order of ``named_modules``. Layers that were never called are left out."""

    input_shape: Tuple[int, ...]
    total: float
    layers: Tuple[LayerMacs, ...]

    def by_name(self) -> Dict[str, LayerMacs]:
        return {layer.name: layer for layer in self.layers}

    def table(self) -> str:
        """A fixed-width per-layer table with each layer's share of the total."""
        width = max([len("layer")] + [len(layer.name) for layer in self.layers])
        lines = [f"{'layer':<{width}}  {'type':<16} {'in':>5} {'out':>5} {'MACs':>14} {'share':>7}"]
        for layer in self.layers:
            lines.append(f"{layer.name:<{width}}  {layer.kind:<16} {layer.in_channels:>5} "
                         f"{layer.out_channels:>5} {layer.macs:>14,d} {layer.macs / self.total:>7.2%}")
        lines.append(f"{'total':<{width}}  {'':<16} {'':>5} {'':>5} {int(self.total):>14,d} {1:>7.2%}")
        return "\n".join(lines)


@contextlib.contextmanager
def frozen_eval(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` in eval mode without gradients and restore its train/eval flags afterwards,
    so that tracing never updates BatchNorm running statistics."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        for m, training in modes.items():
            m.training = training


def _channels(m: CountedLayer) -> Tuple[int, int, int]:
    if isinstance(m, nn.Linear):
        return m.in_features, m.out_features, 1
    return m.in_channels, m.out_channels, m.groups


def count_macs(model: nn.Module, input_shape: Sequence[int]) -> MacProfile:
    """Profile ``model`` on a zero input of ``input_shape`` (batch included). The model is left
    exactly as it was (eval mode and no-grad during the trace, then its flags restored)."""
    device = next(model.parameters()).device
    x = torch.zeros(*input_shape, device=device)
    with frozen_eval(model):
        analysis = JitModelAnalysis(model, (x,)).set_op_handle(**_HANDLES)
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
        per_module = analysis.by_module()
        total = float(analysis.total())
    layers: List[LayerMacs] = []
    for name, m in model.named_modules():
        if isinstance(m, COUNTED_LAYERS) and per_module.get(name, 0) > 0:
            cin, cout, groups = _channels(m)
            layers.append(LayerMacs(name, type(m).__name__, cin, cout, groups, int(per_module[name])))
    return MacProfile(tuple(int(s) for s in input_shape), total, tuple(layers))
