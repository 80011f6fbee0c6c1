"""Issue 14's goal architectures at :func:`~mggc_plugin.baselines.fastest_widths`' allocations:
how near the MAC ratio a student runs when its MACs are spent where the runtime is fast.

For each architecture (``resnet_9blocks`` with InstanceNorm, ``unet_256`` with BatchNorm, ngf 64,
256², as ``speed_gap.py``) the teacher's latency table on ``--runtime`` is measured once
(:func:`mggc_plugin.latency_table.measure`, one thread; cached in ``--work``, minutes each). At
each keep rate, the uniform student (:func:`~mggc_plugin.baselines.uniform_widths`, the L1-norm
student's shape) and the ``fastest_widths`` student at each ``--floors`` value (no group below
that share of its uniform width) are timed interleaved with the teacher
(:func:`mggc_plugin.deploy.bench.bench`, batch 1, one thread, BatchNorm folded) on ``--runtime``
and on ``--also`` (default OpenVINO's own precision, bfloat16 on AMX). Reported per student: its
MACs, the speed-up over the teacher on the same runtime, the ideal (the MAC ratio), their ratio,
the table's estimate of that ratio, and the speed-up of the student on its fastest runtime over
the teacher on the teacher's fastest. Weights do not matter for time; which widths cost
quality is the facades screen's question (``game_screen.py``, ``*_fast*`` configurations).

With ``--search RUNTIME`` each ``fast<floor>`` student is also improved by timing
(:func:`~mggc_plugin.baselines.measured_widths`: exchanges of channels between groups, timed
interleaved with the incumbent on that runtime, the latency table choosing half of the
candidates) into a ``search<floor>`` student, timed afresh with the others; the search's steps
are recorded.

``--processes N`` repeats every timing in N fresh processes (:func:`mggc_plugin.deploy.bench.bench`)
and gives the best-runtime ratio a Student-t interval over them; use at least 3.

Writes ``benchmarks/results/speed_allocation.{json,md}``, the machine named. Timings need a
quiet machine.

    python benchmarks/speed_allocation.py
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from mggc_plugin import networks
from mggc_plugin.baselines import fastest_widths, keep_masks, measured_widths, uniform_widths
from mggc_plugin.channels import ChannelGroups
from mggc_plugin.deploy.bench import (
    OPENVINO_RUNTIMES,
    REDUCED_PRECISION,
    RUNTIMES,
    TEACHER,
    BenchModel,
    add_processes_argument,
    add_warm_argument,
    bench,
    deployable,
    exported_ir,
    machine,
    prepare,
    warm_note,
)
from mggc_plugin.deploy.openvino import LAYOUTS, ideal_conv_bound, ms_by_kind, profile
from mggc_plugin.fileio import atomic_write, atomic_write_json
from mggc_plugin.latency_table import LatencyTable, load_or_measure, times_subpixel
from mggc_plugin.metrics import compare_latency, t_interval
from mggc_plugin.slim import slim

RESULTS = Path(__file__).resolve().parent / "results"
ARCHS = {"resnet_9blocks": "instance", "unet_256": "batch"}


def teacher_table(arch: str, teacher: torch.nn.Module, groups: ChannelGroups, runtime: str,
                  work: Path, subpixel: bool = False) -> LatencyTable:
    """The teacher's one-thread latency table on ``runtime``, its U-Net transposed convolutions
    timed as sub-pixel ones when ``subpixel`` (as the networks are then deployed), loaded from
    ``work`` or measured (again, when the stored one was timed otherwise)."""
    suffix = "-subpixel" if times_subpixel(teacher, subpixel) else ""
    name = f"{arch}-{groups.input_shape[-1]}-{runtime}-t1{suffix}.json"
    return load_or_measure(work / name, teacher, groups, runtime, subpixel=subpixel)


def allocation_widths(groups: ChannelGroups, table: LatencyTable, rate: float, round_to: int,
                      floors: Sequence[float]) -> Dict[str, List[int]]:
    """``uniform`` and ``fast<floor>`` widths at ``rate`` of the MACs; a floor whose widths equal
    an earlier entry's is left out (it would time the same network twice)."""
    widths = {"uniform": uniform_widths(groups, rate, round_to).widths}
    for floor in floors:
        w = fastest_widths(groups, table, rate, round_to, floor)
        if w not in widths.values():
            widths[f"fast{floor:g}"] = w
    return widths


def recorded_widths(record: Dict, arch: str, rate: float) -> Dict[str, List[int]]:
    """The students' widths ``record`` (an earlier run's JSON) holds for ``arch`` at ``rate``."""
    for unit in record["units"]:
        if unit["arch"] == arch and unit["rate"] == rate:
            return dict(unit["widths"])
    raise SystemExit(f"--widths_from: no {arch} unit at rate {rate:g} in it; give its architectures and rates")


def searched_widths(teacher: torch.nn.Module, groups: ChannelGroups, table: LatencyTable, rate: float,
                    widths: Dict[str, List[int]], args: argparse.Namespace, folder: Path) -> Dict[str, Dict]:
    """``search<floor>`` per ``args.floors`` entry whose ``fast<floor>`` is in ``widths``:
    :func:`measured_widths` from those widths, timed on ``args.search`` (``args.search_steps``
    steps of ``args.search_candidates`` candidates, ``args.runs`` rounds each). Returns
    name → {"widths", "start", "steps"}."""
    shape = (1, *groups.input_shape[1:])
    x = torch.zeros(shape)
    prepared: Dict[Tuple[int, ...], torch.nn.Module] = {}

    def net(w: List[int]) -> torch.nn.Module:
        if tuple(w) not in prepared:
            module = slim(teacher, groups, keep_masks(groups, w, "uniform")).eval()
            name = "w" + "-".join(map(str, w))
            model = deployable(name, module, shape, args.subpixel)
            prepared[tuple(w)] = prepare(args.search, model, x, 1, folder, layout=args.layout)
        return prepared[tuple(w)]

    def time_widths(batch: Sequence[List[int]]) -> List[float]:
        nets = {str(i): net(w) for i, w in enumerate(batch)}
        c = compare_latency(nets, shape, rounds=args.runs, warmup=1, threads=1, warm_s=args.warm_s)
        print("  search: " + ", ".join(f"{c.median_s[k] * 1e3:.2f}" for k in nets) + " ms", flush=True)
        return [c.median_s[k] * 1e3 for k in nets]

    def estimate(w: List[int]) -> float:
        return float(table(groups, keep_masks(groups, w, "uniform")))

    out = {}
    for floor in args.floors:
        name = f"fast{floor:g}"
        if name in widths:  # allocation_widths leaves out a floor that repeats an earlier entry's widths
            found = measured_widths(groups, widths[name], rate, time_widths, args.round_to, floor=floor,
                                    candidates=args.search_candidates, steps=args.search_steps, estimate=estimate)
            out[f"search{floor:g}"] = {"widths": found.widths, "start": name, "steps": found.steps}
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--archs", nargs="+", default=list(ARCHS), choices=tuple(ARCHS))
    p.add_argument("--rates", nargs="+", type=float, default=[0.25, 0.10])
    p.add_argument("--floors", nargs="+", type=float, default=[0.0, 0.5, 0.75],
                   help="fastest_widths floors: each group keeps at least this share of its uniform width")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--round_to", type=int, default=8)
    p.add_argument("--runtime", default="openvino", choices=RUNTIMES, help="the latency table's runtime")
    p.add_argument("--also", nargs="*", default=["openvino_default"], choices=RUNTIMES,
                   help="runtimes the same students are also timed on")
    p.add_argument("--batch", type=int, default=1, help="images per inference (the latency tables are batch 1's)")
    p.add_argument("--runs", type=int, default=8)
    add_warm_argument(p)
    add_processes_argument(p)
    p.add_argument("--work", default="~/.cache/mggc-plugin/speed_allocation", help="latency tables, exports")
    p.add_argument("--out", default=str(RESULTS / "speed_allocation"))
    p.add_argument("--subpixel", action="store_true",
                   help="deploy every network, the teacher too, with its U-Net transposed convolutions as sub-pixel "
                        "convolutions (mggc_plugin.deploy.subpixel), and time the latency table's layers so")
    p.add_argument("--layout", choices=LAYOUTS, default=LAYOUTS[0],
                   help="how the OpenVINO runtimes' IR takes and returns images (nhwc: channels last, for every "
                        "network, the teacher too)")
    p.add_argument("--profile", action="store_true",
                   help="also time every network node by node on each OpenVINO runtime (performance counters)")
    p.add_argument("--search", choices=RUNTIMES,
                   help="also improve each fast<floor> student by timing on this runtime (measured_widths)")
    p.add_argument("--search_steps", type=int, default=10)
    p.add_argument("--search_candidates", type=int, default=6)
    p.add_argument("--widths_from", help="time the students an earlier record (JSON) holds for each architecture and "
                                         "rate instead of allocating (or searching) them anew")
    p.add_argument("--render", action="store_true", help="only write --out's Markdown again from its JSON")
    args = p.parse_args(argv)
    if args.render:
        write_markdown(json.loads(Path(args.out).with_suffix(".json").read_text()), Path(args.out))
        return 0
    torch.set_num_threads(1)
    work = Path(args.work).expanduser()
    work.mkdir(parents=True, exist_ok=True)
    shape = (1, 3, args.size, args.size)
    x = torch.zeros(shape)
    runtimes = [args.runtime, *[r for r in args.also if r != args.runtime]]
    record: Dict[str, object] = {"machine": machine(), "size": args.size, "batch": args.batch,
                                 "round_to": args.round_to, "subpixel": args.subpixel, "openvino_layout": args.layout,
                                 "table_subpixel": args.subpixel,
                                 "runtime": args.runtime, "runtimes": runtimes, "runs": args.runs,
                                 "warm_s": args.warm_s, "processes": args.processes, "search": args.search,
                                 "search_steps": args.search_steps,
                                 "search_candidates": args.search_candidates, "widths_from": args.widths_from,
                                 "units": []}
    for arch in args.archs:
        torch.manual_seed(0)
        teacher = networks.define_G(3, 3, 64, arch, norm=ARCHS[arch]).eval()
        groups = ChannelGroups.discover(teacher, x)
        table = teacher_table(arch, teacher, groups, args.runtime, work, args.subpixel)
        for rate in args.rates:
            folder = work / f"{arch}-{rate:g}"
            folder.mkdir(exist_ok=True)
            searches: Dict[str, Dict] = {}
            if args.widths_from:
                widths = recorded_widths(json.loads(Path(args.widths_from).read_text()), arch, rate)
            else:
                widths = allocation_widths(groups, table, rate, args.round_to, args.floors)
                if args.search:
                    searches = searched_widths(teacher, groups, table, rate, widths, args, folder)
                widths.update({name: found["widths"] for name, found in searches.items()})
            masks = {name: keep_masks(groups, w, "uniform") for name, w in widths.items()}
            nets = {TEACHER: teacher, **{name: slim(teacher, groups, m).eval() for name, m in masks.items()}}
            models = [deployable(name, net, shape, args.subpixel) for name, net in nets.items()]
            result = bench(models, shape, folder, runtimes, batches=(args.batch,), threads=(1,), runs=args.runs,
                           warmup=1, warm_s=args.warm_s, processes=args.processes, layout=args.layout,
                           log=lambda s: print(s, flush=True))
            estimate = {name: table.full_ms / float(table(groups, m)) for name, m in masks.items()}
            unit = {"arch": arch, "rate": rate, "widths": widths, "table_speedup": estimate, "rows": result["rows"],
                    "skipped": result.get("skipped", {}), "searches": searches}
            if args.profile:
                unit["nodes"] = node_times(models, x, folder, runtimes, args.runs, args.warm_s, args.layout)
            record["units"].append(unit)  # type: ignore[attr-defined]
            atomic_write_json(Path(args.out).with_suffix(".json"), record)
    write_markdown(record, Path(args.out))
    return 0


def node_times(models: Sequence[BenchModel], x: torch.Tensor, folder: Path, runtimes: Sequence[str],
               runs: int, warm_s: float = 0.0, layout: str = "nchw") -> Dict[str, Dict[str, Dict[str, float]]]:
    """Milliseconds per node kind of each model (runtime → model → kind), on the OpenVINO runtimes
    among ``runtimes``, from the IRs (images in ``layout``) the timing left in ``folder``."""
    irs = {m.name: exported_ir(m, x, folder, layout) for m in models}
    return {runtime: {name: ms_by_kind(nodes) for name, nodes in
                      profile(irs, x, runs, exact=runtime not in REDUCED_PRECISION, warm_s=warm_s).items()}
            for runtime in runtimes if runtime in OPENVINO_RUNTIMES}


def write_markdown(record: Dict, out: Path) -> None:
    """``out.md`` from the record, also printed."""
    text = markdown(record)
    atomic_write(out.with_suffix(".md"), lambda tmp: tmp.write_text(text))
    print(text)


def markdown(record: Dict) -> str:
    """One row per (architecture, rate, student, runtime): speed-up, ideal and their ratio."""
    processes = record.get("processes", 1)
    lines = [f"# Speed-up / ideal at fastest_widths' allocations — {record['machine']['cpu']}, 1 thread, "
             f"batch {record.get('batch', 1)}, "
             f"{record['size']}², median of {record['runs']} interleaved rounds, "
             f"{warm_note(record.get('warm_s', 0.0))}", "",
             f"Latency table on `{record['runtime']}`"
             + (" (U-Net transposed convolutions timed as sub-pixel ones)" if record.get("table_subpixel") else "")
             + "; `fast<f>`: no group below f × its uniform width. "
             "est.: the ratio the table predicts."
             + (f" `search<f>`: `fast<f>` improved by timing on `{record['search']}` ({record['search_steps']} steps "
                f"of {record['search_candidates']} candidates; `measured_widths`), then timed afresh here."
                if record.get("search") else "")
             + (f" Students' widths from `{Path(record['widths_from']).name}`." if record.get("widths_from") else "")
             + (" Every network, the teacher too, deployed with its U-Net transposed convolutions as sub-pixel "
                "convolutions (`--subpixel`); MACs in the package's convention, of the networks as pruned."
                if record.get("subpixel") else "")
             + (" OpenVINO's IRs take and return images channels last (`--layout nhwc`)."
                if record.get("openvino_layout") == "nhwc" else ""), "",
             "| arch | rate | student | runtime | MACs | speed-up | ideal | / ideal | "
             + ("/ ideal per process | " if processes > 1 else "") + "est. / ideal | widths |",
             "|---|---|---|---|---|---|---|---|---|---|" + ("---|" if processes > 1 else "")]
    for unit in record["units"]:
        for row in unit["rows"]:
            name = row["model"]
            if name == TEACHER:
                continue
            est = unit["table_speedup"][name] / row["ideal_speedup"] if row["runtime"] == record["runtime"] else None
            per_process = (", ".join(f"{s / row['ideal_speedup']:.2f}" for s in row["process_speedups"]) + " | "
                           if processes > 1 else "")
            lines.append(f"| {unit['arch']} | {unit['rate']:.0%} | {name} | {row['runtime']} | "
                         f"{1 / row['ideal_speedup']:.1%} | {row['speedup']:.2f}× | {row['ideal_speedup']:.2f}× | "
                         f"**{row['speedup'] / row['ideal_speedup']:.2f}** | {per_process}"
                         f"{'' if est is None else f'{est:.2f}'} | {unit['widths'][name]} |")
    repeats = (f". Repeated in {processes} fresh processes: latencies are the medians of the processes' medians, "
               "and the interval is a Student-t interval of the per-process ratios (the k-th process of the "
               "teacher's runtime paired with the k-th of the student's, the same process when the runtimes are the "
               "same)" if processes > 1 else "")
    lines += ["", "Each on its best runtime (the issue's second goal: the student's fastest runtime against the "
              "teacher's fastest, at least 0.9 of the MAC ratio). Speed-up here: the ratio of the two median "
              "latencies, where the table above takes the median of per-round ratios, so on the same runtime the "
              f"two can differ by a few hundredths{repeats}:", "",
              "| arch | rate | student | its best runtime | teacher's best runtime | speed-up | ideal | / ideal |"
              + (" 95 % interval over processes |" if processes > 1 else ""),
              "|---|---|---|---|---|---|---|---|" + ("---|" if processes > 1 else "")]
    for unit in record["units"]:
        best = best_runtimes(unit["rows"])
        teacher_ms, teacher_runtime = best.pop(TEACHER)
        ideal = {row["model"]: row["ideal_speedup"] for row in unit["rows"]}
        row_of = {(row["model"], row["runtime"]): row for row in unit["rows"]}
        for name, (ms, runtime) in best.items():
            speedup = teacher_ms / ms
            interval = (f" {process_interval(row_of[TEACHER, teacher_runtime], row_of[name, runtime], ideal[name])} |"
                        if processes > 1 else "")
            lines.append(f"| {unit['arch']} | {unit['rate']:.0%} | {name} | {runtime} | {teacher_runtime} | "
                         f"{speedup:.2f}× | {ideal[name]:.2f}× | **{speedup / ideal[name]:.2f}** |{interval}")
    if any("nodes" in unit for unit in record["units"]):
        lines += node_markdown(record["units"])
    return "\n".join(lines) + "\n"


def node_markdown(units: Sequence[Dict]) -> List[str]:
    """Per (architecture, rate, runtime): each model's milliseconds per node kind (OpenVINO's
    performance counters; a fused node counts in the node it was fused into)."""
    kinds = sorted({k for u in units for per_model in u.get("nodes", {}).values()
                    for by_kind in per_model.values() for k in by_kind})
    lines = ["", "Milliseconds by node kind (OpenVINO performance counters, one thread; fused nodes count in "
             "the node they were fused into). ideal convs: the speed-up / MAC ratio had every student convolution "
             "run exactly the MAC ratio faster than the teacher's and its other nodes as measured "
             "(`ideal_conv_bound`; not a bound where the student's convolutions beat the MAC ratio):",
             "", "| arch | rate | runtime | model | " + " | ".join(kinds) + " | total | ideal convs |",
             "|---|---|---|---|" + "---|" * (len(kinds) + 2)]
    for unit in units:
        ideal = {row["model"]: row["ideal_speedup"] for row in unit["rows"]}
        for runtime, per_model in unit.get("nodes", {}).items():
            for name, by_kind in per_model.items():
                bound = ("" if name == TEACHER or TEACHER not in per_model else
                         f"{ideal_conv_bound(per_model[TEACHER], by_kind, ideal[name]) / ideal[name]:.2f}")
                lines.append(f"| {unit['arch']} | {unit['rate']:.0%} | {runtime} | {name} | "
                             + " | ".join(f"{by_kind.get(k, 0.0):.2f}" for k in kinds)
                             + f" | {sum(by_kind.values()):.2f} | {bound} |")
    return lines


def process_interval(teacher: Dict, student: Dict, ideal: float) -> str:
    """The 95 % t-interval (:func:`~mggc_plugin.metrics.t_interval`) of the speed-up / ``ideal``
    of the ``student`` row over the ``teacher`` row, process by process (their ``process_ms``)."""
    ratios = [t / s / ideal for t, s in zip(teacher["process_ms"], student["process_ms"])]
    low, high = t_interval(ratios).interval
    return f"[{low:.2f}, {high:.2f}]"


def best_runtimes(rows: Sequence[Dict]) -> Dict[str, Tuple[float, str]]:
    """Each model's lowest median latency (ms) over the runtimes it was timed on, and that runtime."""
    best: Dict[str, Tuple[float, str]] = {}
    for row in rows:
        if row["model"] not in best or row["median_ms"] < best[row["model"]][0]:
            best[row["model"]] = (row["median_ms"], row["runtime"])
    return best


if __name__ == "__main__":
    raise SystemExit(main())
