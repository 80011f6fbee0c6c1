"""``mggc export``: a slim checkpoint to a file that runs without this package."""
from __future__ import annotations

import argparse

from ..deploy import DEFAULT_MAX_L1, FORMATS, OPSET, PRECISIONS, export
from ..deploy.openvino import LAYOUTS
from ..device import add_device_argument, resolve_device
from ..slim import find_slim_checkpoint
from ..teacher import NORM_STATS


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="a slim checkpoint (save_slim), or a checkpoints/<name> folder "
                                "holding latest_slim_G.pt")
    p.add_argument("--format", choices=tuple(FORMATS), default="torchscript",
                   help=f"torchscript, onnx (opset {OPSET}, simplified) or openvino (IR .xml + .bin, from the ONNX "
                        f"graph; needs the openvino extra)")
    p.add_argument("--out", help="output file (default: beside the checkpoint, .ts, .onnx, .xml, or "
                                 ".<precision>.onnx / .<precision>.xml)")
    p.add_argument("--size", type=int, help="example input height/width (default: the one the "
                                           "checkpoint was pruned at)")
    p.add_argument("--dynamic", action="store_true",
                   help="onnx/openvino: symbolic batch, height and width (default: static shapes, which edge "
                        "tools such as TensorRT and Lens Studio need)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="onnx: fp16, or int8 (static quantization, per-channel weights, calibrated on "
                        "--calibration); openvino: int8 (the same graph, run by OpenVINO's int8 kernels); measured "
                        "against the fp32 slim model before writing")
    p.add_argument("--calibration", metavar="DIR",
                   help="images for int8 calibration and the quality check (default: the run's training sources "
                        "when train_opt.txt beside the checkpoint names a dataroot that exists)")
    p.add_argument("--max_l1", type=float, default=DEFAULT_MAX_L1,
                   help=f"fp16/int8: refuse to write when the outputs' mean L1 to the fp32 slim model's (on [-1, 1]) "
                        f"exceeds this (default: {DEFAULT_MAX_L1})")
    p.add_argument("--norm_stats", choices=NORM_STATS, default="per_image",
                   help="what BatchNorm normalises by in the exported file: per_image (default; each image by its "
                        "own statistics, as upstream's test.py runs pix2pix and as mggc evaluates it; exported as "
                        "InstanceNorm) or running (eval mode's running statistics, folded into the convolutions)")
    p.add_argument("--subpixel", action=argparse.BooleanOptionalAction, default=None,
                   help="export U-Net transposed convolutions as sub-pixel convolutions (same outputs to float32 "
                        "rounding). Default: on for --format onnx and openvino (2.6-3.9x faster in OpenVINO's "
                        "bfloat16 for unet_256, about as fast in float32; ONNX Runtime quantizes them to int8), off "
                        "for torchscript")
    p.add_argument("--layout", choices=LAYOUTS, default=LAYOUTS[0],
                   help="openvino: how the IR takes and returns images: nchw (default, as PyTorch) or nhwc "
                        "(channels last, as image decoders give them; OpenVINO then skips the reorders of input and "
                        "output, about 4 %% faster for a small unet_256 student in bfloat16)")
    add_device_argument(p, "the PyTorch reference of the parity and quality checks runs there; the exported file is "
                           "traced and checked on the CPU runtimes")


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    out = export(find_slim_checkpoint(args.path), args.format, out=args.out, size=args.size, dynamic=args.dynamic,
                 precision=args.precision, calibration=args.calibration, max_l1=args.max_l1,
                 norm_stats=args.norm_stats, device=device, subpixel=args.subpixel,
                 layout=args.layout)
    print(out.describe())
    return 0
