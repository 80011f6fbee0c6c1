"""Does a D'_y with several stochastic teacher outputs per source give aligned real pairs?

On the facades pix2pix teacher (:func:`facades.prepare`: the benchmark's teacher, data and
neighbourhoods), D'_y is rebuilt with ``--samples`` dropout draws per training source
(:func:`mggc_plugin.neighborhoods.stochastic.stochastic_outputs`), embedded by the same frozen
Inception encoder and given each output's k = 5 nearest neighbours (Eq. 1). Reported:

- the fraction of neighbours drawn from their centre's own source (0 by construction with one
  output per source);
- D's real-vs-fake AUC over the first 50 steps of the game (the teacher's GAN loss, 10 % budget,
  seed 0), with the default D'_y and the stochastic one, D's real neighbour paired with the
  centre's source x_i (Eq. 2) or with its own (``real_source="own"``). Near step 0 the pruned G is
  still close to the teacher, so an informative-but-fair D should sit near 0.5; well above 0.5
  it separates the pairs by something else than the generator (the misalignment of defect 1).

Writes ``benchmarks/results/stochastic_neighbors.{json,md}``.

    python benchmarks/stochastic_neighbors.py --threads 1
"""
from __future__ import annotations

import argparse
import sys
from typing import Dict, List, Optional, Sequence

import torch

from mggc_plugin.fileio import atomic_write, atomic_write_json
from mggc_plugin.game import neighbor_batches, play
from mggc_plugin.neighborhoods.stochastic import same_source_fraction
from mggc_plugin.pruner import MGGCConfig, MGGCPruner

from facades import RESULTS, SHARED, Schedule, prepare, stochastic_game


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--samples", type=int, default=3, help="dropout draws per training source")
    p.add_argument("--steps", type=int, default=50, help="game steps whose D AUC is averaged")
    p.add_argument("--threads", type=int)
    p.add_argument("--work", default="~/.cache/mggc-plugin/benchmarks")
    p.add_argument("--dataroot", default=str(SHARED / "datasets" / "facades"))
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.task, args.device = "pix2pix", "cpu"
    args.teacher = args.upstream = args.teacher_epochs = args.units = args.swav_checkpoint = None
    run = prepare(args, Schedule())
    ctx = run.ctx
    gan_mode = ctx.teacher_gan_mode or ctx.gan_mode

    game = stochastic_game(ctx, run.work, 5, args.samples)
    x_all, y_all, neighbors = game.x, game.y_center, game.neighbors
    fraction = same_source_fraction(neighbors, args.samples)
    print(f"same-source neighbours: {fraction:.3f}", flush=True)

    rows: List[Dict[str, object]] = []
    for name, (x, y, nb) in {"one output per source": (ctx.game.x, ctx.game.y_center, ctx.game.neighbors),
                             f"{args.samples} dropout draws per source": (x_all, y_all, neighbors)}.items():
        for real_source in ("center", "own"):
            config = MGGCConfig(target_macs=0.1, gan_mode=gan_mode, conditional_D=True, real_source=real_source)
            pruner = MGGCPruner(ctx.G_T, ctx.D_T, ctx.example_x(), config)
            history = play(pruner, neighbor_batches(x, y, nb, 1, seed=0), args.steps, progress=False)
            auc = sum(h["d_auc"] for h in history) / len(history)
            rows.append({"d_prime_y": name, "real_source": real_source, "d_auc": auc,
                         "same_source_fraction": fraction if nb is neighbors else 0.0})
            print(rows[-1], flush=True)
    record = {"samples": args.samples, "steps": args.steps, "gan_mode": gan_mode, "rows": rows}
    atomic_write_json(RESULTS / "stochastic_neighbors.json", record)
    lines = [f"# Stochastic D'_y on the facades pix2pix teacher ({args.samples} dropout draws per source)", "",
             f"D's real-vs-fake AUC, mean of the first {args.steps} game steps (10 % budget, {gan_mode} loss, seed 0)",
             "", "| D'_y | real neighbour paired with | same-source neighbours | D AUC |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['d_prime_y']} | {'x_i (Eq. 2)' if r['real_source'] == 'center' else 'its own x_j'} | "
                     f"{r['same_source_fraction']:.3f} | {r['d_auc']:.3f} |")
    text = "\n".join(lines) + "\n"
    atomic_write(RESULTS / "stochastic_neighbors.md", lambda tmp: tmp.write_text(text))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
