"""Transposed convolutions rewritten as sub-pixel convolutions, for INT8 graphs.

Upstream's U-Net generators upsample with ``ConvTranspose2d(kernel 4, stride 2, padding 1)``:
89 % of a ``unet_128``/``unet_256``'s MACs. ONNX Runtime's post-training quantization has no
integer kernel for ConvTranspose, so a QDQ graph runs those layers in float between
quantize/dequantize pairs and the INT8 model is *slower* than fp32 (unet_256 ngf 64, 256², one
thread: 0.82× for the teacher, 0.87× at 10 % of the MACs; ``benchmarks/results/int8_speed.md``).

The same layer is four ordinary convolutions, one per output phase (the sub-pixel decomposition
of Shi et al. 2016): output pixel ``(2i + a, 2j + b)`` only sees input rows ``i − 1 + a, i + a``
and columns ``j − 1 + b, j + b``, through the kernel taps ``3 − a − 2u`` and ``3 − b − 2v``
(window position ``u, v`` ∈ {0, 1}). :class:`SubPixelConvTranspose2d` computes all four phases
with one 2×2 convolution over the input padded by one pixel (4·C_out output channels of
``(h + 1) × (w + 1)``, the same MACs as the transposed convolution up to the one-pixel border),
interleaves them (:data:`INTERLEAVES`) and crops the interleaved map once: phase ``(a, b)``'s
window starts at row ``a`` and column ``b`` of its map, so with the phases laid out as
:data:`BLOCKS` says the output is the interleaved map without its first and last row and column.
Cropping each phase
before interleaving instead (four slices and a concatenation) ran 10 % unet_256 students
1.09–1.20× slower in OpenVINO bfloat16 on a 2-core AMD EPYC (two widths, two runs, ad hoc), and
no faster in OpenVINO float32, ONNX Runtime or PyTorch. The interleave is ``pixel_shuffle`` (ONNX
DepthToSpace, channels ordered channel-major) or a reshape and transpose of phase-major
channels, which OpenVINO's CPU plugin ran faster (``benchmarks/results/subpixel_speed.md``) and
ONNX Runtime slower. Its outputs equal the transposed convolution's to float32 rounding, and
every part of it has an INT8 kernel in ONNX Runtime.

An element-wise activation that directly follows the layer in an ``nn.Sequential`` (upstream's
outermost ``Tanh``) is applied to the phase maps before they are interleaved
(:data:`ELEMENTWISE`): it commutes with the interleave and the crop, and OpenVINO then fuses it
into the convolution. Applied after, it ran as its own float32 node on the output (0.08–0.09 ms
of a 3.3–4.3 ms unet_256 student at 10 % of the MACs in OpenVINO bfloat16 on a 2-core AMD EPYC,
node counters, ad hoc).

OpenVINO's CPU plugin interleaves bfloat16 channels fast in blocks of 32 and slowly otherwise:
behind a convolution of 120 channels at 64² (node counters, 2-core AMD EPYC, ad hoc) the
interleave of 8, 16, 24, 32, 48 and 64 output channels took 0.086, 0.171, 0.255, 0.032, 0.121
and 0.081 ms with the transpose interleave (depth-to-space: 0.082, 0.152 and 0.232 ms for 8, 16
and 24). A narrow student pays for it at full resolution: 0.17 ms of
a 3.3 ms unet_256 student at 10 % of the MACs for its 16-channel layer, against 0.08 ms for its
teacher's 64 channels. Nothing tried instead was faster in the whole student (three processes
each, ad hoc): keeping its last transposed convolution ran it 0.81× as fast, its last two 0.67–0.72×,
its 16-channel one 0.99–1.05×; interleaving by a fixed 0/1 transposed convolution (kernel 2,
stride 2; 0.13 against 0.18 ms alone) 0.90–1.02× in the 16-channel layer and 0.93–0.97× in the
last.

Only the upstream configuration (kernel 4, stride 2, padding 1, no output padding, dilation 1,
one group) is rewritten; ResNet generators' ``ConvTranspose2d(kernel 3, stride 2, padding 1,
output_padding 1)`` has phases of unequal tap counts, which one shared 2×2 convolution would
compute with zero taps (1.8× the MACs), so they stay.
"""
from __future__ import annotations

import copy
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

#: The output phase ``(a, b)`` of each position ``(s, t)`` of the interleaved map's 2×2 blocks,
#: in the order of the 2×2 convolution's channel blocks (``2s + t``): ``(1 − s, 1 − t)``, so that
#: phase ``(a, b)``'s row ``i + a`` lands on interleaved row ``2i + a + 1`` (module docstring).
BLOCKS = ((1, 1), (1, 0), (0, 1), (0, 0))
#: How the four phases are interleaved into the output: ``depth_to_space`` by ``pixel_shuffle``
#: (convolution channels c·4 + block; ONNX DepthToSpace in CRD mode), ``transpose`` by a reshape
#: and transpose (channels block·C_out + c, each block a contiguous range); blocks as :data:`BLOCKS`.
INTERLEAVES = ("depth_to_space", "transpose")
#: Activations computed element by element, which :func:`conv_transposes_as_subpixel` moves into
#: the sub-pixel layer they follow (module docstring).
ELEMENTWISE = (nn.Tanh, nn.Sigmoid, nn.ReLU, nn.LeakyReLU, nn.Hardtanh, nn.SiLU, nn.GELU)


def rewritable(module: nn.Module) -> bool:
    """Whether ``module`` is a transposed convolution :class:`SubPixelConvTranspose2d` replaces."""
    return (isinstance(module, nn.ConvTranspose2d) and module.kernel_size == (4, 4) and module.stride == (2, 2)
            and module.padding == (1, 1) and module.output_padding == (0, 0) and module.dilation == (1, 1)
            and module.groups == 1)


class SubPixelConvTranspose2d(nn.Module):
    """``ConvTranspose2d(C_in, C_out, 4, stride=2, padding=1)`` as a 2×2 convolution to the four
    output phases, interleaved as ``interleave`` says (:data:`INTERLEAVES`; module docstring);
    ``activation`` (an :data:`ELEMENTWISE` module that followed the layer, or None) is applied to
    the phases before the interleave.
    Built from a trained layer (:func:`rewritable`); its weights are copied, not shared."""

    def __init__(self, layer: nn.ConvTranspose2d, interleave: str = "depth_to_space",
                 activation: Optional[nn.Module] = None) -> None:
        super().__init__()
        if not rewritable(layer):
            raise ValueError(f"{layer} is not a ConvTranspose2d(kernel 4, stride 2, padding 1) with one group")
        if interleave not in INTERLEAVES:
            raise ValueError(f"interleave {interleave!r}: choose one of {', '.join(INTERLEAVES)}")
        if activation is not None and not isinstance(activation, ELEMENTWISE):
            raise ValueError(f"{activation} is not element-wise ({', '.join(c.__name__ for c in ELEMENTWISE)})")
        w = layer.weight.detach()  # C_in × C_out × 4 × 4
        c_in, c_out = w.shape[:2]
        phase_kernels = [w[:, :, [3 - a, 1 - a]][:, :, :, [3 - b, 1 - b]] for a, b in BLOCKS]  # taps 3 − a − 2u
        # depth_to_space: channel c·4 + block, what pixel_shuffle reads as the 2×2 block of channel c;
        # transpose: block·C_out + c.
        stacked = torch.stack(phase_kernels, 2 if interleave == "depth_to_space" else 1)
        kernel = stacked.reshape(c_in, c_out * 4, 2, 2).transpose(0, 1)
        self.c_out, self.interleave = c_out, interleave
        self.conv = nn.Conv2d(c_in, c_out * 4, 2, bias=layer.bias is not None)
        self.activation = activation if activation is not None else nn.Identity()
        with torch.no_grad():
            self.conv.weight.copy_(kernel)
            if layer.bias is not None and self.conv.bias is not None:
                bias = layer.bias.detach()
                self.conv.bias.copy_(bias.repeat_interleave(4) if interleave == "depth_to_space" else bias.repeat(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        y = self.activation(self.conv(F.pad(x, (1, 1, 1, 1))))  # N × 4·C_out × (h+1) × (w+1)
        if self.interleave == "depth_to_space":
            z = F.pixel_shuffle(y, 2)
        else:
            # (n, s, t, c, h+1, w+1) → (n, c, h+1, s, w+1, t): interleaved row 2p + s, column 2q + t
            n = y.shape[0]
            z = y.view(n, 2, 2, self.c_out, h + 1, w + 1).permute(0, 3, 4, 1, 5, 2)
            z = z.reshape(n, self.c_out, 2 * h + 2, 2 * w + 2)
        return z[:, :, 1:2 * h + 1, 1:2 * w + 1]


def conv_transposes_as_subpixel(model: nn.Module, interleave: str = "depth_to_space") -> Tuple[nn.Module, int]:
    """A copy of ``model`` with every :func:`rewritable` transposed convolution replaced by its
    :class:`SubPixelConvTranspose2d` (phases interleaved as ``interleave`` says), and how many
    were replaced (``model`` is unchanged; a rewritable ``model`` is itself replaced). An
    :data:`ELEMENTWISE` activation right after one in an ``nn.Sequential`` moves into it, leaving
    an ``nn.Identity`` in its place."""
    if isinstance(model, nn.ConvTranspose2d) and rewritable(model):  # isinstance: the type narrows
        return SubPixelConvTranspose2d(model, interleave), 1
    model = copy.deepcopy(model)
    replaced = 0
    for parent in list(model.modules()):
        children = list(parent.named_children())
        for i, (name, child) in enumerate(children):
            if not (isinstance(child, nn.ConvTranspose2d) and rewritable(child)):
                continue
            after = children[i + 1][1] if isinstance(parent, nn.Sequential) and i + 1 < len(children) else None
            activation = after if isinstance(after, ELEMENTWISE) else None
            setattr(parent, name, SubPixelConvTranspose2d(child, interleave, activation))
            if activation is not None:
                setattr(parent, children[i + 1][0], nn.Identity())
            replaced += 1
    return model, replaced


def interleave_for(fmt_or_runtime: str) -> str:
    """The interleave (:data:`INTERLEAVES`) written for an export format or timed on a runtime:
    ``transpose`` for OpenVINO (``openvino``, ``openvino_default``), whose CPU plugin ran the
    unet_256 teacher and six students 1.13–1.22× faster so than with ``pixel_shuffle`` in
    bfloat16 and 1.05–1.10× in float32 (``benchmarks/results/subpixel_speed.md``, one run; it
    fuses the reshape and transpose into a DepthToSpace that copies whole channel blocks), and
    ``depth_to_space`` elsewhere: in a one-off check ONNX Runtime ran a 10 % student 1.17× slower
    with ``transpose``."""
    return "transpose" if fmt_or_runtime.startswith("openvino") else "depth_to_space"


def subpixel_default(fmt: str) -> bool:
    """Whether ``mggc export`` writes U-Net transposed convolutions as sub-pixel convolutions
    unless told: for the ONNX-based formats (``onnx``, ``openvino``), at every precision. ONNX
    Runtime has no int8 ConvTranspose kernel, and on the 2-core Xeon with AMX of
    ``benchmarks/results/subpixel_speed.md`` (unet_256 ngf 64, 256², the teacher and six students
    at 25 % and 10 % of the MACs, one thread, timed warm, one run) the rewrite, interleaved as
    :func:`interleave_for` says, ran OpenVINO at its default precision (bfloat16) 2.61–3.92×
    faster (the teacher 21.3 against 77.2 ms: its transposed convolutions ran no faster in
    bfloat16 than in float32), OpenVINO float32 1.00–1.14×, and ONNX Runtime float32 0.94–1.05×
    (a cold-timed run before had 1.05–1.12×). TorchScript keeps the layers as trained."""
    return fmt in ("onnx", "openvino")
