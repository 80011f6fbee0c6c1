"""INT8 against FP32 on ONNX Runtime (CPU): speed and the quality guard's figures, on the shared
facades teachers and their students.

Each teacher generator (upstream's weights), and an L1-norm student of it at each of ``--rates``
of its MACs (:func:`mggc_plugin.baselines.prune_to_budget`, widths multiples of 8, not
finetuned: its weights are the teacher's own filters, so its outputs are images), is exported to a
static, simplified ONNX graph at ``--size``² (:mod:`mggc_plugin.deploy.onnx`; BatchNorm per image,
as evaluated, exported as InstanceNorm) and quantized by :func:`mggc_plugin.deploy.quantize.to_int8`
on ``--calibration`` training sources twice: from that graph as it is, and, as ``mggc export
--precision int8`` does, from the graph with its U-Net transposed convolutions rewritten as
sub-pixel convolutions (:mod:`mggc_plugin.deploy.subpixel`). Each int8 graph is measured against
the fp32 model on ``--held_out`` other training sources (:func:`mggc_plugin.deploy.quantize.measure`:
mean L1 and PSNR of the outputs, the figures the export guards on), and all graphs are timed
interleaved on one thread (:func:`mggc_plugin.metrics.compare_latency`). Writes
``benchmarks/results/int8_speed.{json,md}``.

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

from mggc_plugin.baselines import prune_to_budget
from mggc_plugin.data import DatasetSpec, Preprocess
from mggc_plugin.deploy import onnx as onnx_export
from mggc_plugin.deploy.bench import RuntimeModule, machine
from mggc_plugin.deploy.fold import batchnorm_as_instancenorm
from mggc_plugin.deploy.quantize import measure, to_int8
from mggc_plugin.deploy.subpixel import conv_transposes_as_subpixel
from mggc_plugin.fileio import atomic_write, atomic_write_json
from mggc_plugin.metrics import compare_latency
from mggc_plugin.teacher import TeacherSpec, read_train_opt

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
RESULTS = ROOT / "benchmarks" / "results"
TEACHERS = {"pix2pix unet_128": ("facades_pix2pix_unet128_ngf32", "latest_net_G.pth", "BtoA"),
            "CycleGAN resnet_6blocks": ("facades_cycle_gan_res6_ngf32_64", "latest_net_G_A.pth", "AtoB")}


def load_teacher(folder: Path, weights: str) -> nn.Module:
    """The teacher as evaluated (per-image BatchNorm)."""
    opt = read_train_opt(folder / "train_opt.txt")
    spec = TeacherSpec(folder / weights, opt["netG"], int(opt["ngf"]), opt["norm"], opt["no_dropout"] != "True",
                       norm_stats="per_image")
    return spec.load()


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
    p.add_argument("--rates", type=float, nargs="+", default=[1.0, 0.1],
                   help="fractions of the teacher's MACs (1: the teacher itself)")
    p.add_argument("--dataroot", default=str(SHARED / "datasets" / "facades"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rows: List[Dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="mggc-int8-") as work:
        for name, (folder, weights, direction) in TEACHERS.items():
            teacher = load_teacher(SHARED / "teachers" / folder, weights)
            x = sources(Path(args.dataroot), direction, args.size, args.calibration + args.held_out)
            calibration, held_out = list(x[:args.calibration].split(1)), x[args.calibration:]
            for rate in args.rates:
                net = teacher if rate >= 1 else prune_to_budget(teacher, x[:1], rate, "l1_norm", round_to=8)
                G = batchnorm_as_instancenorm(net.eval())
                sub, rewritten = conv_transposes_as_subpixel(G)
                files = {key: Path(work) / f"{len(rows)}-{key}.onnx"
                         for key in ("fp32", "fp32_subpixel", "int8_direct", "int8")}
                onnx_export.save(G, x[:1], files["fp32"])
                onnx_export.save(sub, x[:1], files["fp32_subpixel"])
                to_int8(files["fp32"], files["int8_direct"], calibration)
                to_int8(files["fp32_subpixel"], files["int8"], calibration)
                quality = {key: measure(onnx_export.runner(files[key], 1), G, list(held_out.split(1)))
                           for key in ("int8_direct", "int8")}
                nets = {key: RuntimeModule(onnx_export.runner(f, 1)) for key, f in files.items()}
                timing = compare_latency(nets, (1, 3, args.size, args.size), rounds=args.runs, warmup=2, threads=1,
                                         reference="fp32")
                rows.append({"model": name, "rate": rate, "rewritten_conv_transposes": rewritten,
                             **{f"{key}_ms": timing.median_s[key] * 1e3 for key in files},
                             **{f"speedup_{key}": timing.speedup[key] for key in files if key != "fp32"},
                             **{f"mean_l1_{key}": q.mean_l1 for key, q in quality.items()},
                             **{f"psnr_{key}": q.psnr for key, q in quality.items()}})
                print(rows[-1], flush=True)
    m = machine()
    record = {"machine": m, "size": args.size, "calibration": args.calibration, "held_out": args.held_out,
              "runs": args.runs, "rates": args.rates, "rows": rows}
    atomic_write_json(RESULTS / "int8_speed.json", record)
    lines = [f"INT8 vs FP32, ONNX Runtime CPU, 1 thread, batch 1, {args.size}², median of {args.runs} interleaved "
             f"rounds — {m['cpu']}; quality on {args.held_out} held-out facades training sources "
             f"({args.calibration} for calibration). Speed-ups over the fp32 graph; *int8*: what `mggc export "
             f"--precision int8` writes (U-Net transposed convolutions as sub-pixel convolutions), *int8 direct*: "
             f"the fp32 graph quantized as it is", "",
             "| model | MACs | fp32 (ms) | fp32 sub-pixel | int8 direct | **int8** | int8 (ms) | mean L1 to fp32 "
             "(direct / int8) | PSNR dB (direct / int8) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['rate']:.0%} | {r['fp32_ms']:.1f} | {r['speedup_fp32_subpixel']:.2f}× | "
                     f"{r['speedup_int8_direct']:.2f}× | **{r['speedup_int8']:.2f}×** | {r['int8_ms']:.1f} | "
                     f"{r['mean_l1_int8_direct']:.4f} / {r['mean_l1_int8']:.4f} | "
                     f"{r['psnr_int8_direct']:.1f} / {r['psnr_int8']:.1f} |")
    text = "\n".join(lines) + "\n"
    atomic_write(RESULTS / "int8_speed.md", lambda tmp: tmp.write_text(text))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
