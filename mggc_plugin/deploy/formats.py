"""The export formats: what writes each file, what runs it for the parity check, what it needs.

- ``torchscript``: ``torch.jit.trace``, loaded with ``torch.jit.load`` (C++/mobile PyTorch).
- ``onnx``: :mod:`.onnx` (static shapes unless ``--dynamic``, simplified, opset
  :data:`~.onnx.OPSET`), run in ONNX Runtime; fp16 and int8 too (:mod:`.quantize`).
- ``openvino``: IR converted from that ONNX graph (:mod:`.openvino`), run in OpenVINO; int8
  too, converted from the int8 ONNX graph (OpenVINO runs its quantized convolutions in int8);
  its images N×C×H×W or channels last (``--layout nhwc``).

Core ML is not offered: coremltools 9 converts these generators on Linux (from a TorchScript
trace, ``mlprogram``), but its runtime exists only on macOS, so the parity check every format
passes before a file is written cannot run here.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

import torch
from torch import nn

from . import onnx as onnx_export
from . import openvino as openvino_export
from .quantize import PRECISIONS
from .runtimes import require

Runner = Callable[[torch.Tensor], torch.Tensor]
#: ``write(model, x, tmp, dynamic, **options)`` and ``from_onnx(src, tmp, **options)``; the only
#: option is ``layout``, for the formats with more than one (:class:`Format`).
Writer = Callable[..., Runner]
Converter = Callable[..., Runner]


def trace_torchscript(model: nn.Module, x: torch.Tensor, path: Path) -> torch.jit.ScriptModule:
    """Trace ``model`` at ``x``, save it to ``path`` and return the file loaded back."""
    with warnings.catch_warnings():
        # TorchScript is deprecated in favour of torch.export, but it is still what C++/mobile
        # runtimes load; the parity check is what guards the result.
        warnings.filterwarnings("ignore", category=FutureWarning, message=r"`torch\.jit\.")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.jit.trace(model, x, check_trace=False).save(str(path))
        return torch.jit.load(str(path), map_location="cpu")


def write_torchscript(model: nn.Module, x: torch.Tensor, tmp: Path, dynamic: bool = False) -> Runner:
    """:func:`trace_torchscript` to ``tmp``; the loaded file is the runner."""
    return trace_torchscript(model, x, tmp)


@dataclass(frozen=True)
class Format:
    """``suffix``: the default file suffix; ``write(model, x, tmp, dynamic)`` writes the file and
    returns what runs it; ``modules``: the optional packages it needs; ``companions``: suffixes of
    files written beside ``tmp`` (``tmp.with_suffix(s)``) that go beside the output;
    ``dynamic``: whether ``--dynamic`` applies; ``precisions`` it can be written in; ``opset``;
    ``from_onnx(src, tmp)``, for the precisions other than fp32: writes the format's file at
    ``tmp`` from the converted ONNX file ``src`` and returns what runs it; ``layouts``: the
    layouts its images can take, the first the default; the others are passed to ``write`` and
    ``from_onnx`` as ``layout=``."""

    suffix: str
    write: Writer
    modules: Tuple[str, ...] = ()
    companions: Tuple[str, ...] = ()
    dynamic: bool = False
    precisions: Tuple[str, ...] = ("fp32",)
    opset: Optional[int] = None
    from_onnx: Optional[Converter] = None
    layouts: Tuple[str, ...] = ("nchw",)

    def require(self, name: str) -> None:
        require(f"--format {name}", self.modules)


FORMATS: Dict[str, Format] = {
    "torchscript": Format(".ts", write_torchscript),
    "onnx": Format(".onnx", onnx_export.write, onnx_export.MODULES, dynamic=True, precisions=PRECISIONS,
                   opset=onnx_export.OPSET, from_onnx=onnx_export.from_onnx),
    "openvino": Format(".xml", openvino_export.write, openvino_export.MODULES,
                       companions=(openvino_export.WEIGHTS_SUFFIX,), dynamic=True, precisions=("fp32", "int8"),
                       opset=onnx_export.OPSET, from_onnx=openvino_export.from_onnx,
                       layouts=openvino_export.LAYOUTS),
}
