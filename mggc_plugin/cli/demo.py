"""``mggc demo``: MGGC end to end on the built-in dataset (:mod:`mggc_plugin.demo`)."""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from .. import demo
from ..device import add_device_argument, resolve_device


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="mggc_demo",
                   help="folder for the data, checkpoints and report (default ./mggc_demo)")
    add_device_argument(p, "every stage runs there (teacher, neighbourhoods, game, finetuning, evaluation, "
                           "latency)")
    p.add_argument("--quick", action="store_true", help="tiny schedules (a smoke test, not a result)")


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    cfg = replace(demo.QUICK if args.quick else demo.DemoConfig(), device=str(device))
    demo.run_demo(Path(args.out), cfg)
    return 0
