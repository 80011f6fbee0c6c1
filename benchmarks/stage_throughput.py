"""Throughput of every MGGC stage on one device, the game's scaling over processes, and from these
the estimate for a horse2zebra-sized teacher.

Stages, on the teacher of a CycleGAN as upstream trains it (``resnet_9blocks``, ngf 64, instance
norm; ``basic`` D, ndf 64) at ``--size``² (default 256):

- ``teacher outputs``: D'_y, one image per forward pass (``build_teacher_outputs`` with per-image
  statistics), images/s;
- ``embeddings``: E' with the FID Inception network (the default encoder), batches of 32, images/s;
- ``game step``: :meth:`MGGCPruner.step` (the ``mggc`` row, lsgan), batch 1, steps/s;
- ``finetune step``: :meth:`Finetuner.step` on the L1-norm-pruned G at ``--budget`` of the MACs
  (MGGC's student has the same MACs; its widths differ), batch 1, steps/s.

``--ranks 1 2``: the game with a global batch of ``max(ranks)`` images, played by one process
and by N processes (gloo on the CPU, NCCL on CUDA) each on its share; the ratio is the measured
speed-up of :mod:`mggc_plugin.distributed` (communication included) on this machine.

The estimate: ``--images`` sources (1,067: horse2zebra's trainA), ``--teacher_epochs`` (200, as
upstream's default 100 + 100), the game for 10 % of the teacher's iterations and finetuning for
the rest (``--mggc_phase all``), batch 1; on P devices the neighbourhood stages and the steps
divide by P (the ideal, labelled as such: the measured 2-process efficiency is reported beside it).

    python benchmarks/stage_throughput.py [--device cpu|cuda] [--threads 1] [--ranks 1 2]

Writes ``benchmarks/results/stage_throughput_<device>.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mggc_plugin import distributed, networks, slim
from mggc_plugin.baselines import masks_to_budget
from mggc_plugin.channels import ChannelGroups
from mggc_plugin.deploy.bench import machine
from mggc_plugin.device import resolve_device, synchronize
from mggc_plugin.fileio import atomic_write, atomic_write_json
from mggc_plugin.finetune import FinetuneConfig, Finetuner
from mggc_plugin.pruner import MGGCConfig, MGGCPruner

RESULTS = Path(__file__).resolve().parent / "results"


def _rate(fn: Callable[[], Any], device: torch.device, items: int, warmup: int, runs: int) -> float:
    """Items per second of ``fn`` (median of ``runs`` timed calls after ``warmup``)."""
    times = []
    for i in range(warmup + runs):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    times.sort()
    return items / times[len(times) // 2]


def _nets(device: torch.device):
    torch.manual_seed(0)
    G = networks.define_G(3, 3, 64, "resnet_9blocks", norm="instance").to(device)
    D = networks.define_D(3, 64, "basic", norm="instance").to(device)
    return G, D


def stage_rates(device: torch.device, size: int, budget: float, runs: int) -> Dict[str, float]:
    G, D = _nets(device)
    x = torch.randn(1, 3, size, size, device=device)
    rates: Dict[str, float] = {}
    with torch.no_grad():
        rates["teacher outputs (img/s)"] = _rate(lambda: G.eval()(x), device, 1, 1, runs)
    try:
        from mggc_plugin.encoders.inception import InceptionEncoder

        enc = InceptionEncoder(device)
        batch = torch.rand(32, 3, size, size) * 2 - 1
        rates["embeddings (img/s)"] = _rate(lambda: enc.embed(batch), device, 32, 1, max(2, runs // 2))
    except ImportError as err:  # the eval extra brings the FID Inception network
        print(f"embeddings skipped: {err}")
    y = G.eval()(x).detach()
    pruner = MGGCPruner(G, D, x, MGGCConfig(target_macs=budget, gan_mode="lsgan"))
    rates["game step (steps/s)"] = _rate(lambda: pruner.step(x, y, y), device, 1, 1, runs)
    groups = ChannelGroups.discover(G, x)
    student = slim(G, groups, masks_to_budget(groups, budget), round_to=8).to(device)
    tuner = Finetuner(student, networks.define_D(3, 64, "basic", norm="instance").to(device),
                      FinetuneConfig(gan_mode="lsgan", conditional_D=False))
    rates["finetune step (steps/s)"] = _rate(lambda: tuner.step(x, y, y), device, 1, 1, runs)
    return rates


def _game_worker(rank: int, world: int, folder: str, size: int, batch: int, runs: int, threads: int) -> None:
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=world)
    torch.set_num_threads(threads)
    rate = game_rate(torch.device("cpu"), size, batch, runs)
    if distributed.is_main():
        Path(folder, "rate").write_text(str(rate))
    dist.destroy_process_group()


def game_rate(device: torch.device, size: int, batch: int, runs: int) -> float:
    """Game steps per second on a global batch of ``batch``, this process playing its share."""
    G, D = _nets(device)
    x = torch.randn(batch, 3, size, size, device=device)
    with torch.no_grad():
        y = G.eval()(x)
    pruner = MGGCPruner(G, D, x, MGGCConfig(target_macs=0.1, gan_mode="lsgan"))
    xs, ys = distributed.shard(x), distributed.shard(y)
    return _rate(lambda: pruner.step(xs, ys, ys), device, 1, 1, runs)


def scaling(ranks: List[int], size: int, runs: int, threads: int) -> Dict[str, float]:
    batch = max(ranks)
    out = {}
    for n in ranks:
        if n == 1:
            out["1"] = game_rate(torch.device("cpu"), size, batch, runs)
            continue
        with tempfile.TemporaryDirectory() as folder:
            mp.spawn(_game_worker, args=(n, folder, size, batch, runs, threads), nprocs=n, join=True)
            out[str(n)] = float(Path(folder, "rate").read_text())
    return out


def estimate(rates: Dict[str, float], images: int, epochs: int, devices: int) -> Dict[str, float]:
    """Hours per stage on ``devices`` devices, each stage divided ideally among them."""
    iterations = images * epochs
    game, finetune = iterations // 10, iterations - iterations // 10
    hours = {
        "neighbourhoods": (images / rates["teacher outputs (img/s)"]
                           + images / rates.get("embeddings (img/s)", float("inf"))) / 3600 / devices,
        "game": game / rates["game step (steps/s)"] / 3600 / devices,
        "finetune": finetune / rates["finetune step (steps/s)"] / 3600 / devices,
    }
    hours["total"] = sum(hours.values())
    return hours


def markdown(result: Dict[str, Any]) -> str:
    m = result["machine"]
    lines = [f"# Stage throughput on {m.get('gpu') or m['cpu']} ({result['device']}, "
             f"{result['threads']} thread(s))", "",
             f"resnet_9blocks ngf 64 + basic D ndf 64, {result['size']}², batch 1; finetune student at "
             f"{result['budget']:.0%} of the MACs.", "", "| stage | rate |", "|---|---|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in result["rates"].items()]
    if result.get("scaling"):
        s = result["scaling"]
        lines += ["", f"Game on a global batch of {max(map(int, s))} images, steps/s by number of processes "
                      f"(this machine, {result['device']}):", "", "| processes | steps/s | speed-up |", "|---|---|---|"]
        lines += [f"| {n} | {r:.3f} | {r / s['1']:.2f}× |" for n, r in s.items()]
    lines += ["", f"**Estimate** (not measured end to end): {result['images']} sources, {result['teacher_epochs']} "
                  f"teacher epochs, batch 1; each stage divided ideally among the devices.", "",
              "| devices | neighbourhoods (h) | game (h) | finetune (h) | total (h) |", "|---|---|---|---|---|"]
    for n, h in result["estimate"].items():
        lines.append(f"| {n} | {h['neighbourhoods']:.2f} | {h['game']:.1f} | {h['finetune']:.1f} | {h['total']:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--budget", type=float, default=0.1)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--ranks", type=int, nargs="*", default=[1, 2], help="processes for the game's scaling (CPU)")
    p.add_argument("--images", type=int, default=1067)
    p.add_argument("--teacher_epochs", type=int, default=200)
    p.add_argument("--devices", type=int, nargs="+", default=[1, 8])
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    rates = stage_rates(device, args.size, args.budget, args.runs)
    print(rates)
    result: Dict[str, Any] = {
        "machine": machine(device), "device": str(device), "threads": args.threads, "size": args.size,
        "budget": args.budget, "rates": rates, "images": args.images, "teacher_epochs": args.teacher_epochs,
        "scaling": scaling(args.ranks, args.size, args.runs, args.threads) if device.type == "cpu" and args.ranks
        else {},
        "estimate": {str(n): estimate(rates, args.images, args.teacher_epochs, n) for n in args.devices},
    }
    stem = RESULTS / f"stage_throughput_{device.type}"
    atomic_write_json(stem.with_suffix(".json"), result)
    atomic_write(stem.with_suffix(".md"), lambda tmp: tmp.write_text(markdown(result)))
    print(markdown(result))


if __name__ == "__main__":
    main()
