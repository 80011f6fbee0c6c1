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
1.5–3.4×. :class:`Profiler` times an IR node by node (the CPU plugin's performance counters),
beside each convolution's MACs, to show which layers keep a slim G from its MAC ratio.

An IR can take and return its images channels last (``layout="nhwc"``, :data:`LAYOUTS`): N×H×W×C,
as image decoders give them. OpenVINO's CPU plugin computes these networks channels last in
bfloat16, so it then skips the reorders of the input and output that the NCHW interface costs: on
a 2-core AMD EPYC, both layouts timed in the same rounds over 12 processes
(``benchmarks/results/openvino_layout_epyc_unet10_p12.md``), a unet_256 student at 10 % of the
MACs ran 1.045 [1.030, 1.059]× faster in bfloat16 and its teacher 1.003 [0.999, 1.007]×; in
float32 the gain was unresolved, and a resnet_9blocks student ran 0.996× as fast in bfloat16.
Needs the ``openvino`` extra.
"""
from __future__ import annotations

import functools
import os
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from ..errors import MGGCUserError
from ..metrics.timing import run_for
from . import onnx as onnx_export
from .runtimes import require

MODULES = onnx_export.MODULES + ("openvino",)
#: The weights file written beside the ``.xml`` (same name, this suffix).
WEIGHTS_SUFFIX = ".bin"
#: The layouts of an IR's images (its 4-D inputs and outputs): as the ONNX graph has them, or
#: channels last (module docstring).
LAYOUTS = ("nchw", "nhwc")


def compile_model(xml: Path, threads: int = 0, exact: bool = True, perf_count: bool = False) -> Any:
    """The IR at ``xml`` compiled for the CPU, in float32 when ``exact`` (else at the CPU
    plugin's default inference precision: bfloat16 where the CPU has it); ``threads`` inference
    threads (0: all); ``perf_count``: with per-node performance counters (:class:`Profiler`)."""
    import openvino as ov
    import openvino.properties as props
    import openvino.properties.hint as hints

    config: Dict[Any, Any] = {hints.inference_precision: ov.Type.f32} if exact else {}
    if threads:
        config[props.inference_num_threads] = threads
    if perf_count:
        config[props.enable_profiling] = True
    return ov.Core().compile_model(str(xml), "CPU", config)


#: The layer kinds of OpenVINO CPU node types (the kinds of ``benchmarks/speed_gap.py``).
#: ``Subgraph`` is the plugin's fusion of element-wise operations; ``Reorder`` converts between
#: memory layouts (e.g. to the blocked layouts its convolutions use).
NODE_KINDS = {"Convolution": "conv", "ConvolutionBackpropData": "conv_transpose", "MVN": "norm",
              "Pad": "pad", "Concat": "concat", "Reorder": "reorder", "Subgraph": "elementwise",
              "Eltwise": "elementwise", "Tanh": "elementwise"}


def ir_macs(xml: Path) -> Dict[str, int]:
    """MACs per image of each (transposed) convolution of the IR at ``xml``, by node name, in
    :mod:`mggc_plugin.macs`'s convention: output elements × input channels per group × kernel
    size, for both kinds (OpenVINO's weights are ``(C_out, C_in, *k)`` for a convolution and
    ``(C_in, C_out, *k)`` for a transposed one)."""
    import openvino as ov

    macs = {}
    for op in ov.Core().read_model(str(xml)).get_ordered_ops():
        kind = op.get_type_name()
        if kind in ("Convolution", "ConvolutionBackpropData"):
            w = list(op.input(1).get_shape())
            out = list(op.output(0).get_shape())
            c_in = w[1] if kind == "Convolution" else w[0]
            macs[op.get_friendly_name()] = int(np.prod(out[1:])) * c_in * int(np.prod(w[2:]))
    return macs


@dataclass(frozen=True)
class NodeTime:
    """One executed node of a compiled IR: its ``kind`` (:data:`NODE_KINDS`, else ``other``),
    mean milliseconds per inference, and MACs per image (0 for nodes that are not convolutions)."""

    name: str
    kind: str
    ms: float
    macs: int


class Profiler:
    """The IR at ``xml`` compiled with performance counters (float32 when ``exact``, ``threads``
    threads). Each :meth:`run` infers once and adds every node's time (``record=False``: a
    warm-up, not added); :meth:`nodes` gives the mean per node, in the order the nodes ran.
    Nodes the plugin fused into another (an activation into its convolution) do not run and are
    left out: their time is in the node they were fused into. Call :meth:`run` of several
    profilers in turn to interleave them, as :func:`~mggc_plugin.metrics.compare_latency` does
    for whole networks."""

    def __init__(self, xml: Path, threads: int = 1, exact: bool = True):
        require("OpenVINO profiling", MODULES)
        import openvino as ov

        self.executed = ov.ProfilingInfo.Status.EXECUTED
        compiled = compile_model(xml, threads, exact, perf_count=True)
        self.request = compiled.create_infer_request()
        self.staged = StagedInput(channels_last(compiled))
        self.macs = ir_macs(xml)
        self.total: Dict[str, float] = {}
        self.kinds: Dict[str, str] = {}
        self.runs = 0

    def run(self, x: torch.Tensor, record: bool = True) -> None:
        self.request.infer({0: self.staged(x)})
        if not record:
            return
        for info in self.request.profiling_info:
            if info.status == self.executed:
                ms = info.real_time.total_seconds() * 1e3
                self.total[info.node_name] = self.total.get(info.node_name, 0.0) + ms
                self.kinds[info.node_name] = NODE_KINDS.get(info.node_type, "other")
        self.runs += 1

    def nodes(self, require_macs: bool = True) -> List[NodeTime]:
        """``require_macs``: raise unless every convolution ran under its own name (else its
        MACs could not be matched to a time)."""
        if not self.runs:
            raise RuntimeError("Profiler.nodes: call run() first")
        missing = sorted(set(self.macs) - set(self.total))
        if missing and require_macs:  # fused into a node of another name: its MACs would be counted nowhere
            raise RuntimeError(f"convolutions {missing} did not run under their own names, so their MACs "
                               "cannot be matched to a time")
        return [NodeTime(name, self.kinds[name], ms / self.runs, self.macs.get(name, 0))
                for name, ms in self.total.items()]


def profile(irs: Mapping[str, Path], x: torch.Tensor, runs: int, threads: int = 1,
            exact: bool = True, warm_s: float = 0.0, require_macs: bool = True) -> Dict[str, List[NodeTime]]:
    """Each IR of ``irs`` (name → ``.xml``) node by node (:class:`Profiler`), profiled ``runs``
    times in turn after one warm-up each, so that background load hits them alike. ``warm_s``:
    before each recorded pass a model also runs unrecorded passes back to back for this many
    seconds, to be profiled warm (as :func:`~mggc_plugin.metrics.compare_latency`'s ``warm_s``).
    ``require_macs``: as :meth:`Profiler.nodes`."""
    profilers = {name: Profiler(xml, threads, exact) for name, xml in irs.items()}
    for prof in profilers.values():
        prof.run(x, record=False)
    for _ in range(runs):
        for prof in profilers.values():
            run_for(functools.partial(prof.run, x, record=False), warm_s)
            prof.run(x)
    return {name: prof.nodes(require_macs) for name, prof in profilers.items()}


def ms_by_kind(nodes: Sequence[NodeTime]) -> Dict[str, float]:
    """Milliseconds per node kind (:data:`NODE_KINDS`' names, else ``other``)."""
    out: Dict[str, float] = defaultdict(float)
    for n in nodes:
        out[n.kind] += n.ms
    return dict(out)


#: The kinds (of :data:`NODE_KINDS`, and of a PyTorch layer breakdown) whose time the MACs set.
MAC_KINDS = ("conv", "conv_transpose")


def ideal_conv_bound(teacher: Mapping[str, float], student: Mapping[str, float], ideal: float) -> float:
    """Speed-up over the teacher if the student's convolutions (:data:`MAC_KINDS`) took the
    teacher's convolution time divided by ``ideal`` (the MAC ratio) and its other nodes the time
    measured for them; ``teacher``/``student``: time by kind (:func:`ms_by_kind`), in one unit.
    The rest costs in proportion to the activations, which shrink with the width where the MACs
    shrink with its square. A bound only while the student's convolutions run no faster than the
    MAC ratio: in OpenVINO's bfloat16 on AMX narrow students' convolutions beat it
    (``benchmarks/results/speed_allocation_warm_nodes.md``), and then they reach more."""
    conv_teacher = sum(v for k, v in teacher.items() if k in MAC_KINDS)
    rest_student = sum(v for k, v in student.items() if k not in MAC_KINDS)
    return sum(teacher.values()) / (conv_teacher / ideal + rest_student)


def channels_last(compiled: Any) -> bool:
    """Whether the compiled model takes its images channels last (``nhwc``, :data:`LAYOUTS`)."""
    import openvino as ov

    return bool(ov.layout_helpers.get_layout(compiled.input(0)) == ov.Layout("NHWC"))


class StagedInput:
    """The array an IR takes for a float32 N×C×H×W tensor: the tensor's own memory, or for a
    channels-last IR (``channels_last``) its transpose, kept while the same tensor comes back
    unchanged (same object, same version counter), so that repeated timings measure the
    network, not a transpose a caller with H×W×C images does not do."""

    def __init__(self, channels_last: bool):
        self.channels_last = channels_last
        self._staged: Optional[Tuple[torch.Tensor, int, np.ndarray]] = None

    def __call__(self, x: torch.Tensor) -> np.ndarray:
        if not self.channels_last:
            return x.numpy()
        if self._staged is None or self._staged[0] is not x or self._staged[1] != x._version:
            self._staged = (x, x._version, np.ascontiguousarray(x.numpy().transpose(0, 2, 3, 1)))
        return self._staged[2]


class CompiledRunner:
    """Runs the compiled model ``compiled`` on a float32 N×C×H×W tensor and returns one; a
    channels-last model (:func:`channels_last`) gets its input as :class:`StagedInput` keeps it
    and its output is returned as an N×C×H×W view."""

    def __init__(self, compiled: Any):
        self.compiled = compiled
        self.staged = StagedInput(channels_last(compiled))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.from_numpy(np.asarray(self.compiled(self.staged(x))[0]))
        return y.permute(0, 3, 1, 2) if self.staged.channels_last else y


def check_layout(layout: str) -> None:
    """:class:`MGGCUserError` naming the choices unless ``layout`` is one of :data:`LAYOUTS`."""
    if layout not in LAYOUTS:
        raise MGGCUserError(f"--layout {layout}: choose one of {', '.join(LAYOUTS)} (nhwc: images channels last)")


def convert(onnx_file: Path, xml: Path, layout: str = "nchw") -> None:
    """Convert an ONNX file to IR at ``xml`` (``.xml`` suffix required) and its ``.bin``, its
    images in ``layout`` (:data:`LAYOUTS`)."""
    import openvino as ov
    from openvino.preprocess import PrePostProcessor

    check_layout(layout)
    model = ov.convert_model(str(onnx_file))
    if layout == "nhwc":
        ppp = PrePostProcessor(model)
        for ports, side in ((model.inputs, ppp.input), (model.outputs, ppp.output)):
            for i, port in enumerate(ports):
                if port.get_partial_shape().rank.get_length() == 4:  # images; other tensors keep theirs
                    side(i).tensor().set_layout(ov.Layout("NHWC"))
                    side(i).model().set_layout(ov.Layout("NCHW"))
        model = ppp.build()
    ov.save_model(model, str(xml), compress_to_fp16=False)


def write(model: nn.Module, x: torch.Tensor, tmp: Path, dynamic: bool = False, layout: str = "nchw") -> CompiledRunner:
    """Export ``model`` to ONNX, convert it to IR with its images in ``layout`` and place the
    ``.xml`` at ``tmp`` and the weights at ``tmp.with_suffix(".bin")``; return the runner of the
    IR compiled in float32."""
    require("OpenVINO export", MODULES)
    with tempfile.TemporaryDirectory(dir=tmp.parent, prefix=".mggc-openvino-") as work:
        onnx_file = Path(work) / "model.onnx"
        onnx_export.save(model, x, onnx_file, dynamic)
        return _ir_from_onnx(onnx_file, tmp, exact=True, layout=layout)


def from_onnx(src: Path, tmp: Path, layout: str = "nchw") -> CompiledRunner:
    """Convert the ONNX file ``src`` (e.g. the int8 QDQ graph, which OpenVINO runs with int8
    kernels) to IR at ``tmp`` and its weights beside it, its images in ``layout``; return the
    runner of the IR compiled at the CPU plugin's default precision, as a user's
    ``compile_model`` runs it."""
    require("OpenVINO conversion", MODULES)
    return _ir_from_onnx(src, tmp, exact=False, layout=layout)


def _ir_from_onnx(src: Path, tmp: Path, exact: bool, layout: str) -> CompiledRunner:
    """Convert ``src`` to IR beside ``tmp`` (:func:`convert`'s ``layout``), compile it
    (:func:`compile_model`'s ``exact``), then move the weights and the ``.xml`` to ``tmp``."""
    with tempfile.TemporaryDirectory(dir=tmp.parent, prefix=".mggc-openvino-") as work:
        xml = Path(work) / "model.xml"
        convert(src, xml, layout)
        compiled = compile_model(xml, exact=exact)
        os.replace(xml.with_suffix(WEIGHTS_SUFFIX), tmp.with_suffix(WEIGHTS_SUFFIX))
        os.replace(xml, tmp)
    return CompiledRunner(compiled)
