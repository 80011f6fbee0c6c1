"""MGGC against baselines at equal MACs on CMP Facades, over seeds, with intervals.

Tasks and teachers: :mod:`facades_setup` (pix2pix labels → photo at 128²; CycleGAN photo →
labels at 64²; both teachers trained by upstream). Methods: :data:`compressors.METHODS` (MGGC;
MGGC with the repaired game; MGGC with k = 0; Table 2's Baseline; L1-norm filter pruning; from
scratch at uniform widths; GAN Compression; AutoGAN-Distiller), the default run the first six
(``--methods`` adds the two supernet methods, whose supernets train as many steps as a game).

The protocol (the evaluation issue's), for every (budget, method, seed) — a *unit*:

1. **make** the student pair at the budget (default 10 % and 5 % of the teacher's MACs; the
   games run 10 % of the teacher's training iterations, the paper's budget), then fill it up to
   the budget (:func:`mggc_plugin.baselines.fill_to_budget`), so every student lands within
   95–100 % of its budget;
2. **finetune** with the same objective and schedule for every method
   (:func:`mggc_plugin.finetune.fit`: pix2pix GAN + 100·L1 to the ground truth; CycleGAN GAN
   against unpaired real labels + 10·L1 to the teacher's output; upstream's augmentation and
   ``linear`` learning-rate policy; batch size 1; the GAN loss of the ``--model mggc_*`` spec, as
   the paper: hinge for pix2pix, least squares for CycleGAN — the games use it too), an EMA
   of G's weights (decay ``--ema_decay``, default 0.999) being what is evaluated. The same seed
   gives every method the same data order, crops and flips. ``--d_policy teacher`` (default)
   finetunes every student against the teacher's full D; ``method`` uses the D the method made
   (MGGC's pruned D; L1-norm keeps the teacher's; from scratch a new one). ``--kd`` adds feature
   distillation to every method alike. AutoGAN-Distiller, discriminator-free by design, is
   finetuned instead by its own objective (:func:`mggc_plugin.agd.agd_fit`: L1 and perceptual
   distance to the teacher's output, total variation) for the same epochs, batches and EMA;
3. **evaluate** on the 106 test images (outputs rounded to 8 bits as upstream saves them):
   KID and FID against all 506 real targets of the dataset (train + test, the task's half,
   resized to the task's size; features cached by :func:`mggc_plugin.metrics.reference_features`),
   FID against the 106 test targets (for comparability with earlier tables), per-image L1 and
   PSNR to the ground truth and L1 to the teacher's output; for label maps (CycleGAN), pixel
   accuracy and mIoU after snapping to the 12-colour palette of the ground-truth maps, and for
   the teacher beside them the floor of predicting the majority class everywhere and its pixel
   accuracy after the best renaming of its classes (:func:`mggc_plugin.metrics.majority_scores`,
   :meth:`~mggc_plugin.metrics.LabelScores.matched_pixel_accuracy`): below that floor the scores cannot rank
   its students, and the summary says so.

Each finished unit's metrics (with the per-image values, for paired bootstraps) are written to
``benchmarks/results/facades_units/<task>/<method>-<budget>-s<seed>.json`` — small files meant to
be committed. A unit whose file exists with the same protocol is skipped, so a run resumes on
another machine from the repository alone; games and finetuned students are also cached under
``--work`` (games resume from their last save, and are shared by every finetuning protocol:
:func:`game_checkpoint`). A unit depends on its seed alone (:meth:`compressors.Method.build` and
:func:`finetune` seed the global RNG): run again with the same commit, threads and machine, it reproduces
its metrics; ``commit`` records the code that finished it and ``made_by`` the code that started
its game. :mod:`facades_summary` then writes
``<task>_summary.{json,md}`` and ``<task>_pareto.png`` with means, stds and the per-seed paired
differences to L1-norm pruning with Student-t 95 % intervals. This script also writes
``facades[_cycle_gan][_<tag>].json`` (the run's record), ``..._dynamics.png`` (Fig. 4: the
games of the first seed) and ``..._samples.jpg``.

    python benchmarks/facades.py --threads 1 &                   # pix2pix, 3 seeds
    python benchmarks/facades.py --task cycle_gan --threads 1 &  # one task per core
    python benchmarks/facades.py --quick                         # a smoke run (minutes)
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from mggc_plugin import metrics, networks
from mggc_plugin.agd import agd_fit
from mggc_plugin.channels import ChannelGroups
from mggc_plugin.data import DatasetSpec, Preprocess, tensor_to_pil
from mggc_plugin.encoders.base import embed_all
from mggc_plugin.encoders.inception import InceptionEncoder
from mggc_plugin.fileio import atomic_torch_save, atomic_write, atomic_write_json
from mggc_plugin.finetune import FinetuneConfig, Finetuner, fit
from mggc_plugin.latency_table import LatencyTable
from mggc_plugin.latency_table import measure as measure_latency
from mggc_plugin.macs import count_macs
from mggc_plugin.neighborhoods.pipeline import build_neighborhoods
from mggc_plugin.neighborhoods.stochastic import stochastic_outputs
from mggc_plugin.neighborhoods.topk import topk_cosine
from mggc_plugin.slim import load_slim, save_slim
from mggc_plugin.teacher import TeacherSpec, inference_copy
from mggc_plugin.upstream.teacher import arch_D, arch_G, find_teacher

from compressors import METHODS, Context, GameData, Student, check_methods, full_width
from facades_setup import (
    TASKS,
    Task,
    ensure_teacher,
    load_pairs,
    random_crops,
    teacher_options,
    translate,
)
from facades_summary import UNITS, write_summary

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SHARED = ROOT.parent / "shared"
D_POLICIES = ("teacher", "method")
#: Part of the games folder's key. 2: every unit's make and finetuning start from the global RNG
#: seeded by the unit's seed, and a game draws G's dropout from its own seeded stream
#: (``MGGCConfig.seed``); games of format 1 drew from what the process had drawn before, so two
#: runs of one unit differed (KID 0.264 and 0.310 for MGGC at 10 %, seed 0, both at 67b918a).
GAMES_FORMAT = 2


@dataclass(frozen=True)
class Schedule:
    """The protocol (module docstring). ``prune_steps`` None: 10 % of the teacher's iterations.
    Everything here except ``targets``, ``methods`` and ``seeds`` is part of a unit's identity."""

    targets: Tuple[float, ...] = (0.10, 0.05)
    methods: Tuple[str, ...] = ("mggc", "mggc_k0", "baseline", "l1_norm", "scratch", "mggc_paper")
    seeds: Tuple[int, ...] = (0, 1, 2)
    prune_steps: Optional[int] = None
    finetune_epochs: int = 10
    ema_decay: Optional[float] = 0.999
    d_policy: str = "teacher"
    kd: bool = False
    lambda_kd: float = 1.0
    fill: bool = True
    batch_size: int = 1
    k: int = 5
    round_to: int = 8
    encoder: str = "inception"
    n_train: Optional[int] = None
    n_test: Optional[int] = None

    def protocol(self) -> Dict[str, object]:
        """What a unit's metrics depend on besides its method, budget and seed."""
        return {k: v for k, v in asdict(self).items() if k not in ("targets", "methods", "seeds")}

    def game_protocol(self) -> Dict[str, object]:
        """What a pruning game depends on besides the teacher, data, method, budget and seed: not
        the finetuning, nor how its final widths are rounded and filled (done after the game)."""
        return {k: getattr(self, k) for k in ("prune_steps", "batch_size", "k", "encoder", "n_train")}


QUICK = Schedule(targets=(0.10,), seeds=(0,), prune_steps=8, finetune_epochs=1, n_train=12, n_test=8)


# ---------------------------------------------------------------------------------------------
# Finetuning
# ---------------------------------------------------------------------------------------------

def finetune(method: str, student: Student, task: Task, train: Dict[str, torch.Tensor], teacher: nn.Module,
             schedule: Schedule, seed: int, crop: int, device: str
             ) -> Tuple[nn.Module, List[Dict[str, float]]]:
    """The shared finetuning (module docstring, step 2; a discriminator-free method: its own
    objective on the same batches). Returns the G to evaluate (the EMA of G's weights when
    ``schedule.ema_decay`` is set) and the per-epoch mean losses. ``seed`` orders and crops the
    batches and seeds the global RNG that G's dropout draws from."""
    spec = task.spec
    G, D = student.G.to(device).train(), student.D.to(device).train()
    teacher_T = inference_copy(teacher).to(device) if spec.l1_target == "teacher" else None
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    n = len(train["x"])

    def batches(epoch: int):
        order = torch.randperm(n, generator=g)
        for start in range(0, n, schedule.batch_size):
            idx = order[start:start + schedule.batch_size]
            state = g.get_state()
            x = random_crops(train["x"], idx, crop, g).to(device)
            if task.unpaired:
                real = random_crops(train["y"], torch.randint(n, (len(idx),), generator=g), crop, g).to(device)
            else:
                g.set_state(state)  # the paired target gets the source's crop and flip
                real = random_crops(train["y"], idx, crop, g).to(device)
            if teacher_T is not None:
                with torch.no_grad():
                    target = teacher_T(x)
            else:
                target = real
            yield x, real, target

    steps = math.ceil(n / schedule.batch_size)
    if METHODS[method].discriminator_free:
        result = agd_fit(G, teacher_T if teacher_T is not None else inference_copy(teacher).to(device),
                         lambda epoch: (x for x, _, _ in batches(epoch)), schedule.finetune_epochs,
                         ema_decay=schedule.ema_decay, steps_per_epoch=steps)
    else:
        config = FinetuneConfig(gan_mode=spec.gan_mode, conditional_D=spec.teacher.conditional_D,
                                lambda_L1=spec.lambda_L1, lambda_kd=schedule.lambda_kd if schedule.kd else 0.0)
        kd_layers = list(G.mggc_slim["groups"]) if schedule.kd else ()
        kd_teacher = None
        if schedule.kd:  # the teacher as y' was computed: per-image BatchNorm, never eval()
            kd_teacher = teacher_T if teacher_T is not None else inference_copy(teacher).to(device)
        tuner = Finetuner(G, D, config, teacher=kd_teacher, kd_layers=kd_layers)
        result = fit(tuner, batches, schedule.finetune_epochs, ema_decay=schedule.ema_decay, steps_per_epoch=steps)
        tuner.close()
    student.G, student.D = G.cpu(), D.cpu()
    evaluated = result.ema_G.cpu() if result.ema_G is not None else student.G
    return evaluated, [{k: v for k, v in epoch.items() if k != "lr"} for epoch in result.epochs]


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------

@dataclass
class EvalData:
    """What every unit is scored against: test sources/targets at the task's size, the
    teacher's test outputs, Inception features of all real targets and of the test targets,
    and for label-map tasks the palette and the ground-truth class maps."""

    x_test: torch.Tensor
    y_test01: torch.Tensor
    teacher_out: torch.Tensor
    ref_all: np.ndarray
    ref_test: np.ndarray
    palette: Optional[np.ndarray] = None
    gt_classes: Optional[np.ndarray] = None


def _rounded(values: np.ndarray) -> List[float]:
    return [float(f"{v:.6g}") for v in np.asarray(values, dtype=np.float64)]


def score(outputs01: torch.Tensor, data: EvalData, task: Task, is_teacher: bool = False
          ) -> Tuple[Dict[str, float], Dict[str, List[float]]]:
    """The unit's metrics (module docstring, step 3) and their per-image values."""
    fake = metrics.inception_features(outputs01, progress=False)
    kid = metrics.kid(data.ref_all, fake, progress=False)
    values = {"kid": kid.mean, "kid_std": kid.std, "fid_all": metrics.fid(data.ref_all, fake, progress=False),
              "fid_test": metrics.fid(data.ref_test, fake, progress=False)}
    gt = metrics.paired(outputs01, data.y_test01)
    per_image = {"l1_gt": _rounded(gt.l1), "psnr_gt": _rounded(gt.psnr)}
    values.update(l1_gt=float(gt.l1.mean()), psnr_gt=float(gt.psnr.mean()))
    if not is_teacher:  # the teacher's distance to itself is 0 (PSNR infinite)
        fidelity = metrics.paired(outputs01, data.teacher_out)
        per_image.update(l1_teacher=_rounded(fidelity.l1), psnr_teacher=_rounded(fidelity.psnr))
        values.update(l1_teacher=float(fidelity.l1.mean()), psnr_teacher=float(fidelity.psnr.mean()))
    if data.palette is not None and task.label_classes:
        labels = metrics.label_scores(metrics.snap_to_palette(outputs01, data.palette), data.gt_classes,
                                      task.label_classes)
        per_image.update(pixel_acc=_rounded(labels.pixel_accuracy), miou=_rounded(labels.miou))
        values.update(pixel_acc=float(labels.pixel_accuracy.mean()), miou=float(labels.dataset_miou))
        if is_teacher:  # the floor the teacher must clear for these scores to rank its students
            floor = metrics.majority_scores(data.gt_classes, task.label_classes)
            values.update(majority_pixel_acc=float(floor.pixel_accuracy.mean()), majority_miou=floor.dataset_miou,
                          matched_pixel_acc=labels.matched_pixel_accuracy())
    return values, per_image


def eval_data(task: Task, dataroot: Path, G_T: nn.Module, x_test: torch.Tensor, y_test: torch.Tensor, size: int,
              cache: Path, device: str) -> EvalData:
    """:class:`EvalData` for ``task``; reference features and the palette are cached in ``cache``."""
    files = {phase: [r.path for r in DatasetSpec(dataroot, "aligned", "AtoB", phase).sources()]
             for phase in ("train", "test")}
    ref_all = metrics.reference_features(files["train"] + files["test"], cache, half=task.target_half, size=size,
                                         device=device)
    test_rows = slice(len(files["train"]), len(files["train"]) + len(x_test))  # --n_test: the images used
    ref_test = ref_all[test_rows]
    y01 = (y_test + 1) / 2
    data = EvalData(x_test, y01, translate(G_T, x_test, device), ref_all, ref_test)
    if task.label_classes:
        palette_file = cache / f"palette_{task.target_half}_{task.label_classes}.npy"
        if not palette_file.is_file():
            palette = metrics.label_palette(files["test"], task.label_classes, half=task.target_half)
            def write(tmp: Path) -> None:
                with open(tmp, "wb") as f:  # a handle: np.save would append .npy to a bare path
                    np.save(f, palette)

            atomic_write(palette_file, write)
        data.palette = np.load(palette_file)
        data.gt_classes = metrics.snap_to_palette(y01, data.palette)
    return data


# ---------------------------------------------------------------------------------------------
# Units
# ---------------------------------------------------------------------------------------------

def _digest(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        # The results this script writes are not code: only changes elsewhere make a run "dirty".
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":!benchmarks/results"], cwd=ROOT, capture_output=True, text=True,
                               check=True).stdout.strip()
        return head + ("+uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def unit_file(units: Path, task: str, method: str, target: float, seed: int) -> Path:
    """Where the metrics of one unit are committed."""
    return units / task / f"{method}-{target:g}-s{seed}.json"


def thin_history(history: List[Dict[str, float]], points: int = 100) -> List[Dict[str, float]]:
    """A game's per-step logs as the means over ``points`` consecutive windows of steps (5
    significant digits), each with ``step``, its last step: small enough for the results file."""
    every = max(1, math.ceil(len(history) / points))
    windows = [history[i:i + every] for i in range(0, len(history), every)]
    return [{"step": i * every + len(w), **{k: float(f"{np.mean([h[k] for h in w]):.5g}") for k in w[0]}}
            for i, w in enumerate(windows)]


@dataclass
class Run:
    """One task's shared state for its units."""

    task: Task
    task_name: str
    schedule: Schedule
    ctx: Context
    train: Dict[str, torch.Tensor]
    G_T: nn.Module
    teacher_macs: float
    crop: int
    data: EvalData
    work: Path
    units: Path
    header: Dict[str, object]
    games: Path


def game_checkpoint(run: Run, method: str, target: float, seed: int) -> Path:
    """Where a game method's state is saved and resumed: under ``run.games``, keyed by what the
    game depends on (:meth:`Schedule.game_protocol`, the method's game options), so that the
    same game serves every finetuning protocol (epochs, KD, D policy), and every method that cuts
    another method's game (:attr:`~compressors.Method.game_of`). A supernet
    (:attr:`~compressors.Method.once_for_all`) is keyed by the run's budgets instead of the
    unit's: one serves them all."""
    options = METHODS[method].game_options
    if METHODS[method].once_for_all:  # one supernet for every budget of the run
        return run.games / f"s{seed}" / f"{method}-{_digest(sorted(run.schedule.targets))}" / "supernet.pt"
    name = f"{METHODS[method].game_of or method}-{target:g}" + (f"-{_digest(options)}" if options else "")
    return run.games / f"s{seed}" / name / "game.pt"


def run_unit(run: Run, method: str, target: float, seed: int) -> Dict[str, object]:
    """Make, finetune, evaluate and commit one unit; reuses its metrics file when the protocol
    matches, and its finetuned student when the work folder has it."""
    path = unit_file(run.units, run.task_name, method, target, seed)
    protocol = run.schedule.protocol()
    if METHODS[method].game_options:  # a change of the game's options makes the unit stale
        protocol["game_options"] = METHODS[method].game_options
    if METHODS[method].once_for_all:  # so does a supernet trained for other budgets
        protocol["supernet_serves"] = sorted(run.schedule.targets)
    if path.is_file():
        unit = json.loads(path.read_text())
        if unit.get("protocol") == protocol:
            print(f"  {method} @ {target:.0%} seed {seed}: done ({path})", flush=True)
            return unit
        print(f"  {method} @ {target:.0%} seed {seed}: {path.name} is from another protocol; redoing it", flush=True)
    folder = run.work / f"s{seed}" / f"{method}-{target:g}"
    folder.mkdir(parents=True, exist_ok=True)
    student_file = folder / "eval_G.pt"
    t0 = time.perf_counter()
    if student_file.is_file():
        record = json.loads((folder / "student.json").read_text())
        G_eval = load_slim(student_file)
    else:
        checkpoint = game_checkpoint(run, method, target, seed)
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        made_by = checkpoint.parent / "made_by.json"
        if not checkpoint.is_file():  # a resumed game keeps the commit that started it
            atomic_write_json(made_by, run.header)
        ctx = replace(run.ctx, seed=seed, checkpoint=checkpoint, fill=run.schedule.fill,
                      game_options=METHODS[method].game_options, targets=run.schedule.targets)
        student = METHODS[method].build(ctx, target)
        if run.schedule.d_policy == "teacher":
            student.D = full_width(ctx.D_T.cpu(), ctx, ctx.G_T.cpu())  # the teacher's D, slim-wrapped
        t1 = time.perf_counter()
        G_eval, epochs = finetune(method, student, run.task, run.train, run.G_T, run.schedule, seed,
                                  run.crop, run.ctx.device)
        t2 = time.perf_counter()
        save_slim(G_eval, student_file)
        record = {"info": student.info, "finetune_epochs": epochs, "history": thin_history(student.history),
                  "made_by": json.loads(made_by.read_text())["commit"] if made_by.is_file() else "unknown",
                  "seconds": {"compress": t1 - t0, "finetune": t2 - t1}}
        atomic_write_json(folder / "student.json", record, indent=None)
    t3 = time.perf_counter()
    outputs = translate(G_eval, run.data.x_test, run.ctx.device)
    values, per_image = score(outputs, run.data, run.task)
    shape = (1, *run.data.x_test.shape[1:])
    macs = count_macs(G_eval, shape).total
    unit = {"task": run.task_name, "method": method, "budget": target, "seed": seed, "protocol": protocol,
            "macs": macs, "macs_ratio": macs / run.teacher_macs, "params": sum(p.numel() for p in G_eval.parameters()),
            "widths": list(G_eval.mggc_slim["widths"]), "metrics": values, "per_image": per_image,
            **record, "seconds": {**record["seconds"], "evaluate": time.perf_counter() - t3}, **run.header}
    atomic_write_json(path, unit, indent=None)
    print(f"  {method} @ {target:.0%} seed {seed}: MACs {unit['macs_ratio']:.2%}, KID {values['kid']:.4f}, "
          f"FID(all) {values['fid_all']:.1f}, L1(gt) {values['l1_gt']:.4f}"
          + (f", mIoU {values['miou']:.3f}" if "miou" in values else ""), flush=True)
    return unit


def teacher_unit(run: Run) -> Dict[str, object]:
    """The teacher scored like a student (budget 1.0, seed 0): the reference row."""
    path = unit_file(run.units, run.task_name, "teacher", 1.0, 0)
    protocol: Dict[str, object] = {k: run.schedule.protocol()[k] for k in ("n_test",)}
    if run.task.label_classes:  # label tasks score the majority-class floor beside the teacher
        protocol["label_floor"] = True
    if path.is_file() and json.loads(path.read_text()).get("protocol") == protocol:
        return json.loads(path.read_text())
    values, per_image = score(run.data.teacher_out, run.data, run.task, is_teacher=True)
    unit = {"task": run.task_name, "method": "teacher", "budget": 1.0, "seed": 0, "protocol": protocol,
            "macs": run.teacher_macs, "macs_ratio": 1.0,
            "params": sum(p.numel() for p in run.G_T.parameters()), "metrics": values, "per_image": per_image,
            **run.header}
    atomic_write_json(path, unit, indent=None)
    return unit


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------

def stochastic_game(ctx: Context, work: Path, k: int, samples: int) -> GameData:
    """The game's data with D'_y of ``samples`` dropout draws of the teacher per training source
    (:func:`~mggc_plugin.neighborhoods.stochastic.stochastic_outputs`, seed 0), embedded by the
    frozen Inception encoder with each output's ``k`` nearest neighbours (Eq. 1); the sources
    repeated to match. Cached in ``<work>/stochastic_m<samples>_k<k>.pt``."""
    cache = work / f"stochastic_m{samples}_k{k}.pt"
    if cache.is_file():
        saved = torch.load(cache, weights_only=True)
        y_all, neighbors = saved["outputs"], saved["neighbors"]
    else:
        y_all = stochastic_outputs(ctx.G_T, ctx.game.x, samples, seed=0)
        emb = embed_all(InceptionEncoder("cpu"), lambda i: y_all[i], len(y_all), desc="embedding stochastic D'_y")
        neighbors, _ = topk_cosine(emb, k=k)
        atomic_torch_save({"outputs": y_all, "neighbors": neighbors}, cache)
    return GameData(ctx.game.x.repeat_interleave(samples, dim=0), y_all, neighbors)


def teacher_latency_table(G_T: nn.Module, x: torch.Tensor, work: Path, runtime: str) -> LatencyTable:
    """G_T's latency table on ``runtime`` with one thread (the benchmark's setting), at the game's
    input size: loaded from ``work/latency_table_<runtime>_t1.json``, or measured (minutes; keep
    the machine quiet) and saved there and, for the record, as
    ``benchmarks/results/facades_latency_table_<work folder>[_<runtime>].json`` (eager unsuffixed)."""
    path = work / f"latency_table_{runtime}_t1.json"
    if path.is_file():
        return LatencyTable.load(path)
    G = G_T.cpu()  # measure() times an eval() copy, BatchNorm folded as facades_latency.py times students
    table = measure_latency(G, ChannelGroups.discover(G, x.cpu()), runtime, threads=1)
    table.save(path)
    table.save(RESULTS / f"facades_latency_table_{work.name}{'' if runtime == 'eager' else '_' + runtime}.json")
    return table


def prepare(args: argparse.Namespace, schedule: Schedule) -> Run:
    """Teacher, data, neighbourhoods and evaluation data of ``args.task``."""
    task = TASKS[args.task]
    work_root = Path(args.work).expanduser()
    teacher_dir = ensure_teacher(task, Path(args.teacher or SHARED / "teachers" / task.teacher), Path(args.dataroot),
                                 work_root, args.upstream or os.environ.get("MGGC_UPSTREAM_DIR"), args.device,
                                 args.teacher_epochs)
    opt = teacher_options(teacher_dir)
    kind = task.spec.teacher
    teacher = find_teacher(str(teacher_dir.parent), teacher_dir.name, "latest", kind)
    G_T = networks.load_state(networks.define_G(**arch_G(opt)), teacher.G_path)
    D_T = networks.load_state(networks.define_D(**arch_D(opt, kind)), teacher.D_path)
    crop, load = opt.crop_size, opt.load_size
    direction = opt.direction if not task.unpaired else "AtoB"  # G_A maps A (photos) to B (labels)
    dataroot = Path(args.dataroot)
    n_teacher_iters = (opt.n_epochs + opt.n_epochs_decay) * len(DatasetSpec(dataroot, "aligned").sources())
    schedule = replace(schedule, prune_steps=schedule.prune_steps or round(0.1 * n_teacher_iters / opt.batch_size))
    config = {"task": args.task, "teacher": teacher.describe(), "dataroot": str(dataroot.resolve()),
              "protocol": schedule.protocol(), "device": args.device}
    work = work_root / f"{args.task}-{_digest(config)}"
    games = work_root / (f"{args.task}-games-"
                         f"{_digest({**config, 'protocol': schedule.game_protocol(), 'format': GAMES_FORMAT})}")
    work.mkdir(parents=True, exist_ok=True)
    atomic_write_json(work / "config.json", config)
    print(f"{args.task}: teacher {teacher.G_path} ({opt.netG}, ngf {opt.ngf}, {crop}²), "
          f"work folder {work}\n  protocol: {schedule.protocol()}", flush=True)

    x_game, y_game = load_pairs(dataroot, direction, "train", crop, schedule.n_train)
    train_x, train_y = load_pairs(dataroot, direction, "train", load, schedule.n_train)
    if task.unpaired:  # the teacher's unpaired split: B shifted by one index
        train_y, y_game = train_y.roll(-1, 0), y_game.roll(-1, 0)
    x_test, y_test = load_pairs(dataroot, direction, "test", crop, schedule.n_test)

    a = arch_G(opt)
    spec_T = TeacherSpec(teacher.G_path, a["netG"], a["ngf"], a["norm"], a["use_dropout"], norm_stats="per_image")
    dataset = DatasetSpec(dataroot, "aligned", direction, max_size=schedule.n_train)
    nb, outputs = build_neighborhoods(dataset, spec_T, Preprocess(crop), work / "neighbors.pt",
                                      work_root / f"{args.task}-cache-{schedule.n_train or 'all'}", k=schedule.k,
                                      encoder=schedule.encoder, swav_checkpoint=args.swav_checkpoint)
    y_center = torch.stack([outputs.tensor(i) for i in range(len(outputs))])
    ctx = Context(G_T, D_T, arch_G(opt), arch_D(opt, kind), task.spec.gan_mode, kind.conditional_D,
                  GameData(x_game, y_center, nb.indices), schedule.prune_steps, schedule.batch_size, args.device,
                  schedule.round_to, 0, real=y_game, teacher_gan_mode=opt.gan_mode)
    ctx.stochastic = partial(stochastic_game, ctx, work, schedule.k)
    ctx.latency = partial(teacher_latency_table, G_T, x_game[:1], work)
    data = eval_data(task, dataroot, G_T, x_test, y_test, crop, work_root / "reference-features", args.device)
    machine = {"device": args.device, "cpu_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
               "torch": torch.__version__, "python": platform.python_version(),
               "cuda": torch.cuda.get_device_name() if args.device == "cuda" else None}
    header = {"commit": _git_commit(), "machine": machine}
    units = Path(args.units) if args.units else UNITS
    return Run(task, args.task, schedule, ctx, {"x": train_x, "y": train_y}, G_T,
               count_macs(G_T, (1, *x_test.shape[1:])).total, crop, data, work,
               units, header, games)


def plot_dynamics(units: Sequence[Dict[str, object]], targets: Sequence[float], path: Path) -> None:
    """Fig. 4 for the first seed: for each budget, MGGC's loss_G, loss_D and R against
    iterations, and the kept MACs of every game's sampled G."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seed = min(int(u["seed"]) for u in units)
    histories = {(u["method"], u["budget"]): u["history"] for u in units if u["seed"] == seed and u.get("history")}
    fig, axes = plt.subplots(len(targets), 2, figsize=(11, 3.2 * len(targets)), squeeze=False)
    for row, target in zip(axes, targets):
        mggc = histories.get(("mggc", target))
        if mggc:
            for key in ("loss_G", "loss_D", "R", "d_auc", "kept_channels_D"):
                if key in mggc[0]:  # d_auc: D's real-vs-fake AUC, the watch on D (games before it lack it)
                    row[0].plot([h["step"] for h in mggc], [h[key] for h in mggc], label=key,
                                linestyle=":" if key in ("d_auc", "kept_channels_D") else "-")
            row[0].legend()
            row[0].set_title(f"MGGC game at {target:.0%} MACs, seed {seed} (means of {mggc[0]['step']}-step windows)")
        row[0].set_xlabel("iteration")
        for name in ("mggc", "mggc_k0", "baseline"):
            h = histories.get((name, target))
            if h:
                row[1].plot([s["step"] for s in h], [s["kept_macs_G_total"] for s in h], label=METHODS[name].label)
        row[1].axhline(target, color="grey", linestyle="--", label="budget")
        row[1].set_ylim(0, 1.05)
        row[1].set_title("G's sampled sub-network: fraction of MACs kept")
        row[1].set_xlabel("iteration")
        row[1].legend()
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    plt.close(fig)


def save_samples(run: Run, seed: int, targets: Sequence[float], methods: Sequence[str], path: Path) -> None:
    """Rows: source, ground truth, teacher, then every student of ``seed`` whose finetuned G is in
    the work folder; columns: the first 4 test images."""
    from torchvision.utils import make_grid

    x = run.data.x_test[:4]
    rows = [(x + 1) / 2, run.data.y_test01[:4], run.data.teacher_out[:4]]
    for target in targets:
        for method in methods:
            file = run.work / f"s{seed}" / f"{method}-{target:g}" / "eval_G.pt"
            if file.is_file():
                rows.append(translate(load_slim(file), x, run.ctx.device))
    grid = make_grid(torch.cat(rows), nrow=len(x), padding=2, pad_value=1.0)
    atomic_write(path, lambda tmp: tensor_to_pil(grid * 2 - 1).save(tmp, format="JPEG", quality=90))


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=tuple(TASKS), default="pix2pix")
    p.add_argument("--quick", action="store_true", help="every stage on a few images (a smoke run, not a result)")
    p.add_argument("--dataroot", default=str(SHARED / "datasets" / "facades"), help="aligned facades (A|B)")
    p.add_argument("--teacher", help="the teacher's upstream checkpoint folder (default: the shared one)")
    p.add_argument("--upstream", help="upstream checkout to train a missing teacher (default $MGGC_UPSTREAM_DIR)")
    p.add_argument("--teacher_epochs", type=int, help="epochs when training a missing teacher (default: its README's)")
    p.add_argument("--work", default="~/.cache/mggc-plugin/benchmarks", help="cache of games, students, features")
    p.add_argument("--units", help=f"folder of the per-unit metrics (default {UNITS.relative_to(ROOT)}; "
                                   "--quick: a folder in --work)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--methods", nargs="+", help=f"subset of {', '.join(METHODS)}")
    p.add_argument("--targets", nargs="+", type=float, help="MACs budgets as fractions (default 0.10 0.05)")
    p.add_argument("--seeds", type=int, help="seeds 0..N-1 (default 3)")
    p.add_argument("--seed_list", type=int, nargs="+", help="these seeds instead of 0..N-1")
    p.add_argument("--prune_steps", type=int, help="pruning game steps (default: 10 %% of the teacher's iterations)")
    p.add_argument("--finetune_epochs", type=int, help="finetuning epochs for every student (default 10)")
    p.add_argument("--ema_decay", type=float, help="EMA decay of G's weights, evaluated (default 0.999; 0: off)")
    p.add_argument("--d_policy", choices=D_POLICIES, help="D finetuned against: the teacher's (default) or the "
                                                          "method's own")
    p.add_argument("--kd", action="store_true", help="feature distillation from the teacher, for every method")
    p.add_argument("--no_fill", action="store_true", help="leave students where their method's rounding left them")
    p.add_argument("--teacher_only", action="store_true",
                   help="score the teacher and stop (e.g. a second teacher, for the teacher-vs-teacher spread)")
    p.add_argument("--tag", default="", help="run record goes to facades[_cycle_gan]_<tag>.json")
    p.add_argument("--encoder", choices=("inception", "swav"), help="neighbourhood encoder (default inception)")
    p.add_argument("--swav_checkpoint", help="official SwAV weights for --encoder swav")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device here; use --device cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    schedule = QUICK if args.quick else Schedule()
    seeds = tuple(args.seed_list) if args.seed_list else tuple(range(args.seeds)) if args.seeds else None
    overrides = {"methods": tuple(check_methods(args.methods)) if args.methods else None,
                 "targets": tuple(args.targets) if args.targets else None, "seeds": seeds,
                 "prune_steps": args.prune_steps, "finetune_epochs": args.finetune_epochs,
                 "ema_decay": (args.ema_decay or None) if args.ema_decay is not None else schedule.ema_decay,
                 "d_policy": args.d_policy, "encoder": args.encoder, "kd": args.kd or None,
                 "fill": False if args.no_fill else None}
    schedule = replace(schedule, **{k: v for k, v in overrides.items() if v is not None})
    if args.quick and not args.units:
        args.units = str(Path(args.work).expanduser() / "quick-units")
    start = time.perf_counter()
    run = prepare(args, schedule)
    done = [teacher_unit(run)]
    for seed in () if args.teacher_only else schedule.seeds:
        for target in schedule.targets:
            for method in schedule.methods:
                done.append(run_unit(run, method, target, seed))
    stem = "facades" + run.task.suffix + (f"_{args.tag}" if args.tag else "") + ("_quick" if args.quick else "")
    students = [u for u in done if u["method"] != "teacher"]
    if students:
        plot_dynamics(students, schedule.targets, RESULTS / f"{stem}_dynamics.png")
        save_samples(run, schedule.seeds[0], schedule.targets, schedule.methods, RESULTS / f"{stem}_samples.jpg")
    record = {"task": args.task, "protocol": schedule.protocol(), "seeds": list(schedule.seeds),
              "targets": list(schedule.targets), "methods": list(schedule.methods), "quick": args.quick,
              "wall_seconds": time.perf_counter() - start, **run.header,
              "units": [str(unit_file(run.units, args.task, u["method"], u["budget"], u["seed"])) for u in done],
              "sample_rows": ["source", "ground truth", "teacher"]
              + [f"{m} {t:g}" for t in schedule.targets for m in schedule.methods]}
    atomic_write_json(RESULTS / f"{stem}.json", record)
    if args.quick or run.units.resolve() == UNITS.resolve():
        summary = write_summary(args.task, run.units, RESULTS if not args.quick else run.units)
        if summary:
            print(summary.read_text())
    else:  # another folder's summary would overwrite the committed one of the default units
        print(f"units in {run.units}: summarise them with python benchmarks/facades_summary.py --task {args.task} "
              f"--units {run.units} --out <folder>", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
