"""A latency budget against a MAC budget: does the latency table predict whole students, and do
students cut to a latency reach it where students cut to the same fraction of MACs do not.

For each architecture (CycleGAN's ``resnet_9blocks`` with InstanceNorm, pix2pix's ``unet_256``
with BatchNorm, both ngf 64 at 256², as ``speed_gap.py``) on ``--runtime`` with one thread:

1. the generator's latency table (:func:`mggc_plugin.latency_table.measure`) and its fit to
   uniformly slimmed networks;
2. for each keep rate r, two students whose widths the budget term alone chooses: gen_G trained
   on ``λ1·R`` (Eq. 5) without D or images, as far as the budget alone sends it (the game adds
   the quality signal on top, which this leaves out so that the two budgets are compared
   alone), ``--steps`` steps, then :meth:`~mggc_plugin.MGGCPruner.finalize` with
   ``round_to`` 8 and the refill:

   * ``macs``: ``target_macs = r``, the budget of today's ``--mggc_target_macs``;
   * ``latency``: ``target_latency_ms = r ×`` the teacher's latency measured with the table
     (:attr:`~mggc_plugin.latency_table.LatencyTable.full_ms`), i.e. the speed-up a MAC ratio of
     r promises, asked of the latency directly;

3. the teacher and both students timed interleaved (:func:`mggc_plugin.deploy.bench.bench`,
   BatchNorm folded as deployed), each beside its MACs, the table's estimate and the ideal.

Writes ``benchmarks/results/latency_budget.{json,md}``, the machine named. Needs a quiet core.

    python benchmarks/latency_budget.py
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch

from mggc_plugin import networks
from mggc_plugin.channels import ChannelGroups
from mggc_plugin.deploy.bench import RUNTIMES, TEACHER, bench, deployable, machine
from mggc_plugin.fileio import atomic_write_json, write_record
from mggc_plugin.latency_table import LatencyTable, measure
from mggc_plugin.pruner import MGGCConfig, MGGCPruner
from mggc_plugin.slim import slim, slim_info

RESULTS = Path(__file__).resolve().parent / "results"
ARCHS = {"resnet_9blocks": "instance", "unet_256": "batch"}


def budget_student(G: torch.nn.Module, groups: ChannelGroups, table: LatencyTable, config: MGGCConfig,
                   steps: int) -> torch.nn.Module:
    """The student whose widths gen_G picks under the budget term alone (module docstring)."""
    x = torch.zeros(groups.input_shape)
    D = networks.define_D(3, 8, "basic", norm="instance")
    p = MGGCPruner(G, D, x, config, groups_G=groups, latency=table)
    for _ in range(steps):
        p.budget_step()
    return slim(G, groups, p.finalize(round_to=8).v_G).eval()


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--archs", nargs="+", default=list(ARCHS), choices=tuple(ARCHS))
    p.add_argument("--rates", nargs="+", type=float, default=[0.25, 0.10])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--runtime", default="eager", choices=RUNTIMES)
    p.add_argument("--steps", type=int, default=1500, help="steps of gen_G on the budget term")
    p.add_argument("--runs", type=int, default=8, help="interleaved rounds of the final timing")
    p.add_argument("--table_runs", type=int, default=5, help="timed passes per width of the table")
    p.add_argument("--out", default=str(RESULTS / "latency_budget"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    shape = (1, 3, args.size, args.size)
    record: Dict[str, Any] = {"machine": machine(), "runtime": args.runtime, "size": args.size, "ngf": args.ngf,
                              "steps": args.steps, "archs": {}}
    lines = [f"# Latency budget against MAC budget — {record['machine']['cpu']}, {args.runtime}, 1 thread, "
             f"batch 1, {args.size}², median of {args.runs} interleaved rounds", "",
             "Widths chosen by the budget term alone (no game). `estimate`: the latency table's; `speed-up / (1/r)`: "
             "the measured speed-up over the teacher against the one the keep rate r promises.", "",
             "| arch | r | budget | MACs kept | estimate ms | measured ms | estimate error | speed-up | "
             "speed-up / (1/r) |", "|---|---|---|---|---|---|---|---|---|"]
    unreachable: List[str] = []
    with tempfile.TemporaryDirectory(prefix="mggc-latency-budget-") as work:
        for arch in args.archs:
            torch.manual_seed(0)
            G = networks.define_G(3, 3, args.ngf, arch, norm=ARCHS[arch]).eval()
            groups = ChannelGroups.discover(G, torch.zeros(shape))
            print(f"{arch}: measuring the latency table", flush=True)
            table = measure(G, groups, args.runtime, 1, runs=args.table_runs, work=Path(work) / f"{arch}-table")
            full_ms = table.span(groups)[1]
            nets: Dict[str, torch.nn.Module] = {TEACHER: G}
            estimates: Dict[str, float] = {TEACHER: full_ms}
            for rate in args.rates:
                configs = {"macs": MGGCConfig(target_macs=rate, refill=True),
                           "latency": MGGCConfig(target_latency_ms=rate * table.full_ms, refill=True)}
                for budget, config in configs.items():
                    name = f"{budget}{rate * 100:g}"
                    try:
                        nets[name] = budget_student(G, groups, table, config, args.steps)
                    except ValueError as err:  # a latency below what no gate can remove
                        unreachable.append(f"- {arch} {name}: {err}")
                        continue
                    widths = slim_info(nets[name])["widths"]
                    estimates[name] = float(table(groups, [(torch.arange(n) < w).float()
                                                           for n, w in zip(groups.sizes, widths)]))
            models = [deployable(name, net, shape) for name, net in nets.items()]
            (Path(work) / arch).mkdir()
            result = bench(models, shape, Path(work) / arch, [args.runtime], batches=(1,), threads=(1,),
                           runs=args.runs, warmup=1, log=lambda s: print(s, flush=True))
            rows = {row["model"]: row for row in result["rows"]}
            students: List[Dict[str, Any]] = []
            for name, row in rows.items():
                if name == TEACHER:
                    continue
                budget, rate = ("macs", name[4:]) if name.startswith("macs") else ("latency", name[7:])
                r = float(rate) / 100
                entry = {"student": name, "budget": budget, "rate": r,
                         "macs_kept": row["gmacs"] / rows[TEACHER]["gmacs"],
                         "estimate_ms": estimates[name], "measured_ms": row["median_ms"], "speedup": row["speedup"],
                         "speedup_over_promise": row["speedup"] * r,
                         "widths": slim_info(nets[name])["widths"]}
                students.append(entry)
                error = entry["estimate_ms"] / entry["measured_ms"] - 1
                lines.append(f"| {arch} | {r:.0%} | {budget} | {entry['macs_kept']:.1%} | {entry['estimate_ms']:.1f} "
                             f"| {entry['measured_ms']:.1f} | {error:+.1%} | {entry['speedup']:.2f}× | "
                             f"{entry['speedup_over_promise']:.2f} |")
            teacher = rows[TEACHER]
            lines.append(f"| {arch} | 100% | teacher | 100.0% | {full_ms:.1f} | {teacher['median_ms']:.1f} | "
                         f"{full_ms / teacher['median_ms'] - 1:+.1%} | 1.00× | 1.00 |")
            record["archs"][arch] = {"table": table.to_dict(), "bench": result, "students": students}
            atomic_write_json(Path(args.out).with_suffix(".json"), record)
    fits = ["", "Table fit on uniformly slimmed networks (measured / estimated ms):", ""]
    for arch, data in record["archs"].items():
        fit = ", ".join(f"{row['fraction']:g}: {row['measured_ms']:.1f} / {row['estimated_ms']:.1f}"
                        for row in data["table"]["fit"])
        fits.append(f"- {arch}: {fit}")
    if unreachable:
        fits += ["", "Budgets not reached:", "", *unreachable]
    record["unreachable"] = unreachable
    write_record(args.out, record, "\n".join(lines + fits) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
