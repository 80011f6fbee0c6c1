"""INT8 against FP32 on ONNX Runtime and OpenVINO (CPU): speed and the quality guard's figures,
on the shared facades teachers and their students.

Each teacher generator (upstream's weights), and an L1-norm student of it at each of ``--rates``
of its MACs (:func:`mggc_plugin.baselines.prune_to_budget`, widths multiples of 8, not
finetuned: its weights are the teacher's own filters, so its outputs are images), is exported to a
static, simplified ONNX graph at ``--size``² (:mod:`mggc_plugin.deploy.onnx`; BatchNorm per image,
as evaluated, exported as InstanceNorm) and quantized by :func:`mggc_plugin.deploy.quantize.to_int8`
on ``--calibration`` training sources twice: from that graph as it is, and, as ``mggc export
--precision int8`` does, from the graph with its U-Net transposed convolutions rewritten as
sub-pixel convolutions (:mod:`mggc_plugin.deploy.subpixel`). OpenVINO runs the fp32 graph in
float32 (``ov fp32``, what ``mggc bench``'s ``openvino`` times) and at its CPU plugin's default
precision (``ov default``: bfloat16 on CPUs with AMX or AVX512-BF16), and the int8 graph as
``mggc export --format openvino --precision int8`` writes and checks it (default precision for
the layers left in float; ``ov int8 f32``: float32 for them). Each int8 or reduced-precision
model is measured against the fp32 model on ``--held_out`` other training sources
(:func:`mggc_plugin.deploy.quantize.measure`: mean L1 and PSNR of the outputs, the figures the
export guards on), and all are timed interleaved on one thread
(:func:`mggc_plugin.metrics.compare_latency`); speed-ups are medians of per-round ratios to the
same runtime's fp32, each network timed warm (``--warm_s``, as ``mggc bench``). Writes
``benchmarks/results/int8_speed.{json,md}`` (``--out``). Needs a quiet machine.

    python benchmarks/int8_speed.py
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch
from torch import nn

from mggc_plugin.baselines import prune_to_budget
from mggc_plugin.data import DatasetSpec, Preprocess
from mggc_plugin.deploy import onnx as onnx_export
from mggc_plugin.deploy import openvino as ov_export
from mggc_plugin.deploy.bench import RuntimeModule, add_warm_argument, machine, warm_note
from mggc_plugin.deploy.fold import batchnorm_as_instancenorm
from mggc_plugin.deploy.quantize import measure, to_int8
from mggc_plugin.deploy.subpixel import conv_transposes_as_subpixel
from mggc_plugin.fileio import write_record
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


#: What each OpenVINO model runs: (ONNX file key, float32 inference precision for the float layers).
OPENVINO = {"ov_fp32": ("fp32", True), "ov_default": ("fp32", False), "ov_int8": ("int8", False),
            "ov_int8_f32": ("int8", True)}


def openvino_runners(onnx_file: Path) -> Dict[bool, ov_export.CompiledRunner]:
    """The ONNX file converted to IR once and compiled with float32 float layers (True) and at the
    CPU plugin's default precision (False), one thread each."""
    xml = onnx_file.with_suffix(".xml")
    ov_export.convert(onnx_file, xml)
    return {exact: ov_export.CompiledRunner(ov_export.compile_model(xml, threads=1, exact=exact))
            for exact in (True, False)}


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--calibration", type=int, default=32)
    p.add_argument("--held_out", type=int, default=8)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--rates", type=float, nargs="+", default=[1.0, 0.25, 0.1],
                   help="fractions of the teacher's MACs (1: the teacher itself)")
    p.add_argument("--dataroot", default=str(SHARED / "datasets" / "facades"))
    p.add_argument("--out", default=str(RESULTS / "int8_speed"), help="JSON and Markdown path, without suffix")
    add_warm_argument(p)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rows: List[Dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="mggc-int8-") as work:
        for name, (folder, weights, direction) in TEACHERS.items():
            teacher = load_teacher(SHARED / "teachers" / folder, weights)
            x = sources(Path(args.dataroot), direction, args.size, args.calibration + args.held_out)
            calibration, held_out = list(x[:args.calibration].split(1)), list(x[args.calibration:].split(1))
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
                runs = {key: onnx_export.runner(f, 1) for key, f in files.items()}
                compiled = {src: openvino_runners(files[src]) for src in ("fp32", "int8")}
                runs.update({key: compiled[src][exact] for key, (src, exact) in OPENVINO.items()})
                quality = {key: measure(runs[key], G, held_out)
                           for key in ("int8_direct", "int8", "ov_default", "ov_int8", "ov_int8_f32")}
                c = compare_latency({key: RuntimeModule(run) for key, run in runs.items()},
                                    (1, 3, args.size, args.size), rounds=args.runs, warmup=2, threads=1,
                                    reference="fp32", warm_s=args.warm_s)
                rows.append({"model": name, "rate": rate, "rewritten_conv_transposes": rewritten,
                             **{f"{key}_ms": c.median_s[key] * 1e3 for key in runs},
                             **{f"speedup_{key}": c.speedup[key] for key in files if key != "fp32"},
                             **{f"speedup_{key}": c.speedup_over(key, "ov_fp32") for key in OPENVINO
                                if key != "ov_fp32"},
                             "speedup_ov_fp32_over_ort_fp32": c.speedup["ov_fp32"],
                             **{f"mean_l1_{key}": q.mean_l1 for key, q in quality.items()},
                             **{f"psnr_{key}": q.psnr for key, q in quality.items()}})
                print(rows[-1], flush=True)
    m = machine()
    record = {"machine": m, "size": args.size, "calibration": args.calibration, "held_out": args.held_out,
              "runs": args.runs, "warm_s": args.warm_s, "rates": args.rates, "rows": rows}
    write_record(args.out, record, markdown(record))
    return 0


def markdown(record: Dict[str, Any]) -> str:
    m = record["machine"]
    lines = [f"INT8 against FP32 on one thread, batch 1, {record['size']}², median of {record['runs']} interleaved "
             f"rounds, {warm_note(record.get('warm_s', 0.0))} — {m['cpu']}, "
             f"{', '.join(f'{k} {v}' for k, v in m['versions'].items())}; "
             f"quality (mean L1 to the fp32 model's outputs on [-1, 1]) on {record['held_out']} held-out facades "
             f"training sources ({record['calibration']} for calibration). Speed-ups over the same runtime's fp32. "
             "*int8*: what `mggc export --precision int8` writes (U-Net transposed convolutions as sub-pixel "
             "convolutions; ONNX Runtime, and OpenVINO with `--format openvino`), *int8 direct*: the fp32 graph "
             "quantized as it is; *ov default*: the fp32 IR at OpenVINO's default CPU precision (bfloat16 where the "
             "CPU has it); *ov int8 f32*: the int8 IR with its float layers in float32.", "",
             "### ONNX Runtime", "",
             "| model | MACs | fp32 (ms) | fp32 sub-pixel | int8 direct | **int8** | int8 (ms) | "
             "mean L1 (direct / int8) | PSNR dB (direct / int8) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in record["rows"]:
        lines.append(f"| {r['model']} | {r['rate']:.0%} | {r['fp32_ms']:.1f} | {r['speedup_fp32_subpixel']:.2f}× | "
                     f"{r['speedup_int8_direct']:.2f}× | **{r['speedup_int8']:.2f}×** | {r['int8_ms']:.1f} | "
                     f"{r['mean_l1_int8_direct']:.4f} / {r['mean_l1_int8']:.4f} | "
                     f"{r['psnr_int8_direct']:.1f} / {r['psnr_int8']:.1f} |")
    lines += ["", "### OpenVINO", "",
              "| model | MACs | ov fp32 (ms) | over ORT fp32 | ov default | **ov int8** | ov int8 f32 | ov int8 (ms) | "
              "mean L1 (default / int8 / int8 f32) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in record["rows"]:
        lines.append(f"| {r['model']} | {r['rate']:.0%} | {r['ov_fp32_ms']:.1f} | "
                     f"{r['speedup_ov_fp32_over_ort_fp32']:.2f}× | {r['speedup_ov_default']:.2f}× | "
                     f"**{r['speedup_ov_int8']:.2f}×** | {r['speedup_ov_int8_f32']:.2f}× | {r['ov_int8_ms']:.1f} | "
                     f"{r['mean_l1_ov_default']:.4f} / {r['mean_l1_ov_int8']:.4f} / {r['mean_l1_ov_int8_f32']:.4f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
