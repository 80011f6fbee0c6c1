"""Timed cold or warm: how the speed-up of a slim generator over its teacher depends on whether
each network is timed right after another network's pass or after running back to back.

:func:`mggc_plugin.metrics.compare_latency` interleaves the networks it compares, so that
background load hits them alike. With ``warm_s=0`` every pass is timed right after another
network's, so a small network starts each pass with caches its teacher has just filled; a
deployed generator runs frame after frame, after itself. This times issue 14's goal
architectures (``resnet_9blocks`` with InstanceNorm, ``unet_256`` with BatchNorm, ngf 64, 256²,
as ``speed_allocation.py``), the teacher and the uniform students at each ``--rates`` value
(:func:`~mggc_plugin.baselines.uniform_widths`, widths in multiples of 8; weights do not matter
for time), on each ``--runtimes`` runtime (:func:`mggc_plugin.deploy.bench.bench`, batch 1, one
thread, U-Net transposed convolutions as sub-pixel convolutions on the exported runtimes, as
``mggc export`` writes them) at each ``--warm_s`` value. Reported per student: the median
latency, the speed-up over the teacher and its ratio to the MAC ratio at each warm-up.

Writes ``benchmarks/results/warm_timing.{json,md}`` and a plot, the machine named. Each
(architecture, runtime) is committed as it completes and skipped when rerun. Needs a quiet
machine.

    python benchmarks/warm_timing.py
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from mggc_plugin import networks
from mggc_plugin.baselines import keep_masks, uniform_widths
from mggc_plugin.channels import ChannelGroups
from mggc_plugin.deploy.bench import EXPORTED_RUNTIMES, RUNTIMES, TEACHER, bench, deployable, machine
from mggc_plugin.fileio import atomic_write, atomic_write_json
from mggc_plugin.slim import slim

RESULTS = Path(__file__).resolve().parent / "results"
ARCHS = {"resnet_9blocks": "instance", "unet_256": "batch"}


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--archs", nargs="+", default=list(ARCHS), choices=tuple(ARCHS))
    p.add_argument("--rates", nargs="+", type=float, default=[0.25, 0.10])
    p.add_argument("--runtimes", nargs="+", default=["eager", "onnxruntime", "openvino", "openvino_default"],
                   choices=RUNTIMES)
    p.add_argument("--warm_s", nargs="+", type=float, default=[0.0, 0.05, 0.2, 0.5],
                   help="seconds each network runs back to back before each timed pass (0: cold)")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--out", default=str(RESULTS / "warm_timing"))
    p.add_argument("--render", action="store_true", help="only write --out's Markdown and plot again from its JSON")
    args = p.parse_args(argv)
    out = Path(args.out)
    record_path = out.with_suffix(".json")
    record: Dict = (json.loads(record_path.read_text()) if record_path.is_file() else
                    {"machine": machine(), "size": args.size, "runs": args.runs, "units": []})
    if not args.render:
        torch.set_num_threads(1)
        shape = (1, 3, args.size, args.size)
        done = {(u["arch"], u["runtime"]) for u in record["units"]}
        for arch in args.archs:
            todo = [r for r in args.runtimes if (arch, r) not in done]
            if not todo:
                continue
            torch.manual_seed(0)
            teacher = networks.define_G(3, 3, 64, arch, norm=ARCHS[arch]).eval()
            groups = ChannelGroups.discover(teacher, torch.zeros(shape))
            nets = {TEACHER: teacher}
            for rate in args.rates:
                widths = uniform_widths(groups, rate, 8).widths
                nets[f"uniform@{rate:g}"] = slim(teacher, groups, keep_masks(groups, widths, "uniform")).eval()
            for runtime in todo:
                models = [deployable(name, net, shape, subpixel=runtime in EXPORTED_RUNTIMES)
                          for name, net in nets.items()]
                rows: List[Dict] = []
                with tempfile.TemporaryDirectory(prefix="mggc-warm-") as work:
                    for warm in args.warm_s:
                        result = bench(models, shape, Path(work), [runtime], batches=(1,), threads=(1,),
                                       runs=args.runs, warmup=1, warm_s=warm, log=lambda s: print(s, flush=True))
                        rows += [{**row, "warm_s": warm} for row in result["rows"]]
                record["units"].append({"arch": arch, "runtime": runtime, "rows": rows,
                                        "skipped": result.get("skipped", {})})
                atomic_write_json(record_path, record)
    text = markdown(record)
    atomic_write(out.with_suffix(".md"), lambda tmp: tmp.write_text(text))
    plot(record, out.with_suffix(".png"))
    print(text)
    return 0


def markdown(record: Dict) -> str:
    """Per architecture, runtime and student: latency and speed-up / MAC ratio at each warm-up."""
    warms = sorted({row["warm_s"] for u in record["units"] for row in u["rows"]})
    head = " | ".join(f"{w:g} s" for w in warms)
    lines = [f"# Timed cold or warm — {record['machine']['cpu']}, 1 thread, batch 1, {record['size']}², median of "
             f"{record['runs']} interleaved rounds", "",
             "Before each timed pass every network ran back to back for the warm-up shown (0 s: timed right after "
             "another network's pass). Cells: median ms; for students also the speed-up over the teacher / the "
             "MAC ratio. Uniform widths in multiples of 8; exported runtimes with sub-pixel U-Net upsampling.", "",
             f"| arch | runtime | model | MACs | {head} |", "|---|---|---|---|" + "---|" * len(warms)]
    for unit in record["units"]:
        if unit["skipped"]:
            lines.append(f"| {unit['arch']} | {unit['runtime']} | skipped: {unit['skipped'][unit['runtime']]} |")
            continue
        models = list(dict.fromkeys(row["model"] for row in unit["rows"]))
        for model in models:
            by_warm = {row["warm_s"]: row for row in unit["rows"] if row["model"] == model}
            cells = []
            for w in warms:
                row = by_warm.get(w)
                if row is None:
                    cells.append("")
                elif model == TEACHER:
                    cells.append(f"{row['median_ms']:.2f}")
                else:
                    cells.append(f"{row['median_ms']:.2f} ms, **{row['speedup'] / row['ideal_speedup']:.2f}**")
            macs = next(iter(by_warm.values()))["ideal_speedup"]
            lines.append(f"| {unit['arch']} | {unit['runtime']} | {model} | {1 / macs:.1%} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(record: Dict, path: Path) -> None:
    """Speed-up / MAC ratio against the warm-up, one line per (architecture, runtime, student)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, arch in zip(axes, ARCHS):
        for unit in (u for u in record["units"] if u["arch"] == arch and not u["skipped"]):
            students = sorted({r["model"] for r in unit["rows"] if r["model"] != TEACHER})
            for model in students:
                rows = sorted((r for r in unit["rows"] if r["model"] == model), key=lambda r: r["warm_s"])
                ax.plot([r["warm_s"] for r in rows], [r["speedup"] / r["ideal_speedup"] for r in rows], marker="o",
                        label=f"{unit['runtime']} {model}")
        ax.set_title(arch)
        ax.set_xlabel("warm-up before each timed pass (s)")
        ax.axhline(1.0, color="grey", lw=0.5)
        if ax.lines[1:]:  # beyond the reference line
            ax.legend(fontsize=7)
    axes[0].set_ylabel("speed-up / MAC ratio")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
