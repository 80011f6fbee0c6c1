"""The facades benchmark's summary over seeds: one record per (task, budget, method, metric).

Reads the per-unit metric files that :mod:`facades` commits (``benchmarks/results/facades_units/
<task>/<method>-<budget>-s<seed>.json``), so a summary can be rebuilt on any machine from the
repository alone, and writes ``benchmarks/results/<task>_summary.{json,md}`` and
``<task>_pareto.png``, and ``<task>_mggc_pairs.json``: MGGC (the plugin's default game) minus
every other method at the same budget, paired per seed, for the primary metric, KID and teacher
fidelity (the goal of the game-repair issue: MGGC ahead of L1-norm pruning and of its own k = 0
and Baseline rows, Table 2's ordering), and ``<task>_cost.json``: what making each method's
students cost (games, supernets, searches, finetuning; :func:`costs`). Where a second teacher
was scored (``facades.py --teacher_only`` with another upstream run of the same recipe, units in
``--second_teacher``, default ``benchmarks/results/facades_units_teacher2``), ``<task>_teacher_spread.json``
and the Markdown add the teacher-vs-teacher spread of each metric and, per budget, whether MGGC
is *no worse* than L1-norm: the unfavourable end of the paired interval within that spread
(:func:`no_worse`, the issue's test at 25 %).

Each record has the shape the evaluation issue fixes::

    {"task", "budget", "method", "metric", "lower_is_better", "seeds", "mean", "std",
     "vs_l1_norm": {"mean_diff", "ci95"}}

``seeds`` lists the per-seed values in increasing seed order; ``std`` is the sample standard
deviation over seeds (``ddof=1``; 0 for one seed); ``vs_l1_norm`` is this method minus L1-norm
pruning, paired per seed over the seeds both have, with a Student-t 95 % interval
(:func:`mggc_plugin.metrics.seed_interval`; ``[NaN, NaN]`` from one seed; ``null`` on L1-norm's
own records). A difference is *resolved* when its interval
excludes 0.

    python benchmarks/facades_summary.py --task pix2pix
    python benchmarks/facades_summary.py --task pix2pix --units benchmarks/results/facades_units_ft20 \
        --out benchmarks/results/ft20          # another protocol's units, summarised apart
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from mggc_plugin.fileio import atomic_write, atomic_write_json
from mggc_plugin.metrics import seed_interval

RESULTS = Path(__file__).resolve().parent / "results"
UNITS = RESULTS / "facades_units"
SECOND_TEACHER = RESULTS / "facades_units_teacher2"

#: Every metric a unit may report, and whether lower is better.
LOWER_IS_BETTER: Dict[str, bool] = {
    "kid": True, "fid_all": True, "fid_test": True, "l1_gt": True, "psnr_gt": False, "l1_teacher": True,
    "psnr_teacher": False, "pixel_acc": False, "miou": False,
}
#: The metric each task is judged by: KID for photos (labels → photo), mIoU for label maps.
PRIMARY = {"pix2pix": "kid", "cycle_gan": "miou"}
REFERENCE_METHOD = "l1_norm"
#: The method the pairs table compares with every other one, and the metrics it compares.
MGGC = "mggc"
PAIR_METRICS = {"pix2pix": ("kid", "l1_teacher"), "cycle_gan": ("miou", "kid", "l1_teacher")}


def load_units(task: str, folder: Path = UNITS) -> List[Dict[str, object]]:
    """Every finished unit of ``task`` (a unit: one method at one budget with one seed)."""
    return [json.loads(p.read_text()) for p in sorted((folder / task).glob("*.json"))]


def _metrics_by_seed(units: Sequence[Dict[str, object]]) -> Dict[tuple, Dict[int, Dict[str, float]]]:
    """``{(task, budget, method): {seed: metrics}}``, ordered by task, budget (largest first), method."""
    by_key: Dict[tuple, Dict[int, Dict[str, float]]] = {}
    for u in units:
        by_key.setdefault((u["task"], u["budget"], u["method"]), {})[int(u["seed"])] = u["metrics"]
    return dict(sorted(by_key.items(), key=lambda kv: (kv[0][0], -kv[0][1], kv[0][2])))


def summarize(units: Sequence[Dict[str, object]]) -> List[Dict[str, object]]:
    """One record per (task, budget, method, metric) present in ``units`` (module docstring)."""
    by_key = _metrics_by_seed(units)
    records = []
    for (task, budget, method), per_seed in by_key.items():
        seeds = sorted(per_seed)
        reference = by_key.get((task, budget, REFERENCE_METHOD), {})
        for metric in LOWER_IS_BETTER:
            if not all(metric in per_seed[s] for s in seeds):
                continue
            values = [float(per_seed[s][metric]) for s in seeds]
            record: Dict[str, object] = {
                "task": task, "budget": budget, "method": method, "metric": metric,
                "lower_is_better": LOWER_IS_BETTER[metric], "seeds": values,
                "mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                "vs_l1_norm": None,
            }
            if method != REFERENCE_METHOD:
                record["vs_l1_norm"] = paired_difference(per_seed, reference, metric)
            records.append(record)
    return records


def paired_difference(a: Dict[int, Dict[str, float]], b: Dict[int, Dict[str, float]],
                      metric: str) -> Optional[Dict[str, object]]:
    """``a`` minus ``b`` (per-seed metrics) over the seeds both have: ``{"mean_diff", "ci95",
    "seeds"}`` with a Student-t 95 % interval (``[NaN, NaN]`` from one seed), None without a
    common seed."""
    paired = [s for s in sorted(a) if metric in a[s] and metric in b.get(s, {})]
    if not paired:
        return None
    diffs = [float(a[s][metric]) - float(b[s][metric]) for s in paired]
    interval = seed_interval(diffs) if len(diffs) > 1 else None
    return {"mean_diff": float(np.mean(diffs)), "ci95": list(interval.interval) if interval else [math.nan, math.nan],
            "seeds": paired}


def mggc_pairs(units: Sequence[Dict[str, object]]) -> List[Dict[str, object]]:
    """MGGC minus every other method at the same budget and task, paired per seed, for the
    task's :data:`PAIR_METRICS`: one record ``{"task", "budget", "method", "metric",
    "lower_is_better", "mggc_minus_method": paired_difference(...)}`` per comparison."""
    by_key = _metrics_by_seed(units)
    records = []
    for (task, budget, method), per_seed in by_key.items():
        ours = by_key.get((task, budget, MGGC))
        if method == MGGC or ours is None:
            continue
        for metric in PAIR_METRICS[task]:
            diff = paired_difference(ours, per_seed, metric)
            if diff is not None:
                records.append({"task": task, "budget": budget, "method": method, "metric": metric,
                                "lower_is_better": LOWER_IS_BETTER[metric], "mggc_minus_method": diff})
    return records


def teacher_spread(units: Sequence[Dict[str, object]], second: Sequence[Dict[str, object]]
                   ) -> Dict[str, Dict[str, float]]:
    """Per metric both teachers report: ``{"teacher", "second_teacher", "spread"}``, the spread
    being the absolute difference of two upstream runs of one recipe (two seeds); empty when a
    teacher unit is missing."""
    first = [u for u in units if u["method"] == "teacher"]
    other = [u for u in second if u["method"] == "teacher"]
    if not first or not other:
        return {}
    a, b = first[0]["metrics"], other[0]["metrics"]
    return {m: {"teacher": float(a[m]), "second_teacher": float(b[m]), "spread": abs(float(a[m]) - float(b[m]))}
            for m in LOWER_IS_BETTER if m in a and m in b}


def no_worse(vs: Dict[str, object], lower_is_better: bool, spread: float) -> Optional[bool]:
    """Whether the paired interval's unfavourable end (MGGC minus the method) lies within
    ``spread`` of 0: MGGC no worse than the method, up to what retraining the teacher moves
    the metric by. None from one seed."""
    lo, hi = vs["ci95"]
    if math.isnan(lo):
        return None
    return hi <= spread if lower_is_better else lo >= -spread


def spread_markdown(task: str, spread: Dict[str, Dict[str, float]], pairs: Sequence[Dict[str, object]]) -> str:
    """The spread per metric, and the no-worse test against L1-norm pruning per budget."""
    lines = ["", f"## Teacher-vs-teacher spread ({task})", "",
             "Two upstream runs of the teacher's recipe (the shared teacher and a second one), scored alike; "
             "'no worse' (the issue's test at 25 %): the unfavourable end of MGGC − L1-norm's paired 95 % interval "
             "lies within the spread.", "",
             "| metric | teacher | second teacher | spread |", "|---|---:|---:|---:|"]
    lines += [f"| {m} | {v['teacher']:.4g} | {v['second_teacher']:.4g} | {v['spread']:.4g} |"
              for m, v in spread.items()]
    lines += ["", "| budget | metric | MGGC − L1-norm | unfavourable end | within the spread |",
              "|---:|---|---|---:|---|"]
    for r in pairs:
        if r["method"] != REFERENCE_METHOD or r["metric"] not in spread:
            continue
        vs, lower = r["mggc_minus_method"], r["lower_is_better"]
        verdict = no_worse(vs, lower, spread[r["metric"]]["spread"])
        end = vs["ci95"][1] if lower else vs["ci95"][0]
        lines.append(f"| {r['budget']:.0%} | {r['metric']} | {_verdict(vs, lower)} | {end:+.4g} | "
                     f"{'—' if verdict is None else 'yes' if verdict else 'no'} |")
    return "\n".join(lines) + "\n"


def costs(units: Sequence[Dict[str, object]]) -> List[Dict[str, object]]:
    """What making each method's students cost, per (task, method), from the units' timings
    (wall seconds on one core): ``game_s_per_step`` and ``game_s`` (a game's steps at that rate,
    one game per budget and seed; from ``info.game_timing``, the steps a process played itself),
    ``supernet_s`` (one supernet per seed serves every budget; mean over seeds) and ``search_s``
    (per budget), ``make_s`` (the make step of methods without either, e.g. L1-norm ranking),
    ``finetune_s`` (median per unit: one unit run at low priority beside other processes would
    otherwise move a mean by minutes). Absent keys: nothing measured."""
    by_method: Dict[tuple, List[Dict[str, object]]] = {}
    for u in units:
        if u["method"] != "teacher":
            by_method.setdefault((u["task"], u["method"]), []).append(u)
    records = []
    for (task, method), group in sorted(by_method.items()):
        info = [u.get("info") or {} for u in group]
        record: Dict[str, object] = {"task": task, "method": method, "units": len(group)}
        timed = [i["game_timing"] for i in info if i.get("game_timing", {}).get("steps")]
        if timed:
            rate = sum(t["seconds"] for t in timed) / sum(t["steps"] for t in timed)
            record.update(game_s_per_step=rate, game_steps=int(info[0]["steps"]),
                          game_s=rate * int(info[0]["steps"]), timed_steps=sum(t["steps"] for t in timed))
        supernets = {int(u["seed"]): i["supernet_seconds"] for u, i in zip(group, info) if "supernet_seconds" in i}
        if supernets:
            record.update(supernet_s=float(np.mean(list(supernets.values()))),
                          search_s=float(np.mean([i["search_seconds"] for i in info])))
        if not any("steps" in i or "supernet_seconds" in i for i in info):  # neither a game nor a supernet
            record["make_s"] = float(np.mean([u["seconds"]["compress"] for u in group]))
        record["finetune_s"] = float(np.median([u["seconds"]["finetune"] for u in group]))
        records.append(record)
    return records


def costs_markdown(task: str, records: Sequence[Dict[str, object]]) -> str:
    """The :func:`costs` table in minutes."""
    def minutes(r: Dict[str, object], key: str) -> str:
        return f"{float(r[key]) / 60:.1f}" if key in r else "—"

    lines = ["", f"## What each student cost to make ({task})", "",
             "Wall minutes on one core of the machine each unit ran on (the benchmark runs one process per core, so "
             "the other core was busy). Units from different sessions, and so possibly different machines, are "
             "pooled, so compare methods whose units ran together. A game's cost is its steps at the per-step rate "
             "of the steps its units' processes played "
             "(games resumed from an earlier run time only their remainder); a supernet serves both budgets of a "
             "seed and is searched once per budget. '—': not measured (units from before the timings).", "",
             "| method | units | game per budget | supernet per seed | search per budget | other making | "
             "finetune per unit (median) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in records:
        if r["task"] != task:
            continue
        game = f"{minutes(r, 'game_s')} ({r['game_steps']} steps)" if "game_s" in r else "—"
        lines.append(f"| {r['method']} | {r['units']} | {game} | {minutes(r, 'supernet_s')} | {minutes(r, 'search_s')} "
                     f"| {minutes(r, 'make_s')} | {minutes(r, 'finetune_s')} |")
    return "\n".join(lines) + "\n"


def _verdict(vs: Optional[Dict[str, object]], lower_is_better: bool) -> str:
    """A paired difference as ``mean [lo, hi] better|worse|unresolved`` (the first operand's
    side: 'better' only where the interval excludes 0)."""
    if not vs:
        return "—"
    lo, hi = vs["ci95"]
    if math.isnan(lo):
        return f"{vs['mean_diff']:+.4g} (1 seed)"
    better = (hi < 0) if lower_is_better else (lo > 0)
    worse = (lo > 0) if lower_is_better else (hi < 0)
    word = "better" if better else "worse" if worse else "unresolved"
    return f"{vs['mean_diff']:+.4g} [{lo:+.4g}, {hi:+.4g}] {word}"


def pairs_markdown(task: str, pairs: Sequence[Dict[str, object]]) -> str:
    """The :func:`mggc_pairs` table: one row per (budget, method), one column per metric."""
    metrics = PAIR_METRICS[task]
    cells: Dict[tuple, Dict[str, Dict[str, object]]] = {}
    for r in pairs:
        cells.setdefault((r["budget"], r["method"]), {})[r["metric"]] = r
    lines = ["", f"## MGGC against every method ({task})", "",
             "MGGC (the plugin's default game) minus the method, paired per seed over the seeds both have (n), "
             "mean and Student-t 95 % interval; 'better' means MGGC is better.", "",
             "| budget | method | n | " + " | ".join(f"{m} {'↓' if LOWER_IS_BETTER[m] else '↑'}" for m in metrics)
             + " |", "|---:|---|---:|" + "---|" * len(metrics)]
    for (budget, method), by_metric in cells.items():
        n = max(len(r["mggc_minus_method"]["seeds"]) for r in by_metric.values())
        row = [f"{budget:.0%}", method, str(n)]
        row += [_verdict(by_metric[m]["mggc_minus_method"], LOWER_IS_BETTER[m]) if m in by_metric else "—"
                for m in metrics]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def markdown(task: str, records: Sequence[Dict[str, object]], units: Sequence[Dict[str, object]],
             metrics: Optional[Sequence[str]] = None) -> str:
    """Mean ± std over seeds per (budget, method) for ``metrics``, and the primary metric's
    difference to L1-norm pruning with its 95 % interval."""
    primary = PRIMARY[task]
    metrics = list(metrics or [m for m in LOWER_IS_BETTER if any(r["metric"] == m for r in records)])
    macs = {}
    for u in units:
        macs.setdefault((u["budget"], u["method"]), []).append(u["macs_ratio"])
    cells: Dict[tuple, Dict[str, Dict[str, object]]] = {}
    for r in records:
        cells.setdefault((r["budget"], r["method"]), {})[r["metric"]] = r
    arrows = {m: "↓" if LOWER_IS_BETTER[m] else "↑" for m in metrics}
    lines = [f"# Facades {task}: summary over seeds", "",
             f"Mean ± std over seeds (n = number of seeds). Primary metric: **{primary}**. "
             f"Last column: {primary} of the method minus L1-norm pruning's, paired per seed, mean and Student-t "
             "95 % interval; 'better'/'worse' only where the interval excludes 0.", "",
             "| budget | method | n | MACs kept | " + " | ".join(f"{m} {arrows[m]}" for m in metrics)
             + f" | {primary} − L1-norm |",
             "|---:|---|---:|---:|" + "---:|" * len(metrics) + "---|"]
    for (budget, method), by_metric in cells.items():
        first = next(iter(by_metric.values()))
        row = [f"{budget:.0%}", method, str(len(first["seeds"])), f"{np.mean(macs[(budget, method)]):.1%}"]
        for m in metrics:
            r = by_metric.get(m)
            row.append("—" if r is None else f"{r['mean']:.4g} ± {r['std']:.2g}")
        row.append(_verdict(by_metric[primary]["vs_l1_norm"], LOWER_IS_BETTER[primary]) if primary in by_metric
                   else "—")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def label_floor_markdown(units: Sequence[Dict[str, object]]) -> str:
    """A paragraph on the teacher's label maps against the majority-class floor (the teacher unit of
    a label task holds both, ``facades.score``), with a warning when the teacher does not clear it;
    empty for tasks without label maps."""
    teacher = next((u["metrics"] for u in units if u["method"] == "teacher"), {})
    if "majority_pixel_acc" not in teacher:
        return ""
    below = teacher["pixel_acc"] <= teacher["majority_pixel_acc"]
    return ("\n" + f"The teacher's label maps: pixel accuracy {teacher['pixel_acc']:.3f} "
            f"(after the best renaming of its classes {teacher['matched_pixel_acc']:.3f}), mIoU {teacher['miou']:.4f}; "
            f"the majority class everywhere scores {teacher['majority_pixel_acc']:.3f} and mIoU "
            f"{teacher['majority_miou']:.4f}."
            + (" **The teacher is below that floor: pixel accuracy and mIoU cannot rank its students.**"
               if below else "") + "\n")


def plot_pareto(task: str, records: Sequence[Dict[str, object]], units: Sequence[Dict[str, object]],
                path: Path) -> None:
    """The primary metric against the MACs kept, one marker per (method, budget), error bars
    = std over seeds: the methods' Pareto picture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    primary = PRIMARY[task]
    macs: Dict[tuple, List[float]] = {}
    for u in units:
        macs.setdefault((u["budget"], u["method"]), []).append(u["macs_ratio"])
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    # tab20's ten dark shades, then its ten light ones: the default 10-colour cycle would give two
    # of more than ten methods one colour
    tab20 = plt.get_cmap("tab20").colors
    colours = tab20[0::2] + tab20[1::2]
    for i, method in enumerate(sorted({r["method"] for r in records})):
        rows = sorted((r for r in records if r["method"] == method and r["metric"] == primary),
                      key=lambda r: r["budget"])
        if not rows:
            continue
        xs = [100 * float(np.mean(macs[(r["budget"], method)])) for r in rows]
        style = ({"marker": "*", "markersize": 11, "color": "black"} if method == "teacher"
                 else {"marker": "o", "color": colours[i % len(colours)]})
        ax.errorbar(xs, [r["mean"] for r in rows], yerr=[r["std"] for r in rows], capsize=3, label=method,
                    **style)
    ax.set_xscale("log")  # the budgets (5, 10, 25 %) would crowd the left edge beside the teacher's 100 %
    ax.set_xlabel("MACs kept (% of the teacher's, log scale)")
    ax.set_ylabel(f"{primary} ({'lower' if LOWER_IS_BETTER[primary] else 'higher'} is better)")
    ax.set_title(f"Facades {task}: {primary} over seeds (mean ± std)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    plt.close(fig)


def write_summary(task: str, units_folder: Path = UNITS, out: Path = RESULTS,
                  second_teacher: Optional[Path] = None) -> Optional[Path]:
    """Writes ``<task>_summary.{json,md}`` and ``<task>_pareto.png`` from the finished units (and
    ``<task>_teacher_spread.json`` when ``second_teacher`` holds a second teacher's unit);
    returns the Markdown path, or None when no unit is finished."""
    units = load_units(task, units_folder)
    if not units:
        return None
    records = summarize(units)
    atomic_write_json(out / f"{task}_summary.json", records)
    pairs = mggc_pairs(units)
    atomic_write_json(out / f"{task}_mggc_pairs.json", pairs)
    cost = costs(units)
    atomic_write_json(out / f"{task}_cost.json", cost)
    md = markdown(task, records, units) + label_floor_markdown(units) + (pairs_markdown(task, pairs) if pairs else "")
    spread = teacher_spread(units, load_units(task, second_teacher)) if second_teacher else {}
    if spread:
        atomic_write_json(out / f"{task}_teacher_spread.json", spread)
        md += spread_markdown(task, spread, pairs)
    md += costs_markdown(task, cost)
    atomic_write(out / f"{task}_summary.md", lambda tmp: tmp.write_text(md))
    plot_pareto(task, records, units, out / f"{task}_pareto.png")
    return out / f"{task}_summary.md"


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=tuple(PRIMARY), nargs="+", default=list(PRIMARY))
    p.add_argument("--units", type=Path, default=UNITS, help="folder of the per-unit metrics (facades.py --units)")
    p.add_argument("--out", type=Path, help="where the summaries go (default: the units folder's parent)")
    p.add_argument("--second_teacher", type=Path, default=SECOND_TEACHER,
                   help="units of a second teacher (facades.py --teacher_only), for the teacher-vs-teacher spread "
                        f"(default {SECOND_TEACHER.relative_to(RESULTS.parent.parent)}; skipped where it has none)")
    args = p.parse_args(argv)
    out = args.out or args.units.parent
    out.mkdir(parents=True, exist_ok=True)
    for task in args.task:
        path = write_summary(task, args.units, out, args.second_teacher)
        print(path.read_text() if path else f"{task}: no finished units under {args.units / task}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
