"""A cheap screen of the pruning game's repairs (``MGGCConfig`` options beyond the paper), scored
on a validation split of the training data, never on the test images.

For each configuration and seed, the facades benchmark's MGGC method (:mod:`compressors`,
``mggc``: the game on the same teacher, neighbourhoods, steps and budget, then the fill to the
budget) makes a student, which is then

1. scored at once (its inherited weights, no training): mean L1 between its outputs and the
   teacher's on the held-out images — how much of the teacher the architecture keeps;
2. trained for ``--epochs`` epochs GAN-free, by L1 to the teacher's outputs alone (batch 1, Adam
   2e-4, β1 0.5), on the other training images, and scored again: L1 to the teacher and to the
   ground truth (pix2pix), and KID of the held-out outputs against all real targets.

The held-out images are the last 10 % of the training set (:func:`compressors.validation_split`);
they never train a student, but their teacher outputs are part of the game's data as for every
method (the game reads teacher outputs only, no ground truth). L1-norm filter pruning and the
paper's game at k = 0 are screened alike as reference rows, and so are the allocations of issue
14 (``l1_norm_fast*``, ``mggc_fast*``: the MACs spent where the teacher's OpenVINO latency table
says time is cheap, at floors of 0, ½ and ¾ of the uniform widths); with ``--speedup_estimate``
every student also gets the speed-up that table estimates (``speedup_est``; the table is measured
once per work folder, minutes, and needs the ``openvino`` extra). Alongside, the game's watch on D:
its real-vs-fake AUC over the first 50 steps and the last 500, and the fraction of D's channels
kept at the end.

Each (configuration, seed) writes ``benchmarks/results/game_screen/<task>/<config>-<budget>-s<seed>.json``
(skipped when present; ``--out`` another folder); the summary
``benchmarks/results/game_screen_<task>.{json,md}`` has the means and, over ≥ 2 seeds, the paired
per-seed difference of each configuration to the paper's game (``--reference`` another) with a
Student-t 95 % interval (:func:`mggc_plugin.metrics.seed_interval`). As the benchmark's units, a
unit depends on its seed alone and records the commit that made it; the units in
``game_screen/<task>/`` predate that (their games drew G's dropout from the process's RNG).

    python benchmarks/game_screen.py --threads 1 --seeds 2 &
    python benchmarks/game_screen.py --configs rec rec_window --reference rec --seed_list 0 1 2 \
        --out benchmarks/results/game_screen/pix2pix_window --threads 1
    python benchmarks/game_screen.py --configs rec mggc_fast mggc_fast50 mggc_fast75 l1_norm l1_norm_fast \
        l1_norm_fast50 l1_norm_fast75 --reference rec --seed_list 5 6 7 8 9 --speedup_estimate \
        --out benchmarks/results/game_screen/pix2pix_fast --threads 1
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mggc_plugin import metrics
from mggc_plugin.channels import ChannelGroups
from mggc_plugin.fileio import atomic_write, atomic_write_json
from mggc_plugin.game import history_path
from mggc_plugin.gan_compression import l1_to_teacher
from mggc_plugin.macs import count_macs

from compressors import METHODS, validation_split
from facades import RESULTS, SHARED, Schedule, game_checkpoint, prepare
from facades_setup import TASKS, translate

#: Configurations: a method of :data:`compressors.METHODS` and the game options it plays with.
#: ``gan_mode: "teacher"`` is the loss the teacher was trained with (``Context.teacher_gan_mode``).
CONFIGS: Dict[str, Dict[str, object]] = {
    "paper": {"method": "mggc_paper", "options": {}},
    "teacher_loss": {"method": "mggc", "options": {"gan_mode": "teacher"}},
    "own_source": {"method": "mggc", "options": {"gan_mode": "teacher", "real_source": "own"}},
    "rec": {"method": "mggc", "options": {"gan_mode": "teacher", "lambda_rec": 10.0}},
    "floor_D": {"method": "mggc", "options": {"gan_mode": "teacher", "min_keep_D": 0.5}},
    "window": {"method": "mggc", "options": {"gan_mode": "teacher", "final_window": 500}},
    "rec_window": {"method": "mggc", "options": {"gan_mode": "teacher", "lambda_rec": 10.0, "final_window": 500}},
    "combined": {"method": "mggc", "options": {"gan_mode": "teacher", "real_source": "own", "lambda_rec": 10.0,
                                                "min_keep_D": 0.5, "final_window": 500}},
    "rec_cost": {"method": "mggc", "options": {"gan_mode": "teacher", "lambda_rec": 10.0, "cost_lr": True}},
    "rec_stochastic": {"method": "mggc", "options": {"gan_mode": "teacher", "lambda_rec": 10.0,
                                                      "neighbor_samples": 3}},
    "rec_authors_gates": {"method": "mggc", "options": {"gan_mode": "teacher", "lambda_rec": 10.0,
                                                         "gates": "authors"}},
    "k0": {"method": "mggc_paper_k0", "options": {}},
    "l1_norm": {"method": "l1_norm", "options": {}},
    **{name: {"method": name, "options": METHODS[name].game_options}
       for name in ("l1_norm_fast", "l1_norm_fast50", "l1_norm_fast75", "mggc_fast", "mggc_fast50", "mggc_fast75")},
}
METRICS = ("l1_teacher_init", "l1_teacher", "l1_gt", "kid_val", "speedup_est", "d_auc_first50", "d_auc_last500",
           "kept_channels_D_final")


def _l1(G: nn.Module, x: torch.Tensor, y: torch.Tensor, device: str) -> float:
    """Mean L1 between G's outputs (per-image BatchNorm, no dropout) and ``y``, in [-1, 1] units."""
    return l1_to_teacher(x, y)(G.to(device))


def train_to_teacher(G: nn.Module, x: torch.Tensor, y_teacher: torch.Tensor, epochs: int, seed: int,
                     device: str) -> nn.Module:
    """The screen's GAN-free training: L1 to the teacher's outputs, batch 1, Adam(2e-4, β1 0.5).
    ``seed`` orders the images and seeds the global RNG that G's dropout draws from."""
    G = G.to(device).train()
    opt = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    for _ in range(epochs):
        for i in torch.randperm(len(x), generator=g).tolist():
            loss = F.l1_loss(G(x[i:i + 1].to(device)), y_teacher[i:i + 1].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return G.cpu()


def _speedup_estimate(run, G: nn.Module, x: torch.Tensor) -> float:
    """The teacher's OpenVINO latency over the student's, both estimated by the teacher's latency
    table (:func:`facades.teacher_latency_table`) from the student's widths: the speed side of the
    ``*_fast`` configurations, for every configuration alike."""
    table = run.ctx.latency("openvino")
    groups = ChannelGroups.discover(run.ctx.G_T.cpu(), x)
    gates = [torch.arange(n) < w for n, w in zip(groups.sizes, G.mggc_slim["widths"])]
    return table.full_ms / float(table(groups, gates))


def screen_unit(run, name: str, target: float, seed: int, epochs: int, out: Path,
                speedup_estimate: bool = False) -> Dict[str, object]:
    """Make, score, train and score one configuration's student (module docstring)."""
    path = out / f"{name}-{target:g}-s{seed}.json"
    if path.is_file():
        return json.loads(path.read_text())
    spec = CONFIGS[name]
    options = dict(spec["options"])  # type: ignore[call-overload]
    train_idx, val_idx = validation_split(len(run.ctx.game.x))
    x, y_t = run.ctx.game.x, run.ctx.game.y_center
    folder = run.work / "screen" / f"s{seed}" / f"{name}-{target:g}"
    folder.mkdir(parents=True, exist_ok=True)
    benchmark_game = game_checkpoint(run, str(spec["method"]), target, seed)
    if options == METHODS[str(spec["method"])].game_options and benchmark_game.is_file() \
            and not (folder / "game.pt").is_file():
        # The benchmark's own game of this method and seed is this configuration's: reuse it.
        for src, dst in ((benchmark_game, folder / "game.pt"),
                         (history_path(benchmark_game), history_path(folder / "game.pt"))):
            if src.is_file():
                shutil.copyfile(src, dst)
    t0 = time.perf_counter()
    ctx = replace(run.ctx, seed=seed, checkpoint=folder / "game.pt", fill=run.schedule.fill, game_options=options)
    student = METHODS[str(spec["method"])].build(ctx, target)
    t1 = time.perf_counter()
    record: Dict[str, object] = {
        "task": run.task_name, "config": name, "method": spec["method"], "budget": target, "seed": seed,
        "epochs": epochs, "options": student.info.get("game_options", options), "info": student.info,
        "macs_ratio": count_macs(student.G, (1, *x.shape[1:])).total / run.teacher_macs, **run.header}
    values = {"l1_teacher_init": _l1(student.G, x[val_idx], y_t[val_idx], run.ctx.device)}
    G = train_to_teacher(student.G, x[train_idx], y_t[train_idx], epochs, seed, run.ctx.device)
    values["l1_teacher"] = _l1(G, x[val_idx], y_t[val_idx], run.ctx.device)
    if not run.task.unpaired:
        y_gt = run.ctx.real
        assert y_gt is not None, "prepare() passes the paired ground truth as the context's real targets"
        values["l1_gt"] = _l1(G, x[val_idx], y_gt[val_idx], run.ctx.device)
    fake = metrics.inception_features(translate(G, x[val_idx], run.ctx.device), progress=False)
    values["kid_val"] = metrics.kid(run.data.ref_all, fake, progress=False).mean
    if speedup_estimate:
        values["speedup_est"] = _speedup_estimate(run, student.G, x[:1])
    for key in ("d_auc_first50", "d_auc_last500", "kept_channels_D_final"):
        if student.info.get(key) is not None:
            values[key] = float(student.info[key])  # type: ignore[arg-type]
    record.update(metrics=values, seconds={"make": t1 - t0, "train_and_score": time.perf_counter() - t1})
    atomic_write_json(path, record, indent=None)
    print(f"  {name} @ {target:.0%} seed {seed}: " + ", ".join(f"{k} {v:.4f}" for k, v in values.items()), flush=True)
    return record


def summarize(task: str, records: Sequence[Dict[str, object]], target: float, path_stem: Path,
              reference: str = "paper") -> str:
    """Means per configuration and paired differences to ``reference`` (t intervals, ≥ 2 seeds)."""
    by_config: Dict[str, Dict[int, Dict[str, float]]] = {}
    for r in records:
        if r["budget"] == target:
            by_config.setdefault(str(r["config"]), {})[int(r["seed"])] = r["metrics"]  # type: ignore[call-overload]
    rows: List[Dict[str, object]] = []
    ref = by_config.get(reference, {})
    for name, seeds in by_config.items():
        row: Dict[str, object] = {"config": name, "options": CONFIGS[name]["options"], "seeds": sorted(seeds)}
        for m in METRICS:
            vals = [seeds[s][m] for s in sorted(seeds) if m in seeds[s]]
            if not vals:
                continue
            row[m] = {"mean": float(np.mean(vals)), "values": vals}
            common = [s for s in sorted(seeds) if s in ref and m in ref[s] and m in seeds[s]]
            if name != reference and len(common) >= 2:
                d = metrics.seed_interval([seeds[s][m] - ref[s][m] for s in common])
                row[m]["vs_reference"] = {"mean_diff": d.mean_diff, "ci95": list(d.interval)}  # type: ignore[index]
        rows.append(row)
    atomic_write_json(path_stem.with_suffix(".json"),
                      {"task": task, "budget": target, "reference": reference, "rows": rows})
    shown = [m for m in METRICS if any(m in r for r in rows)]
    lines = [f"# Game screen: {task} at {target:.0%} of the teacher's MACs (validation split)", "",
             "| config | seeds | " + " | ".join(shown) + " |", "|---|---|" + "---|" * len(shown)]
    for r in rows:
        cells = []
        for m in shown:
            cell = r.get(m)
            if not isinstance(cell, dict):
                cells.append("")
                continue
            text = f"{cell['mean']:.4f}"
            if "vs_reference" in cell:
                lo, hi = cell["vs_reference"]["ci95"]
                text += f" (Δ {cell['vs_reference']['mean_diff']:+.4f} [{lo:+.4f}, {hi:+.4f}])"
            cells.append(text)
        lines.append(f"| {r['config']} | {len(r['seeds'])} | " + " | ".join(cells) + " |")
    lines += ["", f"Δ: the configuration minus `{reference}`, per seed, with a Student-t 95 % interval. "
              "l1_*: mean L1 on the held-out training images ([-1, 1] units; `_init` before training); "
              "kid_val: KID of the held-out outputs against all real targets; speedup_est: the teacher's OpenVINO "
              "latency over the student's, both by the teacher's latency table; d_auc: D's real-vs-fake AUC."]
    text = "\n".join(lines) + "\n"
    atomic_write(path_stem.with_suffix(".md"), lambda tmp: tmp.write_text(text))
    return text


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--task", choices=tuple(TASKS), default="pix2pix")
    p.add_argument("--target", type=float, default=0.10, help="MACs budget as a fraction of the teacher's")
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=tuple(CONFIGS))
    p.add_argument("--seeds", type=int, default=2, help="seeds 0..N-1")
    p.add_argument("--seed_list", type=int, nargs="+", help="these seeds instead of 0..N-1")
    p.add_argument("--reference", default="paper", choices=tuple(CONFIGS),
                   help="the configuration the summary's paired differences are taken to")
    p.add_argument("--out", help="folder of the units (default benchmarks/results/game_screen/<task>); the "
                                 "summary goes beside the parent folder as <parent>_<folder>.{json,md}")
    p.add_argument("--epochs", type=int, default=3, help="GAN-free training epochs before the second score")
    p.add_argument("--speedup_estimate", action="store_true",
                   help="also record the speed-up the teacher's OpenVINO latency table estimates for each student")
    p.add_argument("--threads", type=int)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--work", default="~/.cache/mggc-plugin/benchmarks")
    p.add_argument("--dataroot", default=str(SHARED / "datasets" / "facades"))
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    # prepare() is the benchmark's: the same teacher, data, neighbourhoods and work folder.
    args.teacher = args.upstream = args.teacher_epochs = args.units = args.swav_checkpoint = None
    run = prepare(args, Schedule())
    out = Path(args.out) if args.out else RESULTS / "game_screen" / args.task
    out.mkdir(parents=True, exist_ok=True)
    stem = out.parent.parent / f"{out.parent.name}_{out.name}"
    for seed in args.seed_list or range(args.seeds):
        for name in args.configs:
            screen_unit(run, name, args.target, seed, args.epochs, out, args.speedup_estimate)
            # The summary covers every configuration screened so far, not only this run's.
            records = [json.loads(f.read_text()) for f in sorted(out.glob("*.json"))]
            records = [r for r in records if r["config"] in CONFIGS]
            print(summarize(args.task, records, args.target, stem, args.reference), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
