"""``mggc macs``: the per-layer MAC profile of a standard generator or discriminator."""
from __future__ import annotations

import argparse

from torch import nn

from .. import networks
from ..errors import MGGCUserError
from ..footprint import check_runnable
from ..macs import count_macs


def configure(p: argparse.ArgumentParser) -> None:
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


def run(args: argparse.Namespace) -> int:
    width = ("ngf", args.ngf) if args.netG else ("ndf", args.ndf)
    small = [f"--{flag} {value}" for flag, value in (width, ("size", args.size), ("input_nc", args.input_nc),
                                                      ("output_nc", args.output_nc), ("n_layers_D", args.n_layers_D))
             if value < 1]
    if small:
        raise MGGCUserError(f"{', '.join(small)}: widths, sizes and channel counts are at least 1 (upstream's "
                            f"defaults: --{width[0]} 64, --size 256, 3 channels, --n_layers_D 3)")
    if args.netG:
        def build() -> nn.Module:
            return networks.define_G(args.input_nc, args.output_nc, args.ngf, args.netG, args.norm)
        name = f"{args.netG} (ngf {args.ngf})"
    else:
        def build() -> nn.Module:
            return networks.define_D(args.input_nc, args.ndf, args.netD, args.n_layers_D, args.norm)
        name = f"{args.netD} D (ndf {args.ndf})"
    shape = (1, args.input_nc, args.size, args.size)
    check_runnable(build, shape, f"{name} at {args.size}x{args.size}",
                   f"give --{width[0]} and --size of a network that runs (upstream trains --{width[0]} 64 at --size "
                   f"256; unet_128 and unet_256 take multiples of 128 and 256)")
    net = build()
    profile = count_macs(net, shape)
    print(profile.table())
    print(f"{name} at {args.size}x{args.size}: {profile.total / 1e9:.2f} G MACs, "
          f"{sum(p.numel() for p in net.parameters()) / 1e6:.2f} M parameters")
    return 0
