"""The ``mggc`` command.

Each sub-command is a :class:`Command` in :data:`COMMANDS`: a function that adds its arguments
to an ``argparse`` parser and a function that runs it. Errors the user can fix (bad values,
missing files) are raised as ``ValueError``/``FileNotFoundError`` by the library and printed
here as one line, with exit status 2.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

from . import demo, metrics, neighborhoods, networks
from .macs import count_macs
from .slim import export, find_slim_checkpoint
from .upstream.register import register, unregister


@dataclass(frozen=True)
class Command:
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _configure_macs(p: argparse.ArgumentParser) -> None:
    net = p.add_mutually_exclusive_group(required=True)
    net.add_argument("--netG", choices=networks.GENERATORS, help="profile this generator")
    net.add_argument("--netD", choices=networks.DISCRIMINATORS, help="profile this discriminator")
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--ndf", type=int, default=64)
    p.add_argument("--n_layers_D", type=int, default=3)
    p.add_argument("--norm", choices=networks.NORMS, default="instance")
    p.add_argument("--input_nc", type=int, default=3,
                   help="input channels (a conditional pix2pix D sees input_nc + output_nc = 6)")
    p.add_argument("--output_nc", type=int, default=3)
    p.add_argument("--size", type=int, default=256, help="input height and width")


def _run_macs(args: argparse.Namespace) -> int:
    if args.netG:
        net = networks.define_G(args.input_nc, args.output_nc, args.ngf, args.netG, args.norm)
        name = f"{args.netG} (ngf {args.ngf})"
    else:
        net = networks.define_D(args.input_nc, args.ndf, args.netD, args.n_layers_D, args.norm)
        name = f"{args.netD} D (ndf {args.ndf})"
    profile = count_macs(net, (1, args.input_nc, args.size, args.size))
    print(profile.table())
    print(f"{name} at {args.size}x{args.size}: {profile.total / 1e9:.2f} G MACs, "
          f"{sum(p.numel() for p in net.parameters()) / 1e6:.2f} M parameters")
    return 0


def _configure_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="a slim checkpoint (save_slim), or a checkpoints/<name> folder "
                                "holding latest_slim_G.pt")
    p.add_argument("--format", choices=("torchscript", "onnx"), default="torchscript")
    p.add_argument("--out", help="output file (default: beside the checkpoint, .ts or .onnx)")
    p.add_argument("--size", type=int, help="example input height/width (default: the one the "
                                           "checkpoint was pruned at)")


def _run_export(args: argparse.Namespace) -> int:
    out = export(find_slim_checkpoint(args.path), args.format, out=args.out, size=args.size)
    print(f"wrote {out.path} ({args.format}); output parity with the slim model: max abs diff "
          f"{out.max_abs_diff:.2e}")
    return 0


def _configure_register(p: argparse.ArgumentParser) -> None:
    p.add_argument("upstream_dir", help="a pytorch-CycleGAN-and-pix2pix checkout (the folder holding train.py)")
    p.add_argument("--undo", action="store_true", help="remove the files a previous registration wrote")


def _run_register(args: argparse.Namespace) -> int:
    if args.undo:
        removed = unregister(args.upstream_dir)
        print("\n".join(f"removed {p}" for p in removed) or f"nothing to remove in {args.upstream_dir}")
    else:
        for path in register(args.upstream_dir):
            print(f"wrote {path}")
        print("now available: --model mggc_pix2pix, --model mggc_cycle_gan, --dataset_mode neighborhood")
    return 0


COMMANDS: Dict[str, Command] = {
    "demo": Command("run MGGC end to end on a built-in dataset and write an HTML report", demo.configure_demo_command, demo.run_demo_command),
    "macs": Command("MACs and parameters of a standard generator or discriminator, per layer",
                    _configure_macs, _run_macs),
    "export": Command("export a slim generator to TorchScript or ONNX (checks output parity)",
                      _configure_export, _run_export),
    "neighbors": Command("build the manifold neighbourhoods (Eq. 1) of a teacher on a dataset, with an HTML view",
                         neighborhoods.configure_neighbors_command, neighborhoods.run_neighbors_command),
    "eval": Command("evaluation metrics: mggc eval fid --real DIR --fake DIR", metrics.configure_eval_command, metrics.run_eval_command),
    "register": Command("register the MGGC models and dataset in an upstream checkout (or --undo it)",
                        _configure_register, _run_register),
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
