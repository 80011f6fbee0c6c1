"""Where a slim generator's speed-up falls short of its MAC ratio, and which runtime closes it.

For each architecture (CycleGAN's ``resnet_9blocks`` with InstanceNorm, pix2pix's ``unet_256``
with BatchNorm, both ngf 64 at 256²) and each keep rate, a student is cut at uniform widths
rounded to ``--round_to`` (:func:`mggc_plugin.baselines.uniform_widths`, the L1-norm student's
shape; the weights do not matter for time). Then:

1. **Runtimes**: teacher and students timed interleaved on every available runtime
   (:func:`mggc_plugin.deploy.bench.bench`: eager, TorchScript, ONNX Runtime, OpenVINO; BatchNorm
   folded), batch 1, one thread; per runtime the speed-up over the teacher *on the same runtime*
   against the ideal (the MAC ratio), and the best student runtime against the teacher's best,
   among the float32 runtimes and apart among those that may compute in less
   (:data:`~mggc_plugin.deploy.bench.REDUCED_PRECISION`: OpenVINO's default, bfloat16 on AMX).
2. **Per layer** (eager, one thread): every leaf module timed by forward hooks, summed by kind
   (convolutions, transposed convolutions, normalisation, padding, activations, other), beside
   its share of the MACs: a kind whose time share grows from teacher to student is what keeps
   the speed-up below the MAC ratio.
   From these, the *bound with ideal convolutions*: the speed-up the student would reach if
   every (transposed) convolution ran exactly the MAC ratio faster than the teacher's and the
   other layers took the time measured (:func:`mggc_plugin.deploy.openvino.ideal_conv_bound`).
   Where it is below a goal, no convolution kernel reaches the goal in PyTorch eager; only a
   runtime that fuses the other layers, or an architecture without them, can.
3. **Per node on OpenVINO** (float32, one thread, the plugin's performance counters,
   :class:`mggc_plugin.deploy.openvino.Profiler`), where the fused graph runs rather than
   PyTorch's modules: time by node kind, and two bounds (:func:`node_bounds`): the speed-up if each
   of the student's convolutions ran at the MACs per second of the teacher's same layer (what
   is left is the layer mix: first and last layers, whose MACs shrink with the width and not its
   square, and the other nodes), and if every convolution ran at the MAC ratio. The layers that
   lose the most time against their teacher's rate are listed (:func:`slow_layers`): those are
   the kernels that run the narrow widths inefficiently.
4. **Width rounding**: the same at each ``--round_sweep`` multiple (default 1, 8, 16) on each
   ``--sweep_runtimes`` runtime (default eager and ONNX Runtime).
5. **Allocation**: ``--allocations`` students with other widths at the uniform student's MACs
   (:func:`allocations`: each group's keep-rate scaled by its own random factor, then all of them
   by one rate to fit the MACs) timed beside it on ``--allocation_runtime``. A game's students are
   not uniform; if one allocation ran much nearer the MAC ratio, the gap would be the widths'
   to close, otherwise it is the kernels' and the layers'.

Writes ``benchmarks/results/speed_gap.{json,md}``, the machine named. Timings need a quiet
machine: stop other jobs while it runs (``kill -STOP``/``-CONT``).

    python benchmarks/speed_gap.py
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from mggc_plugin import networks
from mggc_plugin.baselines import keep_masks, uniform_widths
from mggc_plugin.channels import ChannelGroups
from mggc_plugin.deploy.bench import (
    REDUCED_PRECISION,
    RUNTIMES,
    TEACHER,
    BenchModel,
    bench,
    deployable,
    exported_ir,
    machine,
)
from mggc_plugin.deploy.openvino import NodeTime, ideal_conv_bound, ms_by_kind, profile
from mggc_plugin.fileio import write_record
from mggc_plugin.macs import count_macs
from mggc_plugin.slim import slim

RESULTS = Path(__file__).resolve().parent / "results"
ARCHS = {"resnet_9blocks": "instance", "unet_256": "batch"}
KINDS = (("conv", (nn.Conv2d,)), ("conv_transpose", (nn.ConvTranspose2d,)),
         ("norm", (nn.InstanceNorm2d, nn.BatchNorm2d)), ("pad", (nn.ReflectionPad2d, nn.ZeroPad2d)),
         ("activation", (nn.ReLU, nn.LeakyReLU, nn.Tanh)))


def kind_of(module: nn.Module) -> str:
    return next((name for name, types in KINDS if isinstance(module, types)), "other")


def student(teacher: nn.Module, x: torch.Tensor, rate: float, round_to: int) -> nn.Module:
    """The teacher cut to the largest uniform keep-rate whose rounded widths fit ``rate`` of its MACs."""
    groups = ChannelGroups.discover(teacher, x)
    widths = uniform_widths(groups, rate, round_to)
    return slim(teacher, groups, keep_masks(groups, widths.widths, "l1_norm")).eval()


@torch.no_grad()
def per_layer(model: nn.Module, x: torch.Tensor, runs: int = 3) -> Dict[str, float]:
    """Seconds per forward pass spent in each kind of leaf module (median-free mean over ``runs``
    after one warm-up; hooks add a little to every layer alike)."""
    spent: Dict[str, float] = defaultdict(float)
    starts: Dict[int, float] = {}
    handles = []
    def start(mod: nn.Module, args: tuple) -> None:
        starts[id(mod)] = time.perf_counter()

    def stop(mod: nn.Module, args: tuple, out: torch.Tensor) -> None:
        spent[kind_of(mod)] += time.perf_counter() - starts[id(mod)]

    for m in model.modules():
        if next(m.children(), None) is None:
            handles += [m.register_forward_pre_hook(start), m.register_forward_hook(stop)]
    model(x)
    spent.clear()
    for _ in range(runs):
        model(x)
    for h in handles:
        h.remove()
    return {k: v / runs for k, v in spent.items()}


def openvino_profiles(models: Sequence[BenchModel], x: torch.Tensor, work: Path,
                      runs: int) -> Dict[str, List[NodeTime]]:
    """Each model's nodes on OpenVINO (float32, one thread), profiled ``runs`` times in turn after
    one warm-up each; the IRs :func:`~mggc_plugin.deploy.bench.bench` timed in ``work`` are reused."""
    return profile({m.name: exported_ir(m, x, work) for m in models}, x, runs)


def _conv_pairs(teacher: Sequence[NodeTime], student: Sequence[NodeTime]) -> List[tuple]:
    # the two IRs come from one architecture, so their convolutions run in the same order
    t_conv, s_conv = [n for n in teacher if n.macs], [n for n in student if n.macs]
    if len(t_conv) != len(s_conv):
        raise ValueError(f"the teacher runs {len(t_conv)} convolutions and the student {len(s_conv)}: "
                         "profiles of different architectures")
    return list(zip(t_conv, s_conv))


def node_bounds(teacher: Sequence[NodeTime], student: Sequence[NodeTime], ideal: float) -> Dict[str, float]:
    """Speed-up over the teacher divided by ``ideal`` (the MAC ratio), from per-node times:
    ``measured``; ``teacher_rate``, had each student convolution run at the MACs per second of the
    teacher's same layer (other nodes as measured); ``ideal_convs``, had every convolution run
    ``ideal`` times faster than the teacher's."""
    pairs = _conv_pairs(teacher, student)
    t_total = sum(n.ms for n in teacher)
    rest = sum(n.ms for n in student if not n.macs)
    at_teacher_rate = sum(t.ms * s.macs / t.macs for t, s in pairs) + rest
    return {"measured": t_total / sum(n.ms for n in student) / ideal,
            "teacher_rate": t_total / at_teacher_rate / ideal,
            "ideal_convs": ideal_conv_bound(ms_by_kind(teacher), ms_by_kind(student), ideal) / ideal}


def slow_layers(teacher: Sequence[NodeTime], student: Sequence[NodeTime], top: int = 5) -> List[Dict[str, float]]:
    """The ``top`` student convolutions that lose the most milliseconds against the MACs per
    second of the teacher's same layer, slowest first."""
    rows = [{"layer": s.name, "kind": s.kind, "teacher_mmacs": t.macs / 1e6, "student_mmacs": s.macs / 1e6,
             "teacher_gmacs_per_s": t.macs / t.ms / 1e6, "student_gmacs_per_s": s.macs / s.ms / 1e6,
             "lost_ms": s.ms - t.ms * s.macs / t.macs} for t, s in _conv_pairs(teacher, student)]
    return sorted(rows, key=lambda r: -r["lost_ms"])[:top]


def allocations(groups: ChannelGroups, macs: float, round_to: int, count: int, spread: float = 3.0,
                seed: int = 0, tolerance: float = 0.01) -> List[List[int]]:
    """``count`` width vectors of ``groups`` whose MACs lie within ``tolerance`` below ``macs``:
    group i keeps ``rate · f_i`` of its channels, with f_i log-uniform in [1/``spread``,
    ``spread``] and ``rate`` the largest that fits (:func:`~mggc_plugin.baselines.uniform_widths`
    with ``factors``). Draws whose rounding cannot land within the tolerance are drawn again;
    ValueError if fewer than ``count`` land, or (from ``uniform_widths``) if even the narrowest
    widths exceed ``macs``."""
    gen = torch.Generator().manual_seed(seed)
    out: List[List[int]] = []
    for _ in range(50 * count):
        if len(out) == count:
            break
        factors = torch.exp((torch.rand(len(groups), generator=gen) * 2 - 1) * math.log(spread)).tolist()
        drawn = uniform_widths(groups, macs / groups.full_macs, round_to, factors)
        if drawn.macs >= (1 - tolerance) * macs and drawn.widths not in out:
            out.append(drawn.widths)
    if len(out) < count:
        raise ValueError(f"only {len(out)} of {count} allocations landed within {tolerance:.0%} of the MACs; "
                         "raise the tolerance or lower round_to")
    return out


def macs_by_kind(model: nn.Module, shape: Sequence[int]) -> Dict[str, float]:
    modules = dict(model.named_modules())
    out: Dict[str, float] = defaultdict(float)
    for layer in count_macs(model, tuple(shape)).layers:
        out[kind_of(modules[layer.name]) if layer.name in modules else "other"] += layer.macs
    return dict(out)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--archs", nargs="+", default=list(ARCHS), choices=tuple(ARCHS))
    p.add_argument("--rates", nargs="+", type=float, default=[0.25, 0.10])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--round_to", type=int, default=8)
    p.add_argument("--runtimes", nargs="+", default=list(RUNTIMES), choices=RUNTIMES)
    p.add_argument("--round_sweep", nargs="+", type=int, default=[1, 8, 16],
                   help="width multiples compared in the rounding table")
    p.add_argument("--sweep_runtimes", nargs="+", default=["eager", "onnxruntime"], choices=RUNTIMES,
                   help="runtimes of the rounding table (those also in --runtimes)")
    p.add_argument("--allocations", type=int, default=8,
                   help="non-uniform students per rate at the uniform student's MACs (0: none)")
    p.add_argument("--allocation_runtime", default="openvino", choices=RUNTIMES)
    p.add_argument("--runs", type=int, default=8)
    p.add_argument("--out", default=str(RESULTS / "speed_gap"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    shape = (1, 3, args.size, args.size)
    x = torch.zeros(shape)
    record: Dict[str, object] = {"machine": machine(), "size": args.size, "round_to": args.round_to, "archs": {}}
    lines = [f"# Speed-up against the MAC ratio — {record['machine']['cpu']}, 1 thread, batch 1, "  # type: ignore[index]
             f"{args.size}², median of {args.runs} interleaved rounds", ""]
    with tempfile.TemporaryDirectory(prefix="mggc-speed-gap-") as work:
        for arch in args.archs:
            torch.manual_seed(0)
            teacher = networks.define_G(3, 3, 64, arch, norm=ARCHS[arch]).eval()
            nets = {TEACHER: teacher}
            for rate in args.rates:
                nets[f"keep{rate * 100:g}"] = student(teacher, x, rate, args.round_to)
            models = [deployable(name, net, shape) for name, net in nets.items()]
            (Path(work) / arch).mkdir()
            result = bench(models, shape, Path(work) / arch, args.runtimes, batches=(1,), threads=(1,),
                           runs=args.runs, warmup=1, log=lambda s: print(s, flush=True))
            layers = {name: {"seconds": per_layer(m.module, x), "macs": macs_by_kind(nets[name], shape)}
                      for name, m in zip(nets, models)}
            nodes = openvino_profiles(models, x, Path(work) / arch, args.runs) if "openvino" in args.runtimes else None
            rounding: Dict[str, List[Dict[str, float]]] = {}
            for rate in args.rates:
                variants = [deployable(TEACHER, teacher, shape)]
                for r in args.round_sweep:
                    variants.append(deployable(f"round_to{r}", student(teacher, x, rate, r), shape))
                (Path(work) / f"{arch}-{rate}").mkdir()
                res = bench(variants, shape, Path(work) / f"{arch}-{rate}",
                            [rt for rt in args.sweep_runtimes if rt in args.runtimes],
                            batches=(1,), threads=(1,), runs=args.runs, warmup=1, log=lambda s: None)
                rounding[f"keep{rate * 100:g}"] = res["rows"]
            allocated = _allocation_rows(teacher, x, args, Path(work) / f"{arch}-alloc")
            record["archs"][arch] = {"bench": result, "per_layer": layers, "rounding": rounding,  # type: ignore[index]
                                     "openvino_nodes": {k: [asdict(n) for n in v] for k, v in (nodes or {}).items()},
                                     "allocations": allocated}
            lines += _markdown(arch, result, layers, rounding, args.round_sweep, nodes)
            lines += _allocation_markdown(allocated, args.allocation_runtime)
    write_record(args.out, record, "\n".join(lines) + "\n")
    return 0


def _allocation_rows(teacher: nn.Module, x: torch.Tensor, args: argparse.Namespace,
                     work: Path) -> Dict[str, Dict[str, object]]:
    """Per rate: the uniform student and ``args.allocations`` others at its MACs, timed with the
    teacher on ``args.allocation_runtime``; then the fastest of the others timed again beside the
    uniform one and the teacher, as the best of several noisy timings is biased towards luck.
    Their widths, the bench rows of both runs and the name of the best."""
    if not args.allocations or args.allocation_runtime not in args.runtimes:
        return {}
    groups = ChannelGroups.discover(teacher, x)
    shape = tuple(x.shape)
    out: Dict[str, Dict[str, object]] = {}
    for rate in args.rates:
        uniform = uniform_widths(groups, rate, args.round_to)
        widths = {"uniform": list(uniform.widths)}
        widths.update({f"alloc{i}": w for i, w in enumerate(
            allocations(groups, uniform.macs, args.round_to, args.allocations))})
        models = {TEACHER: deployable(TEACHER, teacher, shape)}
        models.update({name: deployable(name, slim(teacher, groups, keep_masks(groups, w, "l1_norm")).eval(), shape)
                       for name, w in widths.items()})
        first = _timed(list(models.values()), shape, work / f"{rate}-all", args)
        ratio = _ratios(first)
        best = max((k for k in ratio if k != "uniform"), key=ratio.__getitem__)
        again = _timed([models[TEACHER], models["uniform"], models[best]], shape, work / f"{rate}-again", args)
        out[f"keep{rate * 100:g}"] = {"widths": widths, "rows": first, "again": again, "best": best}
    return out


def _timed(models: Sequence[BenchModel], shape: Sequence[int], folder: Path, args: argparse.Namespace) -> List[Dict]:
    folder.mkdir(parents=True)
    return bench(models, shape, folder, [args.allocation_runtime], batches=(1,), threads=(1,),
                 runs=args.runs, warmup=1, log=lambda s: None)["rows"]


def _ratios(rows: Sequence[Dict]) -> Dict[str, float]:
    return {r["model"]: r["speedup"] / r["ideal_speedup"] for r in rows if r["model"] != TEACHER}


def _allocation_markdown(allocated: Dict[str, Dict], runtime: str) -> List[str]:
    if not allocated:
        return []
    out = [f"Allocation at the uniform student's MACs ({runtime}, speed-up / ideal; the best of the others "
           "timed again beside the uniform one):", "",
           "| rate | uniform | other allocations: min | median | max | again: uniform | again: best | "
           "widths of the best |", "|---|---|---|---|---|---|---|---|"]
    for rate, a in allocated.items():
        ratio, again = _ratios(a["rows"]), _ratios(a["again"])
        others = [v for k, v in ratio.items() if k != "uniform"]
        out.append(f"| {rate} | {ratio['uniform']:.2f} | {min(others):.2f} | {statistics.median(others):.2f} | "
                   f"{max(others):.2f} | {again['uniform']:.2f} | {again[a['best']]:.2f} | "
                   f"{a['widths'][a['best']]} |")
    return out + [""]


def _markdown(arch: str, result: Dict, layers: Dict, rounding: Dict, sweep: Sequence[int],
              nodes: Optional[Dict[str, List[NodeTime]]] = None) -> List[str]:
    rows = result["rows"]
    out = [f"## {arch}", "", "| student | runtime | ms | speed-up | ideal | speed-up / ideal |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        if r["model"] != TEACHER:
            out.append(f"| {r['model']} | {r['runtime']} | {r['median_ms']:.1f} | {r['speedup']:.2f}× | "
                       f"{r['ideal_speedup']:.2f}× | {r['speedup'] / r['ideal_speedup']:.2f} |")
    for exact in (True, False):
        kept = [r for r in rows if (r["runtime"] not in REDUCED_PRECISION) == exact]
        if not kept:
            continue
        which = "float32 runtime" if exact else "reduced-precision runtime"
        best_teacher = min(r["median_ms"] for r in kept if r["model"] == TEACHER)
        for name in sorted({r["model"] for r in kept if r["model"] != TEACHER}):
            best = min((r for r in kept if r["model"] == name), key=lambda r: r["median_ms"])
            out.append(f"\n{name}: best {which} {best['runtime']} ({best['median_ms']:.1f} ms); against the teacher "
                       f"on its best ({best_teacher:.1f} ms): {best_teacher / best['median_ms']:.2f}× for an ideal "
                       f"{best['ideal_speedup']:.2f}× ({best_teacher / best['median_ms'] / best['ideal_speedup']:.2f})")
    out += ["", "Time and MACs by layer kind (eager, 1 thread):", "",
            "| model | kind | ms | share of time | share of MACs |", "|---|---|---|---|---|"]
    for name, d in layers.items():
        total_s, total_m = sum(d["seconds"].values()), sum(d["macs"].values()) or 1.0
        for kind, s in sorted(d["seconds"].items(), key=lambda kv: -kv[1]):
            share = d["macs"].get(kind, 0) / total_m
            out.append(f"| {name} | {kind} | {s * 1e3:.1f} | {s / total_s:.1%} | {share:.1%} |")
    ideals = {r["model"]: r["ideal_speedup"] for r in rows if r["model"] != TEACHER}
    out += ["", "Bound with ideal convolutions (eager; convolutions at the MAC ratio, other layers as measured):", ""]
    for name, ideal in sorted(ideals.items()):
        bound = ideal_conv_bound(layers[TEACHER]["seconds"], layers[name]["seconds"], ideal)
        out.append(f"- {name}: {bound:.2f}× for an ideal {ideal:.2f}× ({bound / ideal:.2f})")
    if nodes:
        out += _node_markdown(nodes, ideals)
    out += ["", "Width rounding (speed-up / ideal):", "",
            "| rate | runtime | " + " | ".join(f"round_to {k}" for k in sweep) + " |",
            "|---|---|" + "---|" * len(sweep)]
    for rate, rws in rounding.items():
        for runtime in sorted({r["runtime"] for r in rws}):
            cells = {r["model"]: r for r in rws if r["runtime"] == runtime}
            out.append(f"| {rate} | {runtime} | " + " | ".join(
                f"{cells[f'round_to{k}']['speedup'] / cells[f'round_to{k}']['ideal_speedup']:.2f}"
                f" ({cells[f'round_to{k}']['ideal_speedup']:.1f}× ideal)" for k in sweep) + " |")
    return out + [""]


def _node_markdown(nodes: Dict[str, List[NodeTime]], ideals: Dict[str, float]) -> List[str]:
    out = ["", "Per node on OpenVINO (float32, 1 thread, performance counters; fused nodes count in the node "
           "they were fused into):", "", "| model | kind | ms | share of time |", "|---|---|---|---|"]
    for name, ns in nodes.items():
        kinds = ms_by_kind(ns)
        total = sum(kinds.values())
        out += [f"| {name} | {k} | {ms:.1f} | {ms / total:.1%} |"
                for k, ms in sorted(kinds.items(), key=lambda kv: -kv[1])]
    out += ["", "Speed-up / ideal from the node times: as measured; had each convolution run at the MACs per "
            "second of the teacher's same layer; had every convolution run at the MAC ratio:", ""]
    for name, ideal in sorted(ideals.items()):
        b = node_bounds(nodes[TEACHER], nodes[name], ideal)
        out.append(f"- {name}: {b['measured']:.2f}; at the teacher's rates {b['teacher_rate']:.2f}; "
                   f"ideal convolutions {b['ideal_convs']:.2f}")
    out += ["", "Convolutions that lose the most time against the teacher's same layer:", "",
            "| student | layer | kind | MMACs teacher → student | GMAC/s teacher → student | ms lost |",
            "|---|---|---|---|---|---|"]
    for name in sorted(ideals):
        out += [f"| {name} | {r['layer']} | {r['kind']} | {r['teacher_mmacs']:.0f} → {r['student_mmacs']:.0f} | "
                f"{r['teacher_gmacs_per_s']:.1f} → {r['student_gmacs_per_s']:.1f} | {r['lost_ms']:.2f} |"
                for r in slow_layers(nodes[TEACHER], nodes[name])]
    return out


if __name__ == "__main__":
    sys.exit(main())
