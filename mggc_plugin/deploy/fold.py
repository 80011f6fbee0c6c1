"""BatchNorm folded into the convolution before it, for export and inference.

In eval mode a BatchNorm layer is a fixed per-channel affine map (running statistics, weight,
bias), so it can be merged into the weights and bias of the convolution that feeds it
(``torch.nn.utils.fusion.fuse_conv_bn_eval``): one layer less per block and the same outputs up
to float rounding.

A pair is folded only when the BatchNorm directly follows the convolution inside an
``nn.Sequential``: a container's order is its data flow, so no tracing is needed and no output of
the convolution can bypass the norm. A convolution used at two places is left alone. Norms
elsewhere (after a convolution called in a custom ``forward``) stay as they are, which leaves the
outputs unchanged.

BatchNorm that normalises by each batch's own statistics cannot be folded: layers in train mode or
with ``track_running_stats=False`` (the per-image norm of pix2pix teachers,
:func:`mggc_plugin.teacher.per_image_norm`, sets both). :func:`fold_batchnorm` refuses such a
model and names the layers.
"""
from __future__ import annotations

import copy
from collections import Counter
from typing import List, Tuple

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd, _ConvTransposeNd
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..errors import MGGCUserError


def unfoldable_batchnorms(model: nn.Module) -> List[str]:
    """Names of the BatchNorm layers of ``model`` that normalise by batch statistics (train mode,
    ``track_running_stats=False`` or no running buffers) and so cannot be folded."""
    return [name for name, m in model.named_modules()
            if isinstance(m, _BatchNorm) and (m.training or not m.track_running_stats or m.running_mean is None)]


def _pairs(model: nn.Module) -> List[Tuple[nn.Sequential, int, _ConvNd, _BatchNorm]]:
    """(container, index of the convolution, convolution, norm) for every conv directly followed by
    a BatchNorm in an ``nn.Sequential``, both used once in the model."""
    uses = Counter(id(m) for _, m in model.named_modules(remove_duplicate=False))
    found = []
    for seq in model.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        layers = list(seq)
        for i, (conv, norm) in enumerate(zip(layers, layers[1:])):
            # fuse_conv_bn_weights' transposed branch assumes one group
            grouped_transpose = isinstance(conv, _ConvTransposeNd) and conv.groups != 1
            if (isinstance(conv, _ConvNd) and isinstance(norm, _BatchNorm) and uses[id(conv)] == 1
                    and uses[id(norm)] == 1 and not grouped_transpose):
                found.append((seq, i, conv, norm))
    return found


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (in eval mode) in which every BatchNorm that directly follows a
    convolution in an ``nn.Sequential`` is merged into that convolution and replaced by
    ``nn.Identity`` (indices kept). ``model`` is unchanged; a model without such pairs comes back
    as an equal copy. Raises :class:`MGGCUserError` when a BatchNorm normalises by batch
    statistics (see :func:`unfoldable_batchnorms`)."""
    bad = unfoldable_batchnorms(model)
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise MGGCUserError(f"cannot fold BatchNorm layers that normalise by each batch's own statistics (train mode "
                            f"or track_running_stats=False, e.g. mggc_plugin.teacher.per_image_norm): {shown}; call "
                            f"model.eval() on a model whose BatchNorm keeps running statistics, or export it unfolded")
    folded = copy.deepcopy(model).eval()
    for seq, i, conv, norm in _pairs(folded):
        seq[i] = fuse_conv_bn_eval(conv, norm, transpose=isinstance(conv, _ConvTransposeNd))
        seq[i + 1] = nn.Identity()
    return folded


def batchnorm_as_instancenorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in which every ``BatchNorm2d`` is an ``InstanceNorm2d`` with the same
    affine weight, bias and eps: per-image normalisation for any batch size, which is what a
    BatchNorm computes on a batch of one image in train mode — how upstream's ``test.py`` runs
    pix2pix teachers and how this package evaluates them (:func:`mggc_plugin.teacher.per_image_norm`).
    Such a norm cannot be folded, but ONNX and OpenVINO have it as one operator
    (``InstanceNormalization``), so the exported file computes what the evaluated model computes."""
    out = copy.deepcopy(model).eval()
    for parent in list(out.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                norm = nn.InstanceNorm2d(child.num_features, eps=child.eps, affine=child.affine,
                                         track_running_stats=False)
                if child.affine:
                    norm.weight.data.copy_(child.weight.data)
                    norm.bias.data.copy_(child.bias.data)
                setattr(parent, name, norm.to(child.weight.device if child.affine else "cpu"))
    return out
