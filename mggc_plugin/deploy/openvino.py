"""OpenVINO IR (``.xml`` + ``.bin``) converted from the simplified ONNX graph.

The IR keeps float32 weights (``save_model``'s default compresses them to float16) and is run
for the parity check, and by ``mggc bench``'s ``openvino`` runtime, with float32 inference
precision (``exact``): OpenVINO's CPU plugin otherwise computes in bfloat16 where the CPU has it
(AMX, AVX512-BF16), which changed the outputs of a small generator by 1e-2. The plugin's default
is what a user's ``compile_model(xml, "CPU")`` gets, so the int8 IR (:func:`from_onnx`, made from
ONNX Runtime's QDQ graph, :mod:`.quantize`) is checked, and ``openvino_default`` timed, with it.
On the 2-core Xeon (AMX) of ``benchmarks/results/int8_speed.md`` the default made the fp32 IR of
the facades teachers and their 25 % and 10 % students 2.9–5.4× (resnet_6blocks) and 1.07–1.21×
(unet_128) faster than float32, at a mean L1 of 0.0008–0.002 to it; the int8 IR 3.1–6.6× and
1.5–3.4×. Needs the ``openvino`` extra.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Dict

import numpy as np
import torch
from torch import nn

from . import onnx as onnx_export
from .runtimes import require

MODULES = onnx_export.MODULES + ("openvino",)
#: The weights file written beside the ``.xml`` (same name, this suffix).
WEIGHTS_SUFFIX = ".bin"


def compile_model(xml: Path, threads: int = 0, exact: bool = True) -> Any:
    """The IR at ``xml`` compiled for the CPU, in float32 when ``exact`` (else at the CPU
    plugin's default inference precision: bfloat16 where the CPU has it); ``threads`` inference
    threads (0: all)."""
    import openvino as ov
    import openvino.properties as props
    import openvino.properties.hint as hints

    config: Dict[Any, Any] = {hints.inference_precision: ov.Type.f32} if exact else {}
    if threads:
        config[props.inference_num_threads] = threads
    return ov.Core().compile_model(str(xml), "CPU", config)


class CompiledRunner:
    """Runs the compiled model ``compiled`` on a float32 tensor and returns a tensor."""

    def __init__(self, compiled: Any):
        self.compiled = compiled

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.compiled(x.numpy())[0]))


def convert(onnx_file: Path, xml: Path) -> None:
    """Convert an ONNX file to IR at ``xml`` (``.xml`` suffix required) and its ``.bin``."""
    import openvino as ov

    ov.save_model(ov.convert_model(str(onnx_file)), str(xml), compress_to_fp16=False)


def write(model: nn.Module, x: torch.Tensor, tmp: Path, dynamic: bool = False) -> CompiledRunner:
    """Export ``model`` to ONNX, convert it to IR and place the ``.xml`` at ``tmp`` and the weights
    at ``tmp.with_suffix(".bin")``; return the runner of the IR compiled in float32."""
    require("OpenVINO export", MODULES)
    with tempfile.TemporaryDirectory(dir=tmp.parent, prefix=".mggc-openvino-") as work:
        onnx_file = Path(work) / "model.onnx"
        onnx_export.save(model, x, onnx_file, dynamic)
        return _ir_from_onnx(onnx_file, tmp, exact=True)


def from_onnx(src: Path, tmp: Path) -> CompiledRunner:
    """Convert the ONNX file ``src`` (e.g. the int8 QDQ graph, which OpenVINO runs with int8
    kernels) to IR at ``tmp`` and its weights beside it; return the runner of the IR compiled at
    the CPU plugin's default precision, as a user's ``compile_model`` runs it."""
    require("OpenVINO conversion", MODULES)
    return _ir_from_onnx(src, tmp, exact=False)


def _ir_from_onnx(src: Path, tmp: Path, exact: bool) -> CompiledRunner:
    """Convert ``src`` to IR beside ``tmp``, compile it (:func:`compile_model`'s ``exact``), then
    move the weights and the ``.xml`` to ``tmp``."""
    with tempfile.TemporaryDirectory(dir=tmp.parent, prefix=".mggc-openvino-") as work:
        xml = Path(work) / "model.xml"
        convert(src, xml)
        compiled = compile_model(xml, exact=exact)
        os.replace(xml.with_suffix(WEIGHTS_SUFFIX), tmp.with_suffix(WEIGHTS_SUFFIX))
        os.replace(xml, tmp)
    return CompiledRunner(compiled)
