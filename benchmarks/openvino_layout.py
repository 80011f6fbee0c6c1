"""OpenVINO IR with images channels last (``--layout nhwc``) against N×C×H×W, paired in each process.

The teacher and one student of ``speed_allocation.py``'s record, deployed as ``mggc export
--format openvino`` writes them (U-Net transposed convolutions as sub-pixel ones), are timed in
both layouts in the same interleaved rounds (:func:`mggc_plugin.metrics.compare_latency`, timed
warm), in ``--processes`` fresh processes per runtime. Reported per runtime, with a Student-t
interval over the processes: each network's speed-up from the NHWC interface, the student's
speed-up over the teacher as a fraction of the MAC ratio in each layout (issue 14's goal), and
their paired difference. Between processes on a 2-core AMD EPYC the same student ran from 3.1
to 4.8 ms in bfloat16, more than the layouts differ, so only the pairing inside a process
resolves them::

    python benchmarks/openvino_layout.py --processes 6 --out benchmarks/results/openvino_layout_epyc
"""
from __future__ import annotations

import argparse
import functools
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from speed_allocation import ARCHS, RESULTS, recorded_widths

from mggc_plugin import networks
from mggc_plugin.baselines import keep_masks
from mggc_plugin.channels import ChannelGroups
from mggc_plugin.deploy.bench import (
    OPENVINO_RUNTIMES,
    TEACHER,
    BenchModel,
    add_warm_argument,
    deployable,
    export_files,
    in_fresh_process,
    machine,
    prepare,
    warm_note,
)
from mggc_plugin.deploy.openvino import LAYOUTS
from mggc_plugin.fileio import write_record
from mggc_plugin.metrics import compare_latency, t_interval
from mggc_plugin.slim import slim


def add_pair_arguments(p: argparse.ArgumentParser, out: str) -> None:
    """The options that choose the teacher, its student and where their files go (:func:`pair`),
    the warm-up, and ``--out`` (default ``benchmarks/results/<out>``)."""
    p.add_argument("--arch", default="unet_256", choices=tuple(ARCHS))
    p.add_argument("--rate", type=float, default=0.1)
    p.add_argument("--student", default="fast0.5", help="the student of --widths_from to time")
    p.add_argument("--widths_from", default=str(RESULTS / "speed_allocation_epyc_unet_subpixel_table.json"))
    p.add_argument("--size", type=int, default=256)
    add_warm_argument(p)
    p.add_argument("--work", default="~/.cache/mggc-plugin/speed_allocation", help="exported files")
    p.add_argument("--out", default=str(RESULTS / out))


@dataclass(frozen=True)
class Pair:
    """The teacher and the student :func:`pair` builds (``models``, in that order, as deployed),
    the student's ``widths``, the image ``shape`` and the ``work`` folder of their files."""

    models: List[BenchModel]
    widths: List[int]
    shape: Tuple[int, ...]
    work: Path

    @property
    def ideal(self) -> float:
        """The MAC ratio of teacher to student."""
        return self.models[0].macs / self.models[1].macs

    def record(self, args: argparse.Namespace) -> Dict[str, Any]:
        """The fields every record of these benchmarks starts with."""
        return {"machine": machine(), "arch": args.arch, "rate": args.rate, "student": args.student,
                "widths": self.widths, "widths_from": Path(args.widths_from).name, "ideal": self.ideal,
                "size": args.size, "warm_s": args.warm_s, "processes": args.processes}


def pair(args: argparse.Namespace) -> Pair:
    """The teacher ``speed_allocation.py`` allocated from (``--arch``, seed 0) and its
    ``--student`` of the record ``--widths_from`` at ``--rate``, as deployed (:func:`deployable`,
    U-Net transposed convolutions as sub-pixel ones), with their work folder made (one thread)."""
    torch.set_num_threads(1)
    shape = (1, 3, args.size, args.size)
    torch.manual_seed(0)
    teacher = networks.define_G(3, 3, 64, args.arch, norm=ARCHS[args.arch]).eval()
    groups = ChannelGroups.discover(teacher, torch.zeros(*shape))
    widths = recorded_widths(json.loads(Path(args.widths_from).read_text()), args.arch, args.rate)[args.student]
    student = slim(teacher, groups, keep_masks(groups, widths, "uniform")).eval()
    nets = {TEACHER: teacher, args.student: student}
    work = Path(args.work).expanduser() / f"{args.arch}-{args.rate:g}"
    work.mkdir(parents=True, exist_ok=True)
    return Pair([deployable(name, net, shape, subpixel=True) for name, net in nets.items()], widths, shape, work)


def medians_ms(times: Dict[str, List[float]]) -> str:
    """``name 1.23 ms, …``: each network's median over a process's rounds, for the progress log."""
    return ", ".join(f"{k} {statistics.median(v) * 1e3:.3f} ms" for k, v in times.items())


def interval(values: Sequence[float]) -> str:
    """``mean [lo, hi]``: a 95 % Student-t interval over ``values`` (processes)."""
    ci = t_interval(values)
    return f"{ci.mean_diff:.3f} [{ci.interval[0]:.3f}, {ci.interval[1]:.3f}]"


def timed_layouts(models: Sequence[BenchModel], runtime: str, shape: Sequence[int], work: Path, runs: int,
                  warm_s: float) -> Dict[str, List[float]]:
    """Seconds per pass of every model in every layout (``<name>/<layout>``), one thread, in the
    same interleaved rounds: what each fresh process runs."""
    x = torch.zeros(*shape)
    nets = {f"{m.name}/{layout}": prepare(runtime, m, x, 1, work, layout=layout) for m in models for layout in LAYOUTS}
    return compare_latency(nets, tuple(shape), rounds=runs, warmup=1, threads=1, warm_s=warm_s).times_s


def round_ratio(times: Dict[str, List[float]], num: str, den: str) -> float:
    """Median over rounds of ``times[num] / times[den]`` (the two timed in the same rounds)."""
    return statistics.median(a / b for a, b in zip(times[num], times[den]))


def summary(processes: Sequence[Dict[str, List[float]]], student: str, ideal: float) -> Dict[str, List[float]]:
    """Per process: each network's NHWC speed-up over NCHW, the student's speed-up over the
    teacher / ``ideal`` in each layout, and the NHWC − NCHW difference of the latter."""
    out: Dict[str, List[float]] = {}
    for name in (TEACHER, student):
        out[f"{name} nhwc speed-up"] = [round_ratio(t, f"{name}/nchw", f"{name}/nhwc") for t in processes]
    for layout in LAYOUTS:
        out[f"/ ideal {layout}"] = [round_ratio(t, f"{TEACHER}/{layout}", f"{student}/{layout}") / ideal
                                    for t in processes]
    out["/ ideal nhwc - nchw"] = [a - b for a, b in zip(out["/ ideal nhwc"], out["/ ideal nchw"])]
    return out


def markdown(record: Dict[str, Any]) -> str:
    lines = [f"# OpenVINO IR, images channels last against N×C×H×W — {record['machine']['cpu']}, 1 thread, "
             f"batch 1, {record['size']}²", "",
             f"{record['arch']} teacher and its `{record['student']}` student at {record['rate']:.0%} of the MACs "
             f"(widths {record['widths']}, from `{record['widths_from']}`; ideal speed-up {record['ideal']:.2f}×), "
             f"U-Net transposed convolutions as sub-pixel ones. Both layouts of both networks timed in the same "
             f"{record['runs']} interleaved rounds ({warm_note(record['warm_s'])}), in {record['processes']} fresh "
             f"processes per runtime; each figure is the median over rounds of per-round ratios, the interval a "
             f"95 % Student-t interval over the processes.", "",
             "| runtime | figure | per process | mean [95 % interval] |", "|---|---|---|---|"]
    for runtime, values in record["summary"].items():
        for figure, per_process in values.items():
            lines.append(f"| {runtime} | {figure} | {', '.join(f'{v:.3f}' for v in per_process)} | "
                         f"{interval(per_process)} |")
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add_pair_arguments(p, "openvino_layout")
    p.add_argument("--runtimes", nargs="+", default=list(OPENVINO_RUNTIMES), choices=OPENVINO_RUNTIMES)
    p.add_argument("--runs", type=int, default=12)
    p.add_argument("--processes", type=int, default=6)
    p.add_argument("--render", action="store_true", help="only write --out's Markdown again from its JSON")
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.render:
        record = json.loads(out.with_suffix(".json").read_text())
        write_record(out, record, markdown(record))
        return 0
    if args.processes < 2:
        raise SystemExit(f"--processes {args.processes}: an interval over processes needs at least 2")
    bench_pair = pair(args)
    models, shape, work = bench_pair.models, bench_pair.shape, bench_pair.work
    for runtime in args.runtimes:  # written here, so that every timed process only loads them
        for layout in LAYOUTS:
            export_files(models, runtime, shape, work, layout)
    record = {**bench_pair.record(args), "runs": args.runs, "times_s": {}, "summary": {}}
    for runtime in args.runtimes:
        timing = functools.partial(timed_layouts, models, runtime, shape, work, args.runs, args.warm_s)
        processes = []
        for i in range(args.processes):
            processes.append(in_fresh_process(timing))
            print(f"{runtime} process {i + 1}: {medians_ms(processes[-1])}", flush=True)
        record["times_s"][runtime] = processes
        record["summary"][runtime] = summary(processes, args.student, bench_pair.ideal)
        write_record(out, record, markdown(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
