"""U-Net transposed convolutions deployed as sub-pixel convolutions against as they are: the
teacher and the students of ``speed_allocation.json`` timed both ways in one run.

``mggc export --format openvino`` writes the sub-pixel form by default
(:func:`mggc_plugin.deploy.subpixel.subpixel_default`); this measures why. ``unet_256`` (ngf 64,
BatchNorm, 256², as ``speed_allocation.py``) and, per rate of that file, its uniform student and
the fastest-width students it timed, each deployed by :func:`mggc_plugin.deploy.bench.deployable`
with and without ``subpixel`` (BatchNorm folded either way) and timed interleaved
(:func:`mggc_plugin.deploy.bench.bench`, batch 1, one thread) on ONNX Runtime, OpenVINO float32
and OpenVINO at its default precision (bfloat16 on CPUs with AMX). Weights do not matter for
time. The sub-pixel form is the one ``mggc export`` writes for the runtime: phases interleaved by
``pixel_shuffle`` for ONNX Runtime, by a transpose for OpenVINO
(:func:`mggc_plugin.deploy.subpixel.interleave_for`); ``<network>_subpixel_d2s`` is the
``pixel_shuffle`` form everywhere, so that on OpenVINO the two interleaves are timed side by side.
Writes ``benchmarks/results/subpixel_speed.{json,md}``, the machine named; needs a quiet machine.

    python benchmarks/subpixel_speed.py
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from mggc_plugin import networks
from mggc_plugin.baselines import keep_masks
from mggc_plugin.channels import ChannelGroups
from mggc_plugin.deploy.bench import TEACHER, BenchModel, add_warm_argument, bench, deployable, machine, warm_note
from mggc_plugin.fileio import write_record
from mggc_plugin.slim import slim

RESULTS = Path(__file__).resolve().parent / "results"
SUFFIX = "_subpixel"
#: The sub-pixel form interleaved by pixel_shuffle on every runtime.
D2S = "_subpixel_d2s"


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--allocations", default=str(RESULTS / "speed_allocation.json"),
                   help="the speed_allocation record whose unet_256 students are timed")
    p.add_argument("--students", nargs="+", default=["uniform", "fast0.5", "fast0.75"])
    p.add_argument("--runtimes", nargs="+", default=["onnxruntime", "openvino", "openvino_default"])
    p.add_argument("--runs", type=int, default=10)
    add_warm_argument(p)
    p.add_argument("--out", default=str(RESULTS / "subpixel_speed"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    allocations = json.loads(Path(args.allocations).read_text())
    size = allocations["size"]
    shape = (1, 3, size, size)
    torch.manual_seed(0)
    teacher = networks.define_G(3, 3, 64, "unet_256", norm="batch").eval()
    groups = ChannelGroups.discover(teacher, torch.zeros(shape))
    nets = {TEACHER: teacher}
    for unit in allocations["units"]:
        if unit["arch"] == "unet_256":
            for name in args.students:
                if name in unit["widths"]:
                    masks = keep_masks(groups, unit["widths"][name], "uniform")
                    nets[f"{name}@{unit['rate']:g}"] = slim(teacher, groups, masks).eval()
    models = []
    for name, net in nets.items():
        sub = deployable(name + SUFFIX, net, shape, subpixel=True)
        models += [deployable(name, net, shape), sub, BenchModel(name + D2S, sub.module, sub.macs, sub.params)]
    with tempfile.TemporaryDirectory(prefix="mggc-subpixel-") as work:
        result = bench(models, shape, Path(work), args.runtimes, batches=(1,), threads=(1,), runs=args.runs,
                       warmup=1, warm_s=args.warm_s, log=lambda s: print(s, flush=True))
    record = {"machine": machine(), "size": size, "runs": args.runs, "warm_s": args.warm_s,
              "allocations": args.allocations,
              "rows": result["rows"], "skipped": result.get("skipped", {})}
    write_record(args.out, record, markdown(record))
    return 0


def markdown(record: Dict) -> str:
    """Per runtime and network: ms as it is and as sub-pixel, the gain, and each deployment's
    speed-up over the teacher deployed the same way against the MAC ratio."""
    ms = {(r["runtime"], r["model"]): r["median_ms"] for r in record["rows"]}
    ideal = {r["model"]: r["ideal_speedup"] for r in record["rows"]}
    lines = [f"# U-Net transposed convolutions as sub-pixel convolutions — {record['machine']['cpu']}, 1 thread, "
             f"batch 1, {record['size']}², median of {record['runs']} interleaved rounds"
             + f", {warm_note(record.get('warm_s', 0.0))}", "",
             "unet_256, ngf 64; students at `speed_allocation.json`'s widths (`<student>@<rate>`). "
             "Speed-up: over the teacher deployed the same way; ideal: the MAC ratio. ms sub-pixel: as `mggc export` "
             "writes it for the runtime (OpenVINO: phases interleaved by a transpose); pixel_shuffle: the phases "
             "interleaved by DepthToSpace on every runtime, and the transposed form's gain over it.", "",
             "| runtime | network | ms | ms sub-pixel | gain | speed-up / ideal | sub-pixel speed-up / ideal "
             "| ms pixel_shuffle | transpose gain |", "|---|---|---|---|---|---|---|---|---|"]
    runtimes: List[str] = list(dict.fromkeys(r["runtime"] for r in record["rows"]))
    names = [n for n in dict.fromkeys(r["model"] for r in record["rows"]) if not n.endswith((SUFFIX, D2S))]
    for runtime in runtimes:
        for name in names:
            plain, sub = ms[runtime, name], ms[runtime, name + SUFFIX]
            ratios = "| — | — |" if name == TEACHER else (
                f"| {ms[runtime, TEACHER] / plain / ideal[name]:.2f} | "
                f"{ms[runtime, TEACHER + SUFFIX] / sub / ideal[name]:.2f} |")
            d2s = ms.get((runtime, name + D2S))
            shuffle = " — | — |" if d2s is None else f" {d2s:.2f} | {d2s / sub:.2f}× |"
            lines.append(f"| {runtime} | {name} | {plain:.2f} | {sub:.2f} | **{plain / sub:.2f}×** {ratios}{shuffle}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
