"""How a student's share of the MAC ratio moves with the host's load, on a shared machine.

The teacher and one student of ``speed_allocation.py``'s record, deployed as ``mggc export
--format openvino`` writes them, are timed with a :class:`~mggc_plugin.metrics.HostProbe` in the
same interleaved rounds (:func:`mggc_plugin.metrics.compare_latency`, timed warm), for many
rounds in each of ``--processes`` fresh processes. Consecutive rounds are grouped in blocks of
``--block``; per block: the median time of each, and the median over its rounds of the
student's speed-up over the teacher as a fraction of the MAC ratio (issue 14's goal figure).
Reported: Pearson's r between the blocks' probe times and their figures, and the figure in the
blocks whose probe ran fastest, slowest and in between (thirds of the blocks). On a quiet host
the probe's time is flat and r says nothing; on a loaded one r says whether the figure follows
the load::

    python benchmarks/host_load.py --processes 3 --out benchmarks/results/host_load_epyc_unet10
"""
from __future__ import annotations

import argparse
import functools
import json
import statistics
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from openvino_layout import add_pair_arguments, interval, medians_ms, pair

from mggc_plugin.deploy.bench import (
    OPENVINO_RUNTIMES,
    TEACHER,
    BenchModel,
    export_files,
    in_fresh_process,
    prepare,
    warm_note,
)
from mggc_plugin.deploy.openvino import LAYOUTS
from mggc_plugin.fileio import atomic_write, write_record
from mggc_plugin.metrics import HostProbe, compare_latency

PROBE = "probe"


def timed_with_probe(models: Sequence[BenchModel], runtime: str, layout: str, shape: Sequence[int], work: Path,
                     rounds: int, warm_s: float) -> Dict[str, List[float]]:
    """Seconds per pass of every model and of the probe (:data:`PROBE`), one thread, in the same
    interleaved rounds: what each fresh process runs."""
    x = torch.zeros(*shape)
    nets = {m.name: prepare(runtime, m, x, 1, work, layout=layout) for m in models}
    nets[PROBE] = HostProbe()
    return compare_latency(nets, tuple(shape), rounds=rounds, warmup=1, threads=1, warm_s=warm_s).times_s


def blocks(times: Dict[str, List[float]], student: str, ideal: float, block: int) -> List[Dict[str, float]]:
    """Consecutive rounds of one process in blocks of ``block`` (a shorter rest is dropped): the
    median milliseconds of the teacher, the student and the probe, and the median over the
    block's rounds of the teacher's time over the student's, divided by ``ideal``."""
    out = []
    for start in range(0, len(times[TEACHER]) - block + 1, block):
        part = {k: v[start:start + block] for k, v in times.items()}
        out.append({"teacher_ms": statistics.median(part[TEACHER]) * 1e3,
                    "student_ms": statistics.median(part[student]) * 1e3,
                    "probe_ms": statistics.median(part[PROBE]) * 1e3,
                    "per_ideal": statistics.median(t / s for t, s in zip(part[TEACHER], part[student])) / ideal})
    return out


def summary(per_process: Sequence[Sequence[Dict[str, float]]]) -> Dict[str, Any]:
    """Over the blocks of all processes: how many, Pearson's r between probe time and figure,
    the probe's range, and per third of the blocks by probe time (``fastest``, ``middle``,
    ``slowest``) the probe's range, the median teacher and student times and the figure's mean,
    minimum and maximum; the median figure over all blocks, and each process's median over its
    blocks (the figure per process, as ``openvino_layout.py`` gives it)."""
    rows = [b for process in per_process for b in process]
    if len(rows) < 3:
        raise ValueError(f"{len(rows)} blocks: need at least 3 (more rounds, or a smaller --block)")
    probe = np.array([b["probe_ms"] for b in rows])
    figure = np.array([b["per_ideal"] for b in rows])
    r = float(np.corrcoef(probe, figure)[0, 1]) if probe.std() > 0 and figure.std() > 0 else float("nan")
    ordered = sorted(rows, key=lambda b: b["probe_ms"])
    edges = np.linspace(0, len(ordered), 4).round().astype(int)
    thirds = {}
    for name, lo, hi in zip(("fastest", "middle", "slowest"), edges[:-1], edges[1:]):
        part = ordered[lo:hi]
        values = [b["per_ideal"] for b in part]
        thirds[name] = {"blocks": len(part), "probe_ms": [part[0]["probe_ms"], part[-1]["probe_ms"]],
                        "teacher_ms": statistics.median(b["teacher_ms"] for b in part),
                        "student_ms": statistics.median(b["student_ms"] for b in part),
                        "per_ideal_mean": statistics.fmean(values), "per_ideal_range": [min(values), max(values)]}
    return {"blocks": len(rows), "pearson_r": r, "probe_ms": [float(probe.min()), float(probe.max())],
            "per_ideal_median": float(np.median(figure)), "thirds": thirds,
            "per_process": [statistics.median(b["per_ideal"] for b in process) for process in per_process if process]}


def markdown(record: Dict[str, Any]) -> str:
    s = record["summary"]
    lines = [f"# Host load and the MAC-ratio figure — {record['machine']['cpu']}, 1 thread, batch 1, "
             f"{record['size']}²", "",
             f"{record['arch']} teacher and its `{record['student']}` student at {record['rate']:.0%} of the MACs "
             f"(widths {record['widths']}, from `{record['widths_from']}`; ideal speed-up {record['ideal']:.2f}×), "
             f"{record['runtime']}, images {record['layout']}, with the host probe (`HostProbe`: "
             f"{record['probe_ops']} products of two 64×64 matrices) in the same interleaved rounds "
             f"({warm_note(record['warm_s'])}); {record['rounds']} rounds in each of {record['processes']} fresh "
             f"processes, in blocks of {record['block']} consecutive rounds. Figure: the student's speed-up over "
             f"the teacher / ideal, median over a block's rounds.", "",
             f"{s['blocks']} blocks; probe {s['probe_ms'][0]:.3f}–{s['probe_ms'][1]:.3f} ms; Pearson's r between a "
             f"block's probe time and its figure: {s['pearson_r']:.2f}; median figure over all blocks: "
             f"{s['per_ideal_median']:.3f}. Per process (median of its blocks): "
             f"{', '.join(f'{v:.3f}' for v in s['per_process'])}{process_interval(s['per_process'])}.", "",
             "| blocks by probe time | blocks | probe ms | teacher ms | student ms | figure mean | figure range |",
             "|---|---|---|---|---|---|---|"]
    for name, t in s["thirds"].items():
        lines.append(f"| {name} third | {t['blocks']} | {t['probe_ms'][0]:.3f}–{t['probe_ms'][1]:.3f} | "
                     f"{t['teacher_ms']:.2f} | {t['student_ms']:.3f} | {t['per_ideal_mean']:.3f} | "
                     f"{t['per_ideal_range'][0]:.3f}–{t['per_ideal_range'][1]:.3f} |")
    return "\n".join(lines) + "\n"


def process_interval(values: Sequence[float]) -> str:
    """``; mean m [lo, hi] over the processes`` (95 % Student-t), or nothing for one process."""
    return f"; mean {interval(values)} over the processes (95 % t)" if len(values) > 1 else ""


def plot(record: Dict[str, Any], path: Path) -> None:
    """The blocks' figures against their probe times, one colour per process."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for i, process in enumerate(record["blocks"]):
        ax.scatter([b["probe_ms"] for b in process], [b["per_ideal"] for b in process], s=14,
                   label=f"process {i + 1}")
    ax.axhline(0.9, color="grey", lw=0.7, ls="--")
    ax.set_xlabel(f"host probe, ms (median of {record['block']} rounds)")
    ax.set_ylabel("student speed-up / MAC ratio")
    ax.set_title(f"{record['arch']} at {record['rate']:.0%}, {record['runtime']}, {record['layout']}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add_pair_arguments(p, "host_load")
    p.add_argument("--runtime", default="openvino_default", choices=OPENVINO_RUNTIMES)
    p.add_argument("--layout", default="nhwc", choices=LAYOUTS)
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--block", type=int, default=10, help="consecutive rounds summarised together")
    p.add_argument("--processes", type=int, default=3)
    p.add_argument("--plot", action="store_true", help="also draw the blocks (needs matplotlib)")
    p.add_argument("--render", action="store_true",
                   help="only summarise --out's blocks again and write its Markdown (and plot)")
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.render:
        record = json.loads(out.with_suffix(".json").read_text())
        record["summary"] = summary(record["blocks"])
    else:
        if args.rounds < args.block or args.block < 1:
            raise SystemExit(f"--rounds {args.rounds}, --block {args.block}: need 1 <= block <= rounds")
        bench_pair = pair(args)
        models, shape, work = bench_pair.models, bench_pair.shape, bench_pair.work
        export_files(models, args.runtime, shape, work, args.layout)  # so that every timed process only loads them
        timing = functools.partial(timed_with_probe, models, args.runtime, args.layout, shape, work, args.rounds,
                                   args.warm_s)
        per_process = []
        for i in range(args.processes):
            times = in_fresh_process(timing)
            per_process.append(blocks(times, args.student, bench_pair.ideal, args.block))
            print(f"process {i + 1}: {medians_ms(times)}", flush=True)
        record = {**bench_pair.record(args), "runtime": args.runtime, "layout": args.layout, "rounds": args.rounds,
                  "block": args.block, "probe_ops": HostProbe().ops, "blocks": per_process,
                  "summary": summary(per_process)}
    write_record(out, record, markdown(record))
    if args.plot:
        plot(record, out.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
