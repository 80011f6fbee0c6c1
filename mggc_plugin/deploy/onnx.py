"""A network to an ONNX graph that edge tools accept: static shapes, simplified, a stated opset.

- **Static shapes by default.** The graph's input and output have the example input's fixed
  sizes; TensorRT, Snap Lens Studio and most mobile converters reject or slow down on symbolic
  dimensions. ``dynamic=True`` makes the batch, height and width symbolic (``batch``,
  ``height``, ``width``).
- **Opset** :data:`OPSET`: the lowest torch's exporter (``dynamo=True``) writes for these
  generators — opset 17 has no adapter for its ``Pad`` — and one that ONNX Runtime (≥ 1.14),
  OpenVINO and TensorRT (≥ 8.6) load.
- **Simplified with onnxslim.** Both onnxslim and onnxsim installed here and gave the same graph
  and outputs on the generators; onnxslim is chosen because it is pure Python (no compiled
  extension tied to one onnx release, so it installs wherever onnx does) and maintained, and it
  works offline like onnxsim.

Needs the ``export`` extra (onnx, onnxscript, onnxruntime, onnxslim).
"""
from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path
from typing import Any, Callable, List, Optional, Union

import numpy as np
import torch
from torch import nn

from .runtimes import require

OPSET = 18
SIMPLIFIER = "onnxslim"
MODULES = ("onnx", "onnxscript", "onnxruntime", SIMPLIFIER)
INPUT, OUTPUT = "input", "output"
#: The symbolic dimensions of ``dynamic=True``, by axis of an N×C×H×W tensor.
DYNAMIC_AXES = {0: "batch", 2: "height", 3: "width"}

Runner = Callable[[torch.Tensor], torch.Tensor]


def to_onnx(model: nn.Module, x: torch.Tensor, dynamic: bool = False) -> Any:
    """``model`` as an ``onnx.ModelProto`` (opset :data:`OPSET`, input ``input``, output ``output``)
    traced at ``x``; shapes static unless ``dynamic``. Not simplified: see :func:`simplify`."""
    require("ONNX export", MODULES)
    axes = {INPUT: DYNAMIC_AXES, OUTPUT: DYNAMIC_AXES} if dynamic else None
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        # the exporter reports its steps on stdout and warns that dynamic_axes is converted to
        # torch.export's dynamic_shapes; the parity check is what guards the result
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (x,), input_names=[INPUT], output_names=[OUTPUT], dynamo=True,
                                    opset_version=OPSET, dynamic_axes=axes, verbose=False)
    if program is None:  # only when given a file to write to, which we do not
        raise RuntimeError("torch.onnx.export returned no ONNX program")
    return program.model_proto


def simplify(proto: Any) -> Any:
    """The graph simplified by onnxslim (constant folding, dead nodes, fused patterns); computes
    what ``proto`` computes."""
    require("ONNX simplification", MODULES)
    import onnxslim

    return onnxslim.slim(proto)


def symbolic_dims(proto: Any) -> List[str]:
    """``name[axis]=symbol`` for every graph input/output dimension that is not a fixed size."""
    found = []
    for value in list(proto.graph.input) + list(proto.graph.output):
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if not dim.HasField("dim_value"):
                found.append(f"{value.name}[{axis}]={dim.dim_param or '?'}")
    return found


CUDA_PROVIDER = "CUDAExecutionProvider"


def cuda_provider_available() -> bool:
    """Whether the installed ONNX Runtime has the CUDA execution provider (the onnxruntime-gpu
    build) and torch sees a CUDA device."""
    import onnxruntime

    return torch.cuda.is_available() and CUDA_PROVIDER in onnxruntime.get_available_providers()


def session(source: Union[Path, bytes], threads: int = 0, device: Optional[torch.device] = None) -> Any:
    """An ONNX Runtime session of a model file (or its bytes); ``threads`` intra-op threads (0:
    ONNX Runtime's default, all physical cores). On the CPU unless ``device`` is a CUDA device
    and :func:`cuda_provider_available`: then CUDA's provider on that device, the CPU's for
    the nodes it lacks."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    providers: List[Any] = ["CPUExecutionProvider"]
    if device is not None and device.type == "cuda" and cuda_provider_available():
        index = device.index if device.index is not None else torch.cuda.current_device()
        providers.insert(0, (CUDA_PROVIDER, {"device_id": index}))
    return onnxruntime.InferenceSession(str(source) if isinstance(source, Path) else source, options,
                                        providers=providers)


def runner(source: Union[Path, bytes], threads: int = 0, device: Optional[torch.device] = None) -> Runner:
    """A function running the model in ONNX Runtime (:func:`session`) on a float32 tensor,
    returning a CPU tensor. ONNX Runtime takes and returns host arrays, so with its CUDA provider
    every call includes the copies to and from the GPU (and waits for the result)."""
    sess = session(source, threads, device)

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.asarray(sess.run(None, {INPUT: x.detach().cpu().numpy()})[0]))

    return run


def save(model: nn.Module, x: torch.Tensor, path: Path, dynamic: bool = False) -> None:
    """Export ``model`` at ``x``, simplify the graph and save it to ``path``."""
    import onnx

    onnx.save(simplify(to_onnx(model, x, dynamic)), str(path))


def write(model: nn.Module, x: torch.Tensor, tmp: Path, dynamic: bool = False) -> Runner:
    """:func:`save` to ``tmp``; return its ONNX Runtime runner."""
    save(model, x, tmp, dynamic)
    return runner(tmp)


def from_onnx(src: Path, tmp: Path) -> Runner:
    """Move the ONNX file ``src`` (e.g. the fp16 or int8 graph made from the checked fp32 one) to
    ``tmp``; return its ONNX Runtime runner."""
    os.replace(src, tmp)
    return runner(tmp)
