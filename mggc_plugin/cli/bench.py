"""``mggc bench``: latency of slim checkpoints (and their teacher) per runtime, batch and threads."""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from ..deploy.bench import (
    RUNTIMES,
    TEACHER,
    add_processes_argument,
    add_warm_argument,
    bench,
    deployable,
    load_teacher,
    markdown,
    write,
)
from ..deploy.openvino import LAYOUTS
from ..device import add_device_argument, resolve_device
from ..errors import MGGCUserError
from ..footprint import check_runnable
from ..slim import find_slim_checkpoint, load_slim, slim_info


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="slim checkpoints (save_slim), or checkpoints/<name> folders holding latest_slim_G.pt")
    p.add_argument("--teacher", help="the full generator's upstream checkpoint (*_net_G.pth, or a folder holding "
                                     "latest_net_G.pth), built with the first checkpoint's architecture: adds the "
                                     "speed-ups over it")
    p.add_argument("--runtimes", nargs="+", default=list(RUNTIMES), choices=RUNTIMES, metavar="RUNTIME",
                   help=f"runtimes to time (default: all of {' '.join(RUNTIMES)}; missing ones are skipped)")
    p.add_argument("--batch", nargs="+", type=int, default=[1, 8], help="batch sizes (default: 1 8)")
    p.add_argument("--threads", nargs="+", type=int, default=[1, 0], help="threads, 0: all usable cores "
                                                                          "(default: 1 0)")
    p.add_argument("--size", type=int, help="input height/width (default: the first checkpoint's pruning size)")
    p.add_argument("--runs", type=int, default=10, help="timed rounds (default: 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed rounds first (default: 2)")
    add_warm_argument(p)
    add_processes_argument(p)
    add_device_argument(p, "eager PyTorch and TorchScript run there, ONNX Runtime too when its CUDA provider is "
                           "installed (onnxruntime-gpu); OpenVINO runs on the CPU")
    p.add_argument("--subpixel", action="store_true",
                   help="time every network, the teacher too, with its U-Net transposed convolutions as sub-pixel "
                        "convolutions, as mggc export --format onnx|openvino writes them by default (off: as trained)")
    p.add_argument("--layout", choices=LAYOUTS, default=LAYOUTS[0],
                   help="how the OpenVINO runtimes' IR takes and returns images: nchw (default) or nhwc (channels "
                        "last, as mggc export --format openvino --layout nhwc writes it)")
    p.add_argument("--out", default="bench.json", help="JSON result; the Markdown table goes beside it as .md "
                                                       "(default: bench.json)")


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    paths = [find_slim_checkpoint(p) for p in args.paths]
    first = load_slim(paths[0])
    shape = list(slim_info(first)["input_shape"])
    if args.size is not None:
        if args.size < 1:
            raise MGGCUserError(f"--size {args.size}: give the input height/width in pixels, at least 1")
        shape[-2:] = [args.size, args.size]
    image = (1, *shape[1:])
    check_runnable(first, image, f"{paths[0]} at {image[-2]}x{image[-1]}", "give a --size the network takes")
    models = []
    if args.teacher:
        models.append(deployable(TEACHER, load_teacher(paths[0], args.teacher), image, args.subpixel))
    names = [p.stem if [q.stem for q in paths].count(p.stem) == 1 else str(p) for p in paths]
    models += [deployable(name, load_slim(p), image, args.subpixel) for name, p in zip(names, paths)]
    with tempfile.TemporaryDirectory(prefix="mggc-bench-") as work:
        result = bench(models, image, Path(work), args.runtimes, args.batch, args.threads, args.runs, args.warmup,
                       device=device, warm_s=args.warm_s, processes=args.processes, layout=args.layout)
    print(markdown(result), end="")
    for path in write(result, args.out):
        print(f"wrote {path}")
    return 0

