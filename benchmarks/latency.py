"""Latency of full vs physically slimmed generators (the issue-2 benchmark).

For ``resnet_9blocks`` and ``unet_256`` (ngf 64, batch 1, 256²) it slims every channel group to
the same kept fraction r of its first channels, with widths rounded to multiples of 8, r the
largest whose slim generator has at most 25 % and 10 % of the full MACs
(:func:`mggc_plugin.baselines.masks_to_budget`, ``uniform``); then it times full and slim
models (median of --runs passes after warm-up) and reports the speed-up beside the ideal one
(the MAC ratio). Results: benchmarks/results/latency.{json,md}.

    python benchmarks/latency.py [--runs 20] [--threads N] [--device cpu|cuda] [--out benchmarks/results]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from mggc_plugin import ChannelGroups, count_macs, networks, slim
from mggc_plugin.baselines import masks_to_budget
from mggc_plugin.deploy.bench import cpu_name
from mggc_plugin.fileio import atomic_write, atomic_write_json
from mggc_plugin.metrics import latency

MODELS = {"resnet_9blocks": "instance", "unet_256": "batch"}
TARGETS = (0.25, 0.10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch intra-op threads on the CPU (default: torch's choice)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    shape = (1, 3, 256, 256)
    machine = (torch.cuda.get_device_name() if args.device.startswith("cuda")
               else f"{cpu_name()}, torch threads: {torch.get_num_threads()}")
    rows = []
    for netG, norm in MODELS.items():
        torch.manual_seed(0)
        G = networks.define_G(3, 3, 64, netG, norm=norm).eval()
        groups = ChannelGroups.discover(G, torch.zeros(shape))
        full_time = latency(G, shape, args.runs, args.warmup, args.device)
        rows.append(dict(netG=netG, macs_fraction=1.0, gmacs=groups.full_macs / 1e9, widths=groups.sizes,
                         params_m=sum(p.numel() for p in G.parameters()) / 1e6, latency_ms=full_time * 1e3,
                         speedup=1.0, ideal_speedup=1.0))
        for target in TARGETS:
            small = slim(G.cpu(), groups, masks_to_budget(groups, target, "uniform", round_to=8))
            macs = count_macs(small, shape).total
            t = latency(small, shape, args.runs, args.warmup, args.device)
            rows.append(dict(netG=netG, macs_fraction=macs / groups.full_macs, gmacs=macs / 1e9,
                             widths=small.mggc_slim["widths"],
                             params_m=sum(p.numel() for p in small.parameters()) / 1e6, latency_ms=t * 1e3,
                             speedup=full_time / t, ideal_speedup=groups.full_macs / macs))
            print(f"{netG} at {macs / groups.full_macs:.1%} MACs: {full_time / t:.2f}x faster "
                  f"(ideal {groups.full_macs / macs:.2f}x)")
    out = Path(args.out)
    result = dict(machine=machine, device=args.device, torch=torch.__version__, input_shape=list(shape),
                  runs=args.runs, warmup=args.warmup, rows=rows)
    atomic_write_json(out / "latency.json", result, indent=2)
    lines = [f"Latency, batch 1, 256², median of {args.runs} runs after {args.warmup} warm-up — {machine}, "
             f"torch {torch.__version__}", "",
             "| generator | MACs kept | G MACs | params (M) | latency (ms) | speed-up | ideal (MAC ratio) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['netG']} | {r['macs_fraction']:.1%} | {r['gmacs']:.2f} | {r['params_m']:.2f} | "
                     f"{r['latency_ms']:.1f} | {r['speedup']:.2f}× | {r['ideal_speedup']:.2f}× |")
    atomic_write(out / "latency.md", lambda tmp: tmp.write_text("\n".join(lines) + "\n"))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
