"""INT8 against FP32 on ONNX Runtime (CPU): speed and the quality guard's figures, on the shared
facades teachers.

Each teacher generator (upstream's weights) is exported to a static, simplified ONNX graph at
``--size``² (:mod:`mggc_plugin.deploy.onnx`; BatchNorm per image, as evaluated, exported as
InstanceNorm), quantized by :func:`mggc_plugin.deploy.quantize.to_int8` on ``--calibration``
training sources, measured against the fp32 model on ``--held_out`` other training sources
(:func:`mggc_plugin.deploy.quantize.measure`: mean L1 and PSNR of the outputs, the figures
``mggc export --precision int8`` guards on), and both graphs are timed interleaved on one thread
(:func:`mggc_plugin.metrics.compare_latency`). Writes ``benchmarks/results/int8_speed.{json,md}``.

    python benchmarks/int8_speed.py
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from mggc_plugin.data import DatasetSpec, Preprocess
from mggc_plugin.deploy import onnx as onnx_export
from mggc_plugin.deploy.bench import RuntimeModule, machine
from mggc_plugin.deploy.fold import batchnorm_as_instancenorm
from mggc_plugin.deploy.quantize import measure, to_int8
from mggc_plugin.fileio import atomic_write, atomic_write_json
from mggc_plugin.metrics import compare_latency
from mggc_plugin.teacher import TeacherSpec, read_train_opt

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
RESULTS = ROOT / "benchmarks" / "results"
TEACHERS = {"pix2pix unet_128": ("facades_pix2pix_unet128_ngf32", "latest_net_G.pth", "BtoA"),
            "CycleGAN resnet_6blocks": ("facades_cycle_gan_res6_ngf32_64", "latest_net_G_A.pth", "AtoB")}


def load_teacher(folder: Path, weights: str) -> nn.Module:
    """The teacher as evaluated (per-image BatchNorm), its BatchNorm exported as InstanceNorm."""
    opt = read_train_opt(folder / "train_opt.txt")
    spec = TeacherSpec(folder / weights, opt["netG"], int(opt["ngf"]), opt["norm"], opt["no_dropout"] != "True",
                       norm_stats="per_image")
    return batchnorm_as_instancenorm(spec.load())


def sources(dataroot: Path, direction: str, size: int, count: int) -> torch.Tensor:
    pre = Preprocess(size)
    return torch.stack([pre.tensor(r.load(), 3) for r in DatasetSpec(dataroot, "aligned", direction, "train"
                                                                       ).sources()[:count]])


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--calibration", type=int, default=32)
    p.add_argument("--held_out", type=int, default=8)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--dataroot", default=str(SHARED / "datasets" / "facades"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rows: List[Dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="mggc-int8-") as work:
        for name, (folder, weights, direction) in TEACHERS.items():
            G = load_teacher(SHARED / "teachers" / folder, weights)
            x = sources(Path(args.dataroot), direction, args.size, args.calibration + args.held_out)
            calibration, held_out = list(x[:args.calibration].split(1)), x[args.calibration:]
            fp32, int8 = Path(work) / f"{len(rows)}.onnx", Path(work) / f"{len(rows)}.int8.onnx"
            onnx_export.save(G, x[:1], fp32)
            to_int8(fp32, int8, calibration)
            quality = measure(onnx_export.runner(int8, 1), G, list(held_out.split(1)))
            nets = {key: RuntimeModule(onnx_export.runner(f, 1)) for key, f in (("fp32", fp32), ("int8", int8))}
            timing = compare_latency(nets, (1, 3, args.size, args.size), rounds=args.runs, warmup=2, threads=1,
                                     reference="fp32")
            rows.append({"model": name, "fp32_ms": timing.median_s["fp32"] * 1e3,
                         "int8_ms": timing.median_s["int8"] * 1e3, "speedup": timing.speedup["int8"],
                         "mean_l1": quality.mean_l1, "psnr": quality.psnr})
            print(rows[-1], flush=True)
    m = machine()
    record = {"machine": m, "size": args.size, "calibration": args.calibration, "held_out": args.held_out,
              "runs": args.runs, "rows": rows}
    atomic_write_json(RESULTS / "int8_speed.json", record)
    lines = [f"INT8 vs FP32, ONNX Runtime CPU, 1 thread, batch 1, {args.size}², median of {args.runs} interleaved "
             f"rounds — {m['cpu']}; quality on {args.held_out} held-out facades training sources "
             f"({args.calibration} for calibration)", "",
             "| teacher | fp32 (ms) | int8 (ms) | int8 speed-up | mean L1 to fp32 | PSNR (dB) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['fp32_ms']:.1f} | {r['int8_ms']:.1f} | {r['speedup']:.2f}× | "
                     f"{r['mean_l1']:.4f} | {r['psnr']:.1f} |")
    text = "\n".join(lines) + "\n"
    atomic_write(RESULTS / "int8_speed.md", lambda tmp: tmp.write_text(text))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
