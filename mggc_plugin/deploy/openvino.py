"""OpenVINO IR (``.xml`` + ``.bin``) converted from the simplified ONNX graph.

The IR keeps float32 weights (``save_model``'s default compresses them to float16) and is run
for the parity check, and by ``mggc bench``, with float32 inference precision: OpenVINO's CPU
plugin otherwise computes in bfloat16 where the CPU has it (AMX, AVX512-BF16), which changed the
outputs of a small generator by 1e-2. Needs the ``openvino`` extra.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import onnx as onnx_export
from .runtimes import require

MODULES = onnx_export.MODULES + ("openvino",)
#: The weights file written beside the ``.xml`` (same name, this suffix).
WEIGHTS_SUFFIX = ".bin"


def compile_model(xml: Path, threads: int = 0) -> Any:
    """The IR at ``xml`` compiled for the CPU in float32; ``threads`` inference threads (0: all)."""
    import openvino as ov
    import openvino.properties as props
    import openvino.properties.hint as hints

    config = {hints.inference_precision: ov.Type.f32}
    if threads:
        config[props.inference_num_threads] = threads
    return ov.Core().compile_model(str(xml), "CPU", config)


def runner(compiled: Any) -> onnx_export.Runner:
    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.asarray(compiled(x.numpy())[0]))

    return run


def convert(onnx_file: Path, xml: Path) -> None:
    """Convert an ONNX file to IR at ``xml`` (``.xml`` suffix required) and its ``.bin``."""
    import openvino as ov

    ov.save_model(ov.convert_model(str(onnx_file)), str(xml), compress_to_fp16=False)


def write(model: nn.Module, x: torch.Tensor, tmp: Path, dynamic: bool = False) -> onnx_export.Runner:
    """Export ``model`` to ONNX, convert it to IR and place the ``.xml`` at ``tmp`` and the weights
    at ``tmp.with_suffix(".bin")``; return the compiled model's runner."""
    require("OpenVINO export", MODULES)
    with tempfile.TemporaryDirectory(dir=tmp.parent, prefix=".mggc-openvino-") as work:
        onnx_file, xml = Path(work) / "model.onnx", Path(work) / "model.xml"
        onnx_export.save(model, x, onnx_file, dynamic)
        convert(onnx_file, xml)
        compiled = compile_model(xml)
        os.replace(xml, tmp)
        os.replace(xml.with_suffix(WEIGHTS_SUFFIX), tmp.with_suffix(WEIGHTS_SUFFIX))
    return runner(compiled)
