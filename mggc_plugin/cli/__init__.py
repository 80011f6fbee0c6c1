"""The ``mggc`` command.

Each sub-command is a module of this package with two functions, ``configure(parser)`` (its
arguments) and ``run(args) -> exit status``, listed in :data:`COMMANDS`. Errors the
user can fix (bad values, missing files) are raised as ``ValueError``/``FileNotFoundError`` by
the library and printed here as one line, with exit status 2.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

from . import bench, demo, evaluate, export, latency, macs, neighbors, register


@dataclass(frozen=True)
class Command:
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: Dict[str, Command] = {
    "demo": Command("run MGGC end to end on a built-in dataset and write an HTML report", demo.configure, demo.run),
    "macs": Command("MACs and parameters of a standard generator or discriminator, per layer",
                    macs.configure, macs.run),
    "export": Command("export a slim generator to TorchScript, ONNX (fp32/fp16/int8) or OpenVINO (checks output "
                      "parity and quantization quality)", export.configure, export.run),
    "bench": Command("latency of slim generators (and their teacher) per runtime, batch and threads",
                     bench.configure, bench.run),
    "latency-table": Command("measure a generator's per-layer latency table on this machine, for a latency budget",
                             latency.configure, latency.run),
    "neighbors": Command("build the manifold neighbourhoods (Eq. 1) of a teacher on a dataset, with an HTML view",
                         neighbors.configure, neighbors.run),
    "eval": Command("evaluation metrics: mggc eval {fid,kid,paired,labels} ...", evaluate.configure, evaluate.run),
    "register": Command("register the MGGC models and dataset in an upstream checkout (or --undo it)",
                        register.configure, register.run),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mggc", description="Manifold-Guided GAN Compression tools")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, cmd in COMMANDS.items():
        cmd.configure(sub.add_parser(name, help=cmd.help, description=cmd.help))
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command].run(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"mggc {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
