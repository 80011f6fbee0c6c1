"""``mggc bench``: latency of slim generators (and their teacher) on the runtimes users deploy with.

Each network is prepared as it would be deployed — BatchNorm folded where it keeps running
statistics, the ONNX graph static and simplified (:mod:`.onnx`), the OpenVINO IR converted from it
and run in float32 (``openvino``) or at the CPU plugin's default precision (``openvino_default``:
bfloat16 where the CPU has it, so not exact; :mod:`.openvino`) — and then, per runtime, batch
size and thread count, all networks are timed *interleaved* by
:func:`mggc_plugin.metrics.compare_latency` (every round times each once, in rotated order, so
background load hits them alike; by default each first runs back to back for 0.2 s, so that it is
timed warm as a deployed generator runs, not cold after another network). Reported beside each median
and inter-quartile range: MACs per image (:func:`mggc_plugin.macs.count_macs`), parameters and,
with a teacher, the measured speed-up (median of per-round ratios) and the ideal one (MAC ratio).
Runtimes whose packages are missing are skipped, naming the extra that installs them.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import hashlib
import importlib.metadata as md
import multiprocessing
import os
import platform
import statistics
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, TypeVar, Union

import numpy as np
import torch
from torch import nn

from .. import networks
from ..device import DeviceLike, resolve_device
from ..errors import MGGCFileNotFoundError, MGGCUserError
from ..fileio import atomic_write, atomic_write_json
from ..macs import count_macs
from ..metrics import LatencyComparison, compare_latency
from ..networks import ArchSpec
from ..slim import BUILDERS, read_slim_checkpoint
from . import onnx as onnx_export
from . import openvino as openvino_export
from .fold import fold_batchnorm, unfoldable_batchnorms
from .formats import trace_torchscript
from .runtimes import why_missing
from .subpixel import conv_transposes_as_subpixel, interleave_for

PathLike = Union[str, Path]
T = TypeVar("T")
RUNTIMES = ("eager", "eager_channels_last", "torchscript", "onnxruntime", "openvino", "openvino_default")
RUNTIME_MODULES = {"eager": (), "eager_channels_last": (), "torchscript": (), "onnxruntime": onnx_export.MODULES,
                   "openvino": openvino_export.MODULES, "openvino_default": openvino_export.MODULES}
#: The runtimes that may compute in less than float32 (their outputs are not checked for parity).
REDUCED_PRECISION = ("openvino_default",)
#: The runtimes that run the OpenVINO IR (:func:`exported_ir`): in float32, and at the default precision.
OPENVINO_RUNTIMES = ("openvino", "openvino_default")
#: The runtimes that run the exported ONNX graph (directly, or converted to OpenVINO IR).
EXPORTED_RUNTIMES = ("onnxruntime",) + OPENVINO_RUNTIMES
#: The runtimes that run the PyTorch module itself, on the device asked for.
TORCH_RUNTIMES = ("eager", "eager_channels_last", "torchscript")
TEACHER = "teacher"
#: Seconds each network runs untimed, back to back, before each timed pass (compare_latency's warm_s).
WARM_S = 0.2
CPU = torch.device("cpu")


def warm_note(warm_s: float) -> str:
    """How the networks of a timing with ``warm_s`` (:func:`bench`) were timed, for a table's header."""
    if warm_s:
        return f"each network run back to back for {warm_s:g} s before each timed pass"
    return "each pass timed cold, right after another network's"


def add_warm_argument(p: argparse.ArgumentParser) -> None:
    """``--warm_s`` (default :data:`WARM_S`), as :func:`bench` takes it."""
    p.add_argument("--warm_s", type=float, default=WARM_S,
                   help=f"seconds each network runs back to back before each timed pass, so that it is timed warm as "
                        f"it runs deployed; 0 times it cold, right after another network's pass, as every timing "
                        f"before this option (default: {WARM_S:g})")


def add_processes_argument(p: argparse.ArgumentParser) -> None:
    """``--processes`` (default 1), as :func:`bench` takes it."""
    p.add_argument("--processes", type=int, default=1,
                   help="repeat each timing in this many fresh processes, each compiling the networks anew, and "
                        "report the spread between them (default: 1, in this process)")


def runtime_unavailable(runtime: str) -> Optional[str]:
    """None when ``runtime`` can run here, else why not and the pip extra that brings it."""
    return why_missing(f"the {runtime} runtime", RUNTIME_MODULES[runtime])


@dataclass(frozen=True)
class BenchModel:
    """A network to time: ``module`` as deployed (BatchNorm folded if possible), ``macs`` per
    image at the bench size, ``params``; ``openvino_module``, when set, is what the OpenVINO
    runtimes run instead (the sub-pixel form ``mggc export --format openvino`` writes)."""

    name: str
    module: nn.Module
    macs: float
    params: int
    openvino_module: Optional[nn.Module] = None


def deployable(name: str, net: nn.Module, image_shape: Sequence[int], subpixel: bool = False) -> BenchModel:
    """``net`` as deployed: BatchNorm folded where it keeps running statistics and, with
    ``subpixel``, U-Net transposed convolutions as sub-pixel convolutions (:mod:`.subpixel`, as
    ``mggc export --format onnx|openvino`` writes them: interleaved for ONNX Runtime and PyTorch
    by ``pixel_shuffle``, for OpenVINO by a transpose, :func:`.subpixel.interleave_for`). MACs and
    parameters are ``net``'s own, so that the ideal speed-up keeps the package's MAC convention."""
    net = net.eval()
    macs = count_macs(net, image_shape).total
    params = sum(p.numel() for p in net.parameters())
    deployed = net if unfoldable_batchnorms(net) else fold_batchnorm(net)
    if not subpixel:
        return BenchModel(name, deployed, macs, params)
    # after folding: a BatchNorm after a sub-pixel layer no longer follows a convolution
    module, rewritten = conv_transposes_as_subpixel(deployed, interleave_for("onnx"))
    # nothing rewritten (a ResNet): OpenVINO runs the same graph, exported once
    openvino = conv_transposes_as_subpixel(deployed, interleave_for("openvino"))[0] if rewritten else None
    return BenchModel(name, module, macs, params, openvino)


def load_teacher(slim_path: PathLike, teacher: PathLike) -> nn.Module:
    """The full-width generator of the slim checkpoint's architecture with the upstream weights
    ``teacher`` (a ``*_net_G*.pth`` file, or a folder holding ``latest_net_G.pth``)."""
    path = Path(teacher)
    if path.is_dir():
        path = path / "latest_net_G.pth"
    if not path.is_file():
        raise MGGCFileNotFoundError(f"--teacher {teacher}: no such generator checkpoint; give an upstream *_net_G.pth "
                                    f"file (a CycleGAN's *_net_G_A.pth) or a folder holding latest_net_G.pth")
    payload = read_slim_checkpoint(slim_path)
    arch = ArchSpec(payload["arch"]["builder"], payload["arch"]["kwargs"])
    if arch.builder not in BUILDERS:
        raise MGGCUserError(f"{slim_path} was built by {arch.builder!r}, which is not registered: call "
                            f"mggc_plugin.register_builder first")
    return networks.load_state(BUILDERS[arch.builder](**arch.kwargs), path)


class ChannelsLast(nn.Module):
    """``net`` with its weights in the channels-last memory format, fed its input converted to it;
    the output equals the NCHW one to float rounding. Whether it is faster depends on the network
    (``benchmarks/results/speed_gap.md``: 1.66× for a unet_256 student, slower for resnet_9blocks)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.contiguous(memory_format=torch.channels_last))


class RuntimeModule(nn.Module):
    """A runtime's run function as a module, so that compare_latency times it like a network."""

    def __init__(self, run: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__()
        self.run = run

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)


def runtime_device(runtime: str, device: torch.device) -> torch.device:
    """Where ``runtime`` computes when ``device`` is asked for: eager (either memory format) and
    TorchScript on it; ONNX Runtime on a CUDA ``device`` only when its CUDA provider is installed
    (the onnxruntime-gpu build, :func:`~.onnx.cuda_provider_available`), else on the CPU;
    OpenVINO on the CPU."""
    if runtime in TORCH_RUNTIMES:
        return device
    if runtime == "onnxruntime" and device.type == "cuda" and onnx_export.cuda_provider_available():
        return device
    return CPU


def prepare(runtime: str, model: BenchModel, x: torch.Tensor, threads: int, work: Path,
            device: torch.device = CPU, layout: str = "nchw") -> nn.Module:
    """``model`` ready to run in ``runtime`` on inputs shaped like ``x`` with ``threads`` threads,
    on ``device`` (:func:`runtime_device`); exported files go to ``work`` (reused across thread
    counts). Traces and exports are made from the CPU module and ``x`` on the CPU. ``layout``:
    the OpenVINO IR's (:data:`.openvino.LAYOUTS`); every runtime is called with N×C×H×W tensors
    (:class:`.openvino.CompiledRunner`)."""
    stem = work / f"{model.name}-b{x.shape[0]}"
    if runtime == "eager":
        return model.module
    model.module.cpu()  # an earlier eager timing may have left it on the GPU
    if runtime == "eager_channels_last":
        return ChannelsLast(copy.deepcopy(model.module))
    if runtime == "torchscript":
        return trace_torchscript(model.module, x, stem.with_suffix(".ts"))
    if runtime == "onnxruntime":
        return RuntimeModule(onnx_export.runner(exported_onnx(model, x, work), threads, device))
    compiled = openvino_export.compile_model(exported_ir(model, x, work, layout), threads,
                                             exact=runtime not in REDUCED_PRECISION)
    return RuntimeModule(openvino_export.CompiledRunner(compiled))


def exported_onnx(model: BenchModel, x: torch.Tensor, work: Path) -> Path:
    """``model``'s ONNX graph for inputs shaped like ``x`` in ``work``, exported on first use.

    The file is reused only while its :func:`fingerprint` stamp (``.sha256`` beside it) matches
    the module: a work folder kept across runs may hold an earlier network of the same name, and
    timing that instead would go unnoticed (the MACs are counted from the module). A stale graph
    is exported again and its OpenVINO IR removed, so that :func:`exported_ir` converts it anew."""
    onnx_file = work / f"{model.name}-b{x.shape[0]}.onnx"
    stamp = onnx_file.with_suffix(".sha256")
    digest = fingerprint(model.module, x)
    if onnx_file.exists() and stamp.is_file() and stamp.read_text() == digest:
        return onnx_file
    irs = [ir_path(onnx_file, layout) for layout in openvino_export.LAYOUTS]
    for stale in (stamp, *irs, *(xml.with_suffix(openvino_export.WEIGHTS_SUFFIX) for xml in irs)):
        stale.unlink(missing_ok=True)
    onnx_export.save(model.module.cpu(), x.cpu(), onnx_file)
    atomic_write(stamp, lambda tmp: tmp.write_text(digest))
    return onnx_file


def fingerprint(module: nn.Module, x: torch.Tensor) -> str:
    """SHA-256 of ``module``'s structure (its ``repr``: an activation moved into a sub-pixel layer
    changes the graph, not the state), state (names, shapes, dtypes, values) and ``x``'s shape."""
    h = hashlib.sha256(f"{module!r}{tuple(x.shape)}".encode())
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu()
        h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def exported_ir(model: BenchModel, x: torch.Tensor, work: Path, layout: str = "nchw") -> Path:
    """``model``'s OpenVINO IR (``.xml``) for inputs shaped like ``x`` in ``work``, its images in
    ``layout`` (named ``…-nhwc.xml`` when channels last), converted from :func:`exported_onnx` (of
    ``model.openvino_module`` when set, named ``<name>-openvino``) on first use."""
    if model.openvino_module is not None:
        model = BenchModel(f"{model.name}-openvino", model.openvino_module, model.macs, model.params)
    onnx_file = exported_onnx(model, x, work)
    xml = ir_path(onnx_file, layout)
    if not xml.exists():
        openvino_export.convert(onnx_file, xml, layout)
    return xml


def ir_path(onnx_file: Path, layout: str) -> Path:
    """Where :func:`exported_ir` converts ``onnx_file`` to, for images in ``layout``."""
    return onnx_file.with_suffix(".xml") if layout == "nchw" else onnx_file.with_name(f"{onnx_file.stem}-{layout}.xml")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def machine(device: torch.device = CPU) -> Dict[str, Any]:
    versions = {}
    for dist in ("torch", "onnxruntime", "onnxruntime-gpu", "openvino"):
        with contextlib.suppress(md.PackageNotFoundError):
            versions[dist] = md.version(dist)
    info = {"cpu": cpu_name(), "cores": os.cpu_count(), "usable_cores": usable_cores(),
            "python": platform.python_version(), "versions": versions}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def bench(models: Sequence[BenchModel], image_shape: Sequence[int], work: Path, runtimes: Sequence[str] = RUNTIMES,
          batches: Sequence[int] = (1, 8), threads: Sequence[int] = (1, 0), runs: int = 10, warmup: int = 2,
          log: Callable[[str], None] = print, device: DeviceLike = None, warm_s: float = WARM_S,
          processes: int = 1, layout: str = "nchw") -> Dict[str, Any]:
    """Time ``models`` (the first is the reference for speed-ups when named :data:`TEACHER`) on
    every available runtime × batch × threads (0: all usable cores). ``device``
    (:func:`~mggc_plugin.device.resolve_device`; ``None``: CUDA when available) is where eager
    PyTorch and TorchScript run, and ONNX Runtime when it has its CUDA provider
    (:func:`runtime_device`); each row names its ``device``. On CUDA every pass is synchronised
    (:func:`~mggc_plugin.metrics.compare_latency`). ``warm_s``: seconds each network runs untimed, back
    to back, before each timed pass (0: timed cold, right after another network's pass).
    ``processes``: how many times each timing is repeated, each in a fresh process
    (:func:`in_fresh_process`; 1: once, in this one) — one process can run at another speed than
    the next (on a 2-core AMD EPYC one ran a whole timing 2× slower; on a Xeon the bfloat16 unet_256
    teacher's time moved by 1.5× from process to process), and one process cannot show that
    spread (:func:`latency_fields` and :func:`speedup_fields` say how the repeats are combined).
    ``layout``: how the OpenVINO runtimes' IR takes and returns images (:data:`.openvino.LAYOUTS`).
    Returns the JSON-ready result: ``machine``, the settings, ``rows`` and ``skipped`` (runtime →
    reason)."""
    dev = resolve_device(device)
    openvino_export.check_layout(layout)
    bad = [r for r in runtimes if r not in RUNTIMES]
    if bad:
        raise MGGCUserError(f"--runtimes {' '.join(bad)}: choose from {' '.join(RUNTIMES)}")
    if (runs < 1 or warmup < 0 or warm_s < 0 or processes < 1 or any(b < 1 for b in batches)
            or any(t < 0 for t in threads)):
        raise MGGCUserError(f"--runs {runs} --warmup {warmup} --warm_s {warm_s} --processes {processes} --batch "
                            f"{list(batches)} --threads {list(threads)}: need runs >= 1, warmup >= 0, warm_s >= 0, "
                            f"processes >= 1, batches >= 1 and threads >= 0 (0: all cores)")
    teacher = models[0] if models[0].name == TEACHER else None
    rows: List[Dict[str, Any]] = []
    skipped = {}
    for runtime in runtimes:
        reason = runtime_unavailable(runtime)
        if reason is not None:
            skipped[runtime] = reason
            log(f"skipped {runtime}: {reason}")
            continue
        rdev = runtime_device(runtime, dev)
        for batch in batches:
            shape = (batch, *image_shape[1:])
            if processes > 1:
                export_files(models, runtime, shape, work, layout)
            for t in threads:
                n = t or usable_cores()
                timing = functools.partial(timed, models, runtime, shape, n, work, rdev, runs, warmup, warm_s, layout)
                comparisons = [timing()] if processes == 1 else [in_fresh_process(timing) for _ in range(processes)]
                for m in models:
                    row = {"model": m.name, "runtime": runtime, "device": str(rdev), "batch": batch, "threads": n,
                           **latency_fields(comparisons, m.name), "gmacs": m.macs / 1e9, "params_m": m.params / 1e6}
                    if teacher is not None:
                        row.update(speedup_fields(comparisons, m.name), ideal_speedup=teacher.macs / m.macs)
                    rows.append(row)
                    log(f"{runtime} batch {batch} threads {n}: {m.name} {row['median_ms']:.2f} ms")
    for m in models:
        m.module.cpu()
    return {"machine": machine(dev), "device": str(dev), "input_shape": list(image_shape), "runs": runs,
            "warmup": warmup, "warm_s": warm_s, "processes": processes, "openvino_layout": layout,
            "teacher": teacher is not None, "rows": rows, "skipped": skipped}


def export_files(models: Sequence[BenchModel], runtime: str, shape: Sequence[int], work: Path,
                 layout: str = "nchw") -> None:
    """Write the files ``runtime`` loads ``models`` from (ONNX graphs, OpenVINO IR) into ``work``,
    so that processes timing them repeatedly only load and compile them. On a 2-core AMD EPYC the
    process that wrote them ran its first timing's teacher 1.8–4.0× slower than the two processes
    after it in 5 of 6 units of ``benchmarks/speed_allocation.py --processes 3`` with new exports,
    and in none of 2 with every file already written (the cause was not found; exporting and
    then timing in a fresh process alone did not slow it)."""
    if runtime not in EXPORTED_RUNTIMES:
        return
    x = torch.zeros(*shape)
    for m in models:
        if runtime in OPENVINO_RUNTIMES:
            exported_ir(m, x, work, layout)
        else:
            exported_onnx(m, x, work)


def timed(models: Sequence[BenchModel], runtime: str, shape: Sequence[int], threads: int, work: Path,
          device: torch.device, runs: int, warmup: int, warm_s: float, layout: str = "nchw") -> LatencyComparison:
    """One interleaved timing of ``models`` on ``runtime`` with inputs of ``shape``
    (:func:`prepare`, :func:`~mggc_plugin.metrics.compare_latency`; the first model is the
    reference): what :func:`bench` repeats in fresh processes."""
    x = torch.zeros(*shape)
    nets = {m.name: prepare(runtime, m, x, threads, work, device, layout) for m in models}
    # ONNX Runtime and OpenVINO take host arrays (copied to the GPU inside ONNX Runtime's run).
    input_device = str(device) if runtime in TORCH_RUNTIMES else "cpu"
    return compare_latency(nets, tuple(shape), rounds=runs, warmup=warmup, threads=threads, device=input_device,
                           warm_s=warm_s)


def in_fresh_process(call: Callable[[], T]) -> T:
    """``call()`` run in a new Python process (``spawn``: nothing inherited but the arguments),
    which compiles its networks anew; exported files it finds (:func:`exported_onnx`'s stamp)
    are reused, as :func:`bench` makes them before the first."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(call).result()


def latency_fields(comparisons: Sequence[LatencyComparison], name: str) -> Dict[str, Any]:
    """A row's latency of ``name`` from one timing or from several, each in its own process:
    ``median_ms`` (the median of the timings' medians), ``iqr_ms`` (over all their rounds pooled)
    and, from several, ``process_ms`` (each timing's median, in order)."""
    pooled = np.asarray([t for c in comparisons for t in c.times_s[name]]) * 1e3
    q1, q3 = np.percentile(pooled, [25, 75])
    medians = [c.median_s[name] * 1e3 for c in comparisons]
    out: Dict[str, Any] = {"median_ms": statistics.median(medians), "iqr_ms": float(q3 - q1)}
    if len(comparisons) > 1:
        out["process_ms"] = medians
    return out


def speedup_fields(comparisons: Sequence[LatencyComparison], name: str) -> Dict[str, Any]:
    """``name``'s speed-up over the timings' reference: ``speedup`` (the median of the timings'
    speed-ups) and, from several timings, ``process_speedups`` (each timing's, in order)."""
    speedups = [c.speedup[name] for c in comparisons]
    out: Dict[str, Any] = {"speedup": statistics.median(speedups)}
    if len(comparisons) > 1:
        out["process_speedups"] = speedups
    return out


def markdown(result: Dict[str, Any]) -> str:
    """The result as a Markdown table with a header naming the machine and settings."""
    m = result["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    size = "x".join(map(str, result["input_shape"][1:]))
    processes = result.get("processes", 1)
    repeats = (f", repeated in {processes} fresh processes (median: of their medians, whose range is in brackets; "
               f"IQR: of all their rounds)" if processes > 1 else "")
    nhwc = ", OpenVINO's IR taking images channels last" if result.get("openvino_layout") == "nhwc" else ""
    lines = [f"Latency per forward pass, input {size} per image{nhwc}, median and IQR of {result['runs']} interleaved "
             f"rounds after {result['warmup']} warm-up ({warm_note(result.get('warm_s', 0.0))}){repeats} — {m['cpu']}, "
             f"{m['cores']} cores ({m['usable_cores']} usable), "
             f"{'GPU ' + m['gpu'] + ', ' if 'gpu' in m else ''}{versions}", "",
             "| model | runtime | batch | threads | median (ms) | IQR (ms) | G MACs/image | params (M) | speed-up | "
             "ideal (MAC ratio) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        speed = (f"{r['speedup']:.2f}× | {r['ideal_speedup']:.2f}×" if "speedup" in r else "– | –")
        runtime = r["runtime"] if r.get("device", "cpu") == "cpu" else f"{r['runtime']} ({r['device']})"
        spread = f" ({min(r['process_ms']):.2f}–{max(r['process_ms']):.2f})" if "process_ms" in r else ""
        lines.append(f"| {r['model']} | {runtime} | {r['batch']} | {r['threads']} | {r['median_ms']:.2f}{spread} | "
                     f"{r['iqr_ms']:.2f} | {r['gmacs']:.3g} | {r['params_m']:.3g} | {speed} |")
    for runtime, reason in result["skipped"].items():
        lines.append(f"\nSkipped {runtime}: {reason}")
    return "\n".join(lines) + "\n"


def write(result: Dict[str, Any], out: PathLike) -> List[Path]:
    """Write the JSON at ``out`` and the Markdown beside it (``.md``), atomically."""
    out = Path(out)
    md_path = out.with_suffix(".md")
    atomic_write_json(out, result, indent=2)
    atomic_write(md_path, lambda tmp: tmp.write_text(markdown(result)))
    return [out, md_path]
