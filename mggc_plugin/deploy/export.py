"""``export``: a slim checkpoint to a deployable file, written only after it was checked.

Every format's file is run on a seeded input and compared with the slim model (max abs diff
within ``atol``); an fp16/int8 file (ONNX; int8 also OpenVINO IR) is made from the checked fp32
ONNX graph and then measured, as its runtime runs it, against the fp32 slim model on held-out
inputs (:mod:`.calibration`, :func:`.quantize.measure`) and refused past ``max_l1``. Nothing
is written unless every check passes (atomic write; an OpenVINO ``.bin`` is moved beside the
``.xml`` just before the ``.xml`` itself).
BatchNorm is exported as the normalisation the model is evaluated with (``norm_stats``):
``per_image`` (default; upstream's ``test.py`` and this package's evaluation of pix2pix: each
image by its own statistics) as InstanceNorm, ``running`` (eval mode) folded into its convolution
(:mod:`.fold`). Models without BatchNorm are unaffected. In ONNX and OpenVINO files, U-Net
transposed convolutions are exported as sub-pixel convolutions (:mod:`.subpixel`; ``subpixel``
overrides): ONNX Runtime quantizes those, and they run faster, most in OpenVINO's bfloat16
(:func:`.subpixel.subpixel_default`).
"""
from __future__ import annotations

import copy
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple, Union

import torch
from torch import nn

from ..device import DeviceLike, exact_float32, resolve_device
from ..errors import MGGCUserError
from ..fileio import atomic_write
from ..footprint import check_runnable
from ..slim import load_slim, slim_info
from ..teacher import NORM_STATS, per_image_norm
from . import onnx as onnx_export
from .calibration import Inputs, find_images, load_inputs, random_inputs
from .fold import batchnorm_as_instancenorm, fold_batchnorm, unfoldable_batchnorms
from .formats import FORMATS, Format
from .quantize import DEFAULT_MAX_L1, PRECISIONS, Quality, measure, to_fp16, to_int8
from .subpixel import conv_transposes_as_subpixel, interleave_for, subpixel_default

PathLike = Union[str, Path]


@dataclass(frozen=True)
class ExportResult:
    """What was written and how it was checked: ``max_abs_diff`` of the exported fp32 file (for
    fp16/int8: of the fp32 graph they were made from) against the slim model on the seeded input;
    ``quality`` of an fp16/int8 file on held-out inputs, with ``source`` naming them; ``notes`` on
    what was done to the model."""

    path: Path
    max_abs_diff: float
    fmt: str = "torchscript"
    precision: str = "fp32"
    shape: Tuple[int, ...] = ()
    dynamic: bool = False
    layout: str = "nchw"
    opset: Optional[int] = None
    quality: Optional[Quality] = None
    source: str = ""
    notes: Tuple[str, ...] = ()

    def describe(self) -> str:
        what = [self.fmt, self.precision]
        if self.opset is not None:
            what.append(f"opset {self.opset}")
            shape = self.shape if self.layout == "nchw" else (self.shape[0], *self.shape[2:], self.shape[1])
            what.append("dynamic batch/height/width" if self.dynamic
                        else f"static shapes, input {'x'.join(map(str, shape))}")
        if self.layout == "nhwc":
            what.append("images channels last (N×H×W×C in and out)")
        if self.fmt in ("onnx", "openvino"):
            what.append(f"simplified by {onnx_export.SIMPLIFIER}")
        checked = "output parity" if self.quality is None else "the fp32 graph's output parity (before conversion)"
        lines = [f"wrote {self.path} ({', '.join(what + list(self.notes))}); {checked} with the slim model: "
                 f"max abs diff {self.max_abs_diff:.2e}"]
        if self.quality is not None:
            lines.append(f"{self.precision} against the fp32 slim model: {self.quality.describe()} ({self.source})")
        return "\n".join(lines)


def _default_out(path: Path, fmt: Format, precision: str) -> Path:
    return path.with_suffix(fmt.suffix if precision == "fp32" else f".{precision}{fmt.suffix}")


def _quality_inputs(path: Path, calibration: Optional[PathLike], precision: str, shape: Tuple[int, ...]) -> Inputs:
    refs, source = find_images(path, calibration)
    if refs:
        return load_inputs(refs, shape, source)
    if precision == "int8":
        raise MGGCUserError(f"--precision int8 needs calibration images and {source}: give --calibration DIR, a "
                            f"folder of input images like the ones the model will see")
    return random_inputs(shape)


def _convert(src: Path, dst: Path, precision: str, inputs: Inputs) -> None:
    """Write the ``precision`` version of the fp32 ONNX file ``src`` to ``dst``."""
    if precision == "fp16":
        to_fp16(src, dst)
    else:
        to_int8(src, dst, inputs.calibration)


def export(path: PathLike, fmt: str = "torchscript", out: Optional[PathLike] = None, size: Optional[int] = None,
           atol: float = 1e-4, dynamic: bool = False, precision: str = "fp32",
           calibration: Optional[PathLike] = None, max_l1: float = DEFAULT_MAX_L1,
           norm_stats: str = "per_image", device: DeviceLike = None,
           subpixel: Optional[bool] = None, layout: str = "nchw") -> ExportResult:
    """Export the slim checkpoint at ``path`` as ``fmt`` (:data:`~.formats.FORMATS`) to ``out``
    (default: beside it), traced at its pruning size or ``size``. The file runs without
    mggc-plugin. Checks, before anything is written: output parity with the slim model within
    ``atol`` (ValueError), and for ``precision`` fp16/int8 (ONNX; int8 also OpenVINO) the mean L1
    against the fp32 slim model on held-out inputs within ``max_l1`` (:class:`MGGCUserError` with the
    figures). int8 calibrates on ``calibration`` (a folder of images) or the run's training
    sources recorded in ``train_opt.txt`` beside the checkpoint. ``norm_stats``: what BatchNorm
    normalises by in the exported file and in the reference it is checked against (module
    docstring). ``device`` (:func:`~mggc_plugin.device.resolve_device`; ``None``: CUDA when
    available) runs the PyTorch reference of both checks, in IEEE float32 (no TF32, so that a
    GPU reference stays within ``atol`` of the CPU); the exported file is traced on the CPU and
    run by its CPU runtime. ``subpixel``: export U-Net transposed convolutions as sub-pixel
    convolutions (``None``: :func:`subpixel_default`). ``layout``: how the file takes and returns
    images, ``nchw`` or, for ``openvino``, ``nhwc`` (channels last; :mod:`.openvino`). Bad
    options, ``out`` that is a folder or the checkpoint, sizes the network cannot take and
    unwritable locations are :class:`MGGCUserError` s."""
    dev = resolve_device(device)
    if fmt not in FORMATS:
        raise MGGCUserError(f"unknown export format {fmt!r}: choose one of {', '.join(FORMATS)}")
    spec = FORMATS[fmt]
    if precision not in spec.precisions:
        raise MGGCUserError(f"--precision {precision} is not available for --format {fmt} (it takes "
                            f"{', '.join(spec.precisions)}); --format onnx takes {', '.join(PRECISIONS)}")
    if dynamic and not spec.dynamic:
        raise MGGCUserError(f"--dynamic is for --format onnx or openvino; a {fmt} trace has no declared input shape")
    if layout not in spec.layouts:
        others = " or ".join(name for name, f in FORMATS.items() if layout in f.layouts)
        raise MGGCUserError(f"--layout {layout} is not available for --format {fmt} (it takes "
                            f"{', '.join(spec.layouts)})" + (f"; --format {others} takes it" if others else ""))
    if norm_stats not in NORM_STATS:
        raise MGGCUserError(f"--norm_stats {norm_stats}: choose one of {', '.join(NORM_STATS)} (per_image: as "
                            f"upstream's test.py runs pix2pix; running: eval mode, BatchNorm folded)")
    if precision != "fp32" and max_l1 < 0:
        raise MGGCUserError(f"--max_l1 {max_l1}: give a mean L1 of at least 0 (default {DEFAULT_MAX_L1})")
    spec.require(fmt)
    path = Path(path)
    default = _default_out(path, spec, precision)
    out = Path(out) if out is not None else default
    if out.is_dir():
        raise MGGCUserError(f"--out {out} is a folder: give a file name, e.g. {out / default.name}")
    if out.exists() and out.resolve() == path.resolve():
        raise MGGCUserError(f"--out {out} is the slim checkpoint itself: give another file name")
    if size is not None and size < 1:
        raise MGGCUserError(f"--size {size}: give the input height/width in pixels, at least 1 (default: the size "
                            f"it was pruned at)")
    model = load_slim(path)
    pruned_at = list(slim_info(model)["input_shape"])
    shape = tuple(pruned_at[:-2] + ([size, size] if size is not None else pruned_at[-2:]))
    check_runnable(model, shape, f"{path} at {shape[-2]}x{shape[-1]}",
                   f"give a --size the network takes (it was pruned at {pruned_at[-2]}x{pruned_at[-1]})")
    notes: Tuple[str, ...]
    if norm_stats == "per_image" and _has_batchnorm(model):
        model = per_image_norm(model.eval())  # the reference: each image normalised by its own statistics
        deployed, notes = batchnorm_as_instancenorm(model), ("BatchNorm per image, as InstanceNorm",)
    else:
        deployed, notes = _fold(model.eval())
    if subpixel is None:
        subpixel = subpixel_default(fmt)
    if subpixel:
        deployed, rewritten = conv_transposes_as_subpixel(deployed, interleave_for(fmt))
        notes += (f"{rewritten} ConvTranspose2d as sub-pixel convolutions",) if rewritten else ()
    if precision == "int8" and fmt == "openvino":
        notes += ("checked at OpenVINO's default CPU inference precision",)
    inputs = _quality_inputs(path, calibration, precision, shape) if precision != "fp32" else None
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    reference = _reference(model, dev)
    expected = reference(x)
    checked: Dict[str, Any] = {}
    options = {} if layout == spec.layouts[0] else {"layout": layout}

    def _write_checked(tmp: Path, work: Path) -> None:
        """The file at ``tmp`` (fp32: the format's own; else made from the fp32 ONNX graph in
        ``work``), each check passed."""
        graph = tmp if inputs is None else work / "fp32.onnx"
        with torch.no_grad():
            run = spec.write(deployed, x, graph, dynamic, **options) if inputs is None else \
                onnx_export.write(deployed, x, graph, dynamic)
            diff = float((run(x) - expected).abs().max())
        if diff > atol:
            raise ValueError(f"the exported {fmt} model differs from the slim model by {diff:.2e} (> {atol}); "
                             f"nothing was written")
        checked["diff"] = diff
        if inputs is not None:
            assert spec.from_onnx is not None  # every format with a precision beyond fp32 has one
            _convert(graph, work / "converted.onnx", precision, inputs)
            run = spec.from_onnx(work / "converted.onnx", tmp, **options)
            checked["quality"] = quality = measure(run, reference, inputs.held_out)
            if quality.mean_l1 > max_l1:
                raise MGGCUserError(f"the {precision} model moved the outputs of the fp32 slim model by "
                                    f"{quality.describe()} ({inputs.source}): mean L1 above --max_l1 {max_l1}; "
                                    f"nothing was written. Raise --max_l1 to accept it, or use a higher precision")

    def write(tmp: Path) -> None:
        try:
            with tempfile.TemporaryDirectory(dir=tmp.parent, prefix=".mggc-convert-") as work:
                _write_checked(tmp, Path(work))
            for suffix in spec.companions:
                os.replace(tmp.with_suffix(suffix), out.with_suffix(suffix))
        finally:
            for suffix in spec.companions:
                tmp.with_suffix(suffix).unlink(missing_ok=True)

    try:
        atomic_write(out, write)
    except OSError as err:
        raise MGGCUserError(f"cannot write {out} ({err.strerror or err}): choose a writable --out") from None
    return ExportResult(out, checked["diff"], fmt, precision, shape, dynamic, layout, spec.opset,
                        checked.get("quality"), inputs.source if inputs is not None else "", notes)


def _reference(model: nn.Module, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """``model`` as the checks' reference on ``device``: CPU tensors in, CPU tensors out, no
    gradient, IEEE float32. A copy runs on a GPU, so ``model`` (which the exported file is traced
    from) stays on the CPU."""
    net = model if device.type == "cpu" else copy.deepcopy(model).to(device)

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), exact_float32():
            return net(x.to(device)).cpu()

    return run


def _has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _fold(model: nn.Module) -> Tuple[nn.Module, Tuple[str, ...]]:
    """The model to export: BatchNorm folded when every BatchNorm keeps running statistics."""
    if not _has_batchnorm(model):
        return model, ()
    if unfoldable_batchnorms(model):
        return model, ("BatchNorm with batch statistics kept unfolded",)
    return fold_batchnorm(model), ("BatchNorm folded",)
