"""How well a latency table predicts whole networks, with its layers timed alone by wall time or,
on OpenVINO, by their own nodes (:func:`mggc_plugin.latency_table.layer_timing`).

A layer alone compiled by OpenVINO reorders its input into the CPU plugin's blocked channel
layout and its output back; inside the network its neighbours take the layout as it is. Wall
time counts those reorders, the node counters let them be left out. For each architecture
(``speed_allocation.py``'s: resnet_9blocks with InstanceNorm, unet_256 with BatchNorm, ngf 64,
256², one thread) the teacher's table on ``--runtime`` is measured both ways, or loaded from
``--work`` (``speed_allocation.py``'s folder: its tables are the default timing's). Reported per
uniform width fraction: the whole network's measured milliseconds (the table's own fit rows,
timed as ``mggc bench`` deploys it) and each table's estimate.

Writes ``benchmarks/results/latency_table_timing.{json,md}``, the machine named. Timings need a
quiet machine; a table takes 10–25 minutes on 2 cores.

    python benchmarks/latency_table_timing.py
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from mggc_plugin import networks
from mggc_plugin.channels import ChannelGroups
from mggc_plugin.deploy.bench import OPENVINO_RUNTIMES, machine
from mggc_plugin.fileio import atomic_write_json, write_record
from mggc_plugin.latency_table import layer_timing, load_or_measure

RESULTS = Path(__file__).resolve().parent / "results"
ARCHS = {"resnet_9blocks": "instance", "unet_256": "batch"}


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--archs", nargs="+", default=list(ARCHS), choices=tuple(ARCHS))
    p.add_argument("--runtime", default="openvino", choices=OPENVINO_RUNTIMES)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--work", default="~/.cache/mggc-plugin/speed_allocation", help="latency tables")
    p.add_argument("--out", default=str(RESULTS / "latency_table_timing"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    work = Path(args.work).expanduser()
    work.mkdir(parents=True, exist_ok=True)
    x = torch.zeros(1, 3, args.size, args.size)
    record: Dict[str, object] = {"machine": machine(), "size": args.size, "runtime": args.runtime, "archs": {}}
    for arch in args.archs:
        torch.manual_seed(0)
        teacher = networks.define_G(3, 3, 64, arch, norm=ARCHS[arch]).eval()
        groups = ChannelGroups.discover(teacher, x)
        stem = f"{arch}-{args.size}-{args.runtime}-t1"
        fits = {}
        for timing, path in ((layer_timing(args.runtime), work / f"{stem}.json"), ("wall", work / f"{stem}-wall.json")):
            fits[timing] = list(load_or_measure(path, teacher, groups, args.runtime, timing=timing).fit)
        record["archs"][arch] = fits  # type: ignore[index]
        atomic_write_json(Path(args.out).with_suffix(".json"), record)
    write_record(args.out, record, markdown(record))
    return 0


def markdown(record: Dict) -> str:
    """Per architecture and width fraction: each table's estimate against the measured time."""
    timings = [layer_timing(record["runtime"]), "wall"]
    lines = [f"# Latency-table estimates of whole networks by how layers alone are timed — {record['machine']['cpu']}, "
             f"{record['runtime']}, 1 thread, {record['size']}²", "",
             "Teacher slimmed uniformly to each fraction of its channels and timed whole as deployed (median wall "
             "time; each table measures these itself, its fit rows) against the table's estimate (layers + fitted "
             "rest): est. / measured near 1 is a table that predicts.", "",
             "| arch | fraction | " + " | ".join(f"measured ({t}) | est. | / measured" for t in timings) + " |",
             "|---|---|" + "---|---|---|" * len(timings)]
    for arch, fits in record["archs"].items():
        for rows in zip(*(fits[t] for t in timings)):
            cells: List[str] = []
            for row in rows:
                cells += [f"{row['measured_ms']:.2f}", f"{row['estimated_ms']:.2f}",
                          f"**{row['estimated_ms'] / row['measured_ms']:.2f}**"]
            lines.append(f"| {arch} | {rows[0]['fraction']:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
