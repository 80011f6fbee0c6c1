"""``mggc latency-table``: measure a generator's per-layer latency table on this machine, for a
latency budget (:mod:`mggc_plugin.latency_table`). Only the architecture matters, so it needs no
checkpoint: run it on the device the generator will be deployed on."""
from __future__ import annotations

import argparse

import torch

from .. import networks
from ..channels import ChannelGroups
from ..deploy.bench import EXPORTED_RUNTIMES, RUNTIMES
from ..errors import MGGCUserError
from ..footprint import check_runnable
from ..latency_table import FRACTIONS, measure


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--netG", choices=networks.GENERATORS, required=True, help="the generator's architecture")
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--norm", choices=networks.NORMS, default="instance")
    p.add_argument("--no_dropout", action="store_true",
                   help="as upstream's flag: the generator was built without dropout (it moves layer names)")
    p.add_argument("--input_nc", type=int, default=3)
    p.add_argument("--output_nc", type=int, default=3)
    p.add_argument("--size", type=int, default=256, help="input height and width: the game's --crop_size")
    p.add_argument("--runtime", choices=RUNTIMES, default="eager", help="the runtime to time on (default: eager)")
    p.add_argument("--threads", type=int, default=1, help="threads (default: 1)")
    p.add_argument("--fractions", type=float, nargs="+", default=list(FRACTIONS),
                   help=f"widths timed per layer, as fractions of its channels (default: {FRACTIONS})")
    p.add_argument("--runs", type=int, default=5, help="timed passes per width, after --warmup (default: 5)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--subpixel", action=argparse.BooleanOptionalAction, default=None,
                   help="time U-Net transposed convolutions as the sub-pixel convolutions mggc export writes to ONNX "
                        "and OpenVINO files (default: on for the onnxruntime and openvino runtimes, off otherwise)")
    p.add_argument("--out", default="latency_table.json", help="where the table goes (default: latency_table.json)")


def run(args: argparse.Namespace) -> int:
    bad = [f"--{name} {getattr(args, name)}" for name in ("ngf", "size", "threads", "runs") if getattr(args, name) < 1]
    if bad:
        raise MGGCUserError(f"{', '.join(bad)}: give values of at least 1")
    shape = (1, args.input_nc, args.size, args.size)

    def build() -> torch.nn.Module:
        return networks.define_G(args.input_nc, args.output_nc, args.ngf, args.netG, args.norm, not args.no_dropout)

    check_runnable(build, shape, f"{args.netG} (ngf {args.ngf}) at {args.size}x{args.size}",
                   "give a --size the network takes (unet_128 and unet_256 take multiples of 128 and 256)")
    G = build()
    groups = ChannelGroups.discover(G, torch.zeros(shape))
    subpixel = args.subpixel if args.subpixel is not None else args.runtime in EXPORTED_RUNTIMES
    table = measure(G, groups, args.runtime, args.threads, args.fractions, args.runs, args.warmup,
                    subpixel=subpixel)
    print(f"{args.netG} (ngf {args.ngf}) at {args.size}x{args.size} on {args.runtime}"
          f"{' (transposed convolutions as sub-pixel ones)' if subpixel else ''}, {args.threads} thread(s): "
          f"{len(table.layers)} layers, rest {table.per_element_ms * 1e6:.3f} ms per M activation elements "
          f"+ {table.overhead_ms:.3f} ms")
    for row in table.fit:
        print(f"  uniform {row['fraction']:.3f}: measured {row['measured_ms']:.3f} ms, estimated "
              f"{row['estimated_ms']:.3f} ms")
    print(f"wrote {table.save(args.out)}")
    return 0
