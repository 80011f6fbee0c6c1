"""Time one MGGC pruning step against one plain GAN training step on the same nets and batch.

The plain step is upstream's single-direction GAN update (``optimize_parameters`` of
pix2pix/CycleGAN without the L1/cycle terms): G updated through a frozen D, then D updated on
``G(x).detach()``; Adam(2e-4, β=(0.5, 0.999)) as upstream. The pruning step is
:meth:`mggc_plugin.pruner.MGGCPruner.step` (the full ``mggc`` row). Both run on the same
``resnet_9blocks`` (ngf 64, instance norm) and ``basic`` D (ndf 64), batch 1 at 128², LSGAN.

Runs are interleaved (plain, pruning, plain, ...) after a warm-up, so that drifting machine load
hits both alike. On a shared machine other processes inflate some runs several-fold (with two
intra-op threads on two busy cores, OpenMP's waiting threads make it worse), so three estimates
of the ratio are reported: of the medians, of the minima (the least disturbed runs) and the
median of the back-to-back pairs' ratios; and the whole measurement is repeated for every
``--threads`` value.

    python benchmarks/pruning_step.py [--size 128] [--repeats 20] [--threads 2 1]

Writes ``benchmarks/results/pruning_step.json`` and ``.md`` (atomically; ``--out`` changes the stem).
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List

import torch

from mggc_plugin import networks
from mggc_plugin.fileio import atomic_write, atomic_write_json
from mggc_plugin.losses import f_D, f_G
from mggc_plugin.pruner import MGGCConfig, MGGCPruner

RESULTS = Path(__file__).resolve().parent / "results"


def plain_gan_step(G, D, opt_G, opt_D, x, y) -> None:
    """Upstream's order: forward G; update G through a frozen D; update D on the detached fake."""
    fake = G(x)
    D.requires_grad_(False)
    opt_G.zero_grad()
    f_G(D(fake), "lsgan").backward()
    opt_G.step()
    D.requires_grad_(True)
    opt_D.zero_grad()
    f_D(D(y), D(fake.detach()), "lsgan").backward()
    opt_D.step()


def measure(plain: Callable[[], None], prune: Callable[[], None], threads: int, warmup: int,
            repeats: int) -> Dict[str, object]:
    """Interleaved timings of both steps with ``threads`` intra-op threads."""
    torch.set_num_threads(threads)
    load_before = os.getloadavg()[0]
    for _ in range(warmup):
        plain()
        prune()
    t_plain: List[float] = []
    t_prune: List[float] = []
    for _ in range(repeats):
        for fn, times in ((plain, t_plain), (prune, t_prune)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    med_plain, med_prune = statistics.median(t_plain), statistics.median(t_prune)
    return {"threads": threads, "plain_step_s": t_plain, "pruning_step_s": t_prune,
            "plain_step_median_s": med_plain, "pruning_step_median_s": med_prune,
            "ratio_of_medians": med_prune / med_plain, "ratio_of_minima": min(t_prune) / min(t_plain),
            "median_pair_ratio": statistics.median(b / a for a, b in zip(t_plain, t_prune)),
            "load_average_before": load_before, "load_average_after": os.getloadavg()[0]}


def report(result: dict, args: argparse.Namespace) -> str:
    """The Markdown table of ``result``."""
    lines = ["# One MGGC pruning step vs one plain GAN step\n",
             f"resnet_9blocks (ngf {args.ngf}, {result['G_macs'] / 1e9:.2f} G MACs) + basic D (ndf {args.ngf}), "
             f"instance norm, batch 1 at {args.size}², LSGAN; torch {result['torch']}, {result['cpu_count']}-core "
             f"CPU; {args.repeats} interleaved runs of each step after {args.warmup} warm-up runs, per thread "
             f"count. Target: pruning step ≤ 1.5× plain step.\n",
             "| threads | plain median (min–max) s | pruning median (min–max) s | ratio of medians | "
             "ratio of minima | median pair ratio | load avg before → after |",
             "|---|---|---|---|---|---|---|"]
    for m in result["runs"]:
        tp, tq = m["plain_step_s"], m["pruning_step_s"]
        lines.append(f"| {m['threads']} | {m['plain_step_median_s']:.3f} ({min(tp):.3f}–{max(tp):.3f}) | "
                     f"{m['pruning_step_median_s']:.3f} ({min(tq):.3f}–{max(tq):.3f}) | "
                     f"{m['ratio_of_medians']:.2f}× | {m['ratio_of_minima']:.2f}× | {m['median_pair_ratio']:.2f}× | "
                     f"{m['load_average_before']:.1f} → {m['load_average_after']:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--out", type=Path, default=RESULTS / "pruning_step",
                        help="path stem of the .json and .md results")
    args = parser.parse_args()
    torch.manual_seed(0)

    G = networks.define_G(3, 3, args.ngf, "resnet_9blocks", norm="instance")
    D = networks.define_D(3, args.ngf, "basic", norm="instance")
    x = torch.rand(1, 3, args.size, args.size) * 2 - 1
    with torch.no_grad():
        y_center = G(x)
    y_neighbor = torch.rand_like(y_center) * 2 - 1
    pruner = MGGCPruner(G, D, x, MGGCConfig(target_macs=0.25, gan_mode="lsgan"))

    # The plain step trains copies, so the pruner's teacher stays the teacher.
    G_train, D_train = copy.deepcopy(G), copy.deepcopy(D)
    opt_G = torch.optim.Adam(G_train.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(D_train.parameters(), lr=2e-4, betas=(0.5, 0.999))

    def plain() -> None:
        plain_gan_step(G_train, D_train, opt_G, opt_D, x, y_center)

    def prune() -> None:
        pruner.step(x, y_center, y_neighbor)

    result = {"netG": "resnet_9blocks", "ngf": args.ngf, "netD": "basic", "ndf": args.ngf, "norm": "instance",
              "input": [1, 3, args.size, args.size], "gan_mode": "lsgan", "ablation": "mggc",
              "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
              "cpu_count": os.cpu_count(), "repeats": args.repeats, "warmup": args.warmup,
              "G_macs": pruner.groups_G.full_macs, "D_macs": pruner.groups_D.full_macs,
              "runs": [measure(plain, prune, t, args.warmup, args.repeats) for t in args.threads]}
    table = report(result, args)
    atomic_write_json(args.out.with_suffix(".json"), result, indent=2)
    atomic_write(args.out.with_suffix(".md"), lambda tmp: tmp.write_text(table))
    print(table)


if __name__ == "__main__":
    main()
