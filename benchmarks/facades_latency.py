"""Measured latency of the facades students: does a game budgeted in milliseconds
(``mggc_latency``) give a faster student than one budgeted in MACs (``mggc``) at the same r, and
at what quality.

For each ``--methods`` × ``--budgets`` × ``--seeds`` unit of ``--task``, the finetuned student
that :mod:`facades` left in its work folder (``<work>/s<seed>/<method>-<budget>/eval_G.pt``) and
the teacher are timed interleaved with one thread on ``--runtime`` (default eager PyTorch, the
runtime and threads of the latency table the game budgeted; :func:`mggc_plugin.deploy.bench.bench`,
BatchNorm folded as deployed), and reported beside their MACs, the speed-up over the ideal (the MAC
ratio), the table's estimate and the unit's KID (from the unit files, looked up in ``--units`` in
order). A latency budget r asks for r × the teacher's latency; a MAC budget r promises a speed-up
of 1/r that small layers do not deliver, and how much of it a student gets depends on its widths:
timing a game's students beside L1-norm's (uniform widths) at the same r says whether the game's
allocation runs nearer the promise. Writes ``benchmarks/results/facades_latency_<task>.{json,md}``
(``..._<task>_<runtime>`` for another runtime, ``..._subpixel`` with ``--subpixel``: every network,
the teacher too, deployed with U-Net transposed convolutions as sub-pixel convolutions, as
``mggc export`` writes ONNX and OpenVINO files), the machine named. Needs a quiet machine.

    python benchmarks/facades_latency.py --work ~/.cache/mggc-plugin/benchmarks/pix2pix-<digest> \
        --methods mggc mggc_latency l1_norm --budgets 0.25
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from mggc_plugin.deploy.bench import RUNTIMES, TEACHER, add_warm_argument, bench, deployable, machine, warm_note
from mggc_plugin.fileio import atomic_write, atomic_write_json
from mggc_plugin.slim import load_slim, slim_info
from mggc_plugin.teacher import TeacherSpec

from facades import RESULTS, SHARED, unit_file
from facades_setup import TASKS, teacher_options
from facades_summary import UNITS


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--task", choices=tuple(TASKS), default="pix2pix")
    p.add_argument("--work", required=True, type=Path, help="the run's work folder (facades.py prints it)")
    p.add_argument("--budgets", nargs="+", type=float, default=[0.25])
    p.add_argument("--methods", nargs="+", default=["mggc", "mggc_latency"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--teacher", type=Path, help="the teacher's upstream folder (default: the shared one)")
    p.add_argument("--runs", type=int, default=20, help="interleaved timing rounds")
    p.add_argument("--runtime", choices=RUNTIMES, default="eager")
    add_warm_argument(p)
    p.add_argument("--subpixel", action="store_true",
                   help="deploy every network with U-Net transposed convolutions as sub-pixel convolutions")
    p.add_argument("--units", nargs="+", type=Path, default=[UNITS], help="unit folders, searched in order")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    task = TASKS[args.task]
    folder = args.teacher or SHARED / "teachers" / task.teacher
    opt = teacher_options(folder)
    G_T = TeacherSpec(folder / f"latest_net_{task.spec.teacher.G}.pth", opt.netG, opt.ngf, opt.norm,
                      not opt.no_dropout).load().eval()
    shape = (1, 3, opt.crop_size, opt.crop_size)
    nets: Dict[str, torch.nn.Module] = {TEACHER: G_T}
    units: Dict[str, Dict[str, Any]] = {}
    for budget in args.budgets:
        for method in args.methods:
            for seed in args.seeds:
                name = f"{method}-{budget:g}-s{seed}"
                student = args.work / f"s{seed}" / f"{method}-{budget:g}" / "eval_G.pt"
                unit = next((f for f in (unit_file(u, args.task, method, budget, seed) for u in args.units)
                             if f.is_file()), None)
                if not student.is_file() or unit is None:
                    print(f"skipped {name}: no {student if not student.is_file() else 'unit file'}", flush=True)
                    continue
                nets[name] = load_slim(student).eval()
                units[name] = json.loads(unit.read_text())
    with tempfile.TemporaryDirectory(prefix="mggc-facades-latency-") as work:
        models = [deployable(name, net, shape, args.subpixel) for name, net in nets.items()]
        result = bench(models, shape, Path(work), [args.runtime], batches=(1,), threads=(1,), runs=args.runs,
                       warmup=2, warm_s=args.warm_s, log=lambda s: print(s, flush=True))
    rows: List[Dict[str, Any]] = []
    for row in result["rows"]:
        if row["model"] == TEACHER:
            continue
        unit = units[row["model"]]
        rows.append({"method": unit["method"], "budget": unit["budget"], "seed": unit["seed"],
                     "macs_ratio": unit["macs_ratio"], "ms": row["median_ms"], "speedup": row["speedup"],
                     "estimate_ms": unit["info"].get("latency_ms_estimate"), "kid": unit["metrics"]["kid"],
                     "widths": slim_info(nets[row["model"]])["widths"]})
    teacher_ms = next(r["median_ms"] for r in result["rows"] if r["model"] == TEACHER)
    record = {"task": args.task, "machine": machine(), "runs": args.runs, "runtime": args.runtime,
              "subpixel": args.subpixel, "warm_s": args.warm_s, "teacher_ms": teacher_ms, "rows": rows}
    out = RESULTS / (f"facades_latency_{args.task}" + ("" if args.runtime == "eager" else f"_{args.runtime}")
                     + ("_subpixel" if args.subpixel else ""))
    atomic_write_json(out.with_suffix(".json"), record)
    text = markdown(record)
    atomic_write(out.with_suffix(".md"), lambda tmp: tmp.write_text(text))
    print(text)
    return 0


RUNTIME_NAMES = {"eager": "Eager PyTorch", "onnxruntime": "ONNX Runtime", "openvino": "OpenVINO float32",
                 "openvino_default": "OpenVINO at its default precision (bfloat16 on AMX)"}


def markdown(record: Dict[str, Any]) -> str:
    runtime = record.get("runtime", "eager")
    deployed = ", transposed convolutions as sub-pixel convolutions" if record.get("subpixel") else ""
    lines = [f"# Facades {record['task']}: students budgeted in MACs and in milliseconds", "",
             f"{RUNTIME_NAMES.get(runtime, runtime)}{deployed}, 1 thread, batch 1, median of {record['runs']} "
             f"interleaved rounds, {warm_note(record.get('warm_s', 0.0))}"
             f" — {record['machine']['cpu']}; the teacher {record['teacher_ms']:.2f} ms. "
             "A MAC budget r promises a speed-up of 1/r (the ideal, the MAC ratio); a latency budget r asks for it.",
             "",
             "| method | r | seed | MACs kept | ms | speed-up | speed-up / ideal | table estimate (ms) | KID |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in record["rows"]:
        estimate = "—" if row["estimate_ms"] is None else f"{row['estimate_ms']:.2f}"
        lines.append(f"| {row['method']} | {row['budget']:g} | {row['seed']} | {row['macs_ratio']:.1%} | "
                     f"{row['ms']:.2f} | {row['speedup']:.2f}× | {row['speedup'] * row['macs_ratio']:.2f} | "
                     f"{estimate} | {row['kid']:.4f} |")
    lines += ["", "| method | r | n | MACs kept | speed-up | speed-up / ideal | KID |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for method, budget in dict.fromkeys((row["method"], row["budget"]) for row in record["rows"]):
        rows = [row for row in record["rows"] if (row["method"], row["budget"]) == (method, budget)]
        lines.append(f"| {method} | {budget:g} | {len(rows)} | {np.mean([x['macs_ratio'] for x in rows]):.1%} | "
                     f"{np.mean([x['speedup'] for x in rows]):.2f}× | "
                     f"{np.mean([x['speedup'] * x['macs_ratio'] for x in rows]):.2f} | "
                     f"{np.mean([x['kid'] for x in rows]):.4f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
