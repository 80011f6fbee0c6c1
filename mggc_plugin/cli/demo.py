"""``mggc demo``: MGGC end to end on the built-in dataset (:mod:`mggc_plugin.demo`)."""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch

from .. import demo


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="mggc_demo",
                   help="folder for the data, checkpoints and report (default ./mggc_demo)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--quick", action="store_true", help="tiny schedules (a smoke test, not a result)")


def run(args: argparse.Namespace) -> int:
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is visible to torch here; use --device cpu")
    cfg = replace(demo.QUICK if args.quick else demo.DemoConfig(), device=args.device)
    demo.run_demo(Path(args.out), cfg)
    return 0
