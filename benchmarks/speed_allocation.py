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
and the table's estimate of that ratio. Weights do not matter for time; which widths cost
quality is the facades screen's question (``game_screen.py``, ``*_fast*`` configurations).

Writes ``benchmarks/results/speed_allocation.{json,md}``, the machine named. Timings need a
quiet machine.

    python benchmarks/speed_allocation.py
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from mggc_plugin import networks
from mggc_plugin.baselines import fastest_widths, keep_masks, uniform_widths
from mggc_plugin.channels import ChannelGroups
from mggc_plugin.deploy.bench import RUNTIMES, TEACHER, bench, deployable, machine
from mggc_plugin.fileio import atomic_write, atomic_write_json
from mggc_plugin.latency_table import LatencyTable, measure
from mggc_plugin.slim import slim

RESULTS = Path(__file__).resolve().parent / "results"
ARCHS = {"resnet_9blocks": "instance", "unet_256": "batch"}


def teacher_table(arch: str, teacher: torch.nn.Module, groups: ChannelGroups, runtime: str,
                  work: Path) -> LatencyTable:
    """The teacher's one-thread latency table on ``runtime``, loaded from ``work`` or measured."""
    path = work / f"{arch}-{groups.input_shape[-1]}-{runtime}-t1.json"
    if path.is_file():
        table = LatencyTable.load(path)
        table.check(groups)
        return table
    table = measure(teacher, groups, runtime, threads=1)
    table.save(path)
    return table


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
    p.add_argument("--runs", type=int, default=8)
    p.add_argument("--work", default="~/.cache/mggc-plugin/speed_allocation", help="latency tables, exports")
    p.add_argument("--out", default=str(RESULTS / "speed_allocation"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    work = Path(args.work).expanduser()
    work.mkdir(parents=True, exist_ok=True)
    shape = (1, 3, args.size, args.size)
    x = torch.zeros(shape)
    runtimes = [args.runtime, *[r for r in args.also if r != args.runtime]]
    record: Dict[str, object] = {"machine": machine(), "size": args.size, "round_to": args.round_to,
                                 "runtime": args.runtime, "runtimes": runtimes, "runs": args.runs, "units": []}
    for arch in args.archs:
        torch.manual_seed(0)
        teacher = networks.define_G(3, 3, 64, arch, norm=ARCHS[arch]).eval()
        groups = ChannelGroups.discover(teacher, x)
        table = teacher_table(arch, teacher, groups, args.runtime, work)
        for rate in args.rates:
            widths = allocation_widths(groups, table, rate, args.round_to, args.floors)
            masks = {name: keep_masks(groups, w, "uniform") for name, w in widths.items()}
            models = [deployable(TEACHER, teacher, shape)]
            models += [deployable(name, slim(teacher, groups, m).eval(), shape) for name, m in masks.items()]
            folder = work / f"{arch}-{rate:g}"
            folder.mkdir(exist_ok=True)
            result = bench(models, shape, folder, runtimes, batches=(1,), threads=(1,), runs=args.runs, warmup=1,
                           log=lambda s: print(s, flush=True))
            estimate = {name: table.full_ms / float(table(groups, m)) for name, m in masks.items()}
            record["units"].append({"arch": arch, "rate": rate, "widths": widths,  # type: ignore[attr-defined]
                                    "table_speedup": estimate, "rows": result["rows"],
                                    "skipped": result.get("skipped", {})})
            atomic_write_json(Path(args.out).with_suffix(".json"), record)
    text = markdown(record)
    atomic_write(Path(args.out).with_suffix(".md"), lambda tmp: tmp.write_text(text))
    print(text)
    return 0


def markdown(record: Dict) -> str:
    """One row per (architecture, rate, student, runtime): speed-up, ideal and their ratio."""
    lines = [f"# Speed-up / ideal at fastest_widths' allocations — {record['machine']['cpu']}, 1 thread, batch 1, "
             f"{record['size']}², median of {record['runs']} interleaved rounds", "",
             f"Latency table on `{record['runtime']}`; `fast<f>`: no group below f × its uniform width. "
             "est.: the ratio the table predicts.", "",
             "| arch | rate | student | runtime | MACs | speed-up | ideal | / ideal | est. / ideal | widths |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for unit in record["units"]:
        for row in unit["rows"]:
            name = row["model"]
            if name == TEACHER:
                continue
            est = unit["table_speedup"][name] / row["ideal_speedup"] if row["runtime"] == record["runtime"] else None
            lines.append(f"| {unit['arch']} | {unit['rate']:.0%} | {name} | {row['runtime']} | "
                         f"{1 / row['ideal_speedup']:.1%} | {row['speedup']:.2f}× | {row['ideal_speedup']:.2f}× | "
                         f"**{row['speedup'] / row['ideal_speedup']:.2f}** | "
                         f"{'' if est is None else f'{est:.2f}'} | {unit['widths'][name]} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
