"""``mggc register``: the shims that make ``--model mggc_*`` visible in an upstream checkout."""
from __future__ import annotations

import argparse

from ..upstream.register import register, unregister


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("upstream_dir", help="a pytorch-CycleGAN-and-pix2pix checkout (the folder holding train.py)")
    p.add_argument("--undo", action="store_true", help="remove the files a previous registration wrote")


def run(args: argparse.Namespace) -> int:
    if args.undo:
        removed = unregister(args.upstream_dir)
        print("\n".join(f"removed {p}" for p in removed) or f"nothing to remove in {args.upstream_dir}")
    else:
        for path in register(args.upstream_dir):
            print(f"wrote {path}")
        print("now available: --model mggc_pix2pix, --model mggc_cycle_gan, --dataset_mode neighborhood")
    return 0
