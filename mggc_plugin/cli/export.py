"""``mggc export``: a slim checkpoint to a file that runs without this package."""
from __future__ import annotations

import argparse

from ..slim import export, find_slim_checkpoint


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="a slim checkpoint (save_slim), or a checkpoints/<name> folder "
                                "holding latest_slim_G.pt")
    p.add_argument("--format", choices=("torchscript", "onnx"), default="torchscript")
    p.add_argument("--out", help="output file (default: beside the checkpoint, .ts or .onnx)")
    p.add_argument("--size", type=int, help="example input height/width (default: the one the "
                                           "checkpoint was pruned at)")


def run(args: argparse.Namespace) -> int:
    out = export(find_slim_checkpoint(args.path), args.format, out=args.out, size=args.size)
    print(f"wrote {out.path} ({args.format}); output parity with the slim model: max abs diff "
          f"{out.max_abs_diff:.2e}")
    return 0
