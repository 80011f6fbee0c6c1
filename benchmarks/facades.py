"""MGGC against baselines at equal MACs on CMP Facades, measured side by side in one run.

Two tasks, each against a teacher trained by upstream (pytorch-CycleGAN-and-pix2pix):

* ``pix2pix`` — labels → photo at 128², ``unet_128`` ngf 32 (``../shared/teachers/
  facades_pix2pix_unet128_ngf32``), evaluated on the 106 test pairs;
* ``cycle_gan`` — photo → labels (G_A) at 64², ``resnet_6blocks`` ngf 32, trained unpaired
  (``../shared/teachers/facades_cycle_gan_res6_ngf32_64``), evaluated on the 106 test photos.

For every MACs budget (default 25 % and 10 % of the teacher's) and every method of
:data:`compressors.METHODS` (MGGC; MGGC with k = 0; Table 2's Baseline; L1-norm filter pruning;
a generator trained from scratch with a smaller ngf), the student pair is made, then finetuned
with the *same* objective and schedule as every other method: the MGGC model's own finetuning
(:class:`~mggc_plugin.finetune.Finetuner`: pix2pix hinge GAN + 100·L1 to the ground truth;
CycleGAN least-squares GAN against unpaired real labels + 10·L1 to the teacher's output), no KD,
batch size 1, upstream's augmentation (resize to the teacher's ``load_size``, random crop to
``crop_size``, random flip) and learning-rate policy (constant for the first half of the
epochs, then upstream's ``linear`` decay). The default 5 epochs keep a run of both budgets
and all methods near an hour on 2 CPU cores; ``--finetune_epochs`` gives every method more.
Reported per student: MACs, parameters, FID on the test set (FID Inception, 8-bit outputs as
upstream saves them), CPU latency speed-up over the teacher (all generators timed in
interleaved rounds in one process) and the time each stage took.

Pruning games run 10 % of the teacher's training iterations (the paper's budget; 3,200 steps for
the pix2pix teacher's 80 epochs × 400 images). The neighbourhoods (Eq. 1) use the frozen FID
Inception encoder: the paper's SwAV is ImageNet-pretrained, no such weights can be downloaded
here, and SwAV trained from scratch on small data finds no better neighbours than raw pixels
(``benchmarks/results/neighborhoods.md``); pass ``--encoder swav --swav_checkpoint FILE`` to use
official SwAV weights.

Teachers are read from ``--teacher`` (never written). When the folder holds no generator and
``--upstream DIR`` (or ``MGGC_UPSTREAM_DIR``) names an upstream checkout, the teacher is first
trained there with the command in the teacher's README, into ``<work>/checkpoints``.

Everything is cached in ``--work`` under a folder named by the configuration's digest, one
sub-folder per (method, budget) with the pruning game's state (saved every 200 steps); an
interrupted run keeps its finished students and games and resumes a game from its last save (a
student's finetuning starts over). Results: ``benchmarks/results/facades[_cycle_gan][_<tag>]
[_quick].{json,md}``, ``..._dynamics.png`` (Fig. 4: the games' losses and R) and
``..._samples.jpg`` (rows: source, ground truth, teacher, then the students in table order).
``--quick`` runs every stage on a few images for a smoke test (minutes).

    python benchmarks/facades.py                      # pix2pix: about 1 h on 2 CPU cores
    python benchmarks/facades.py --task cycle_gan     # about 40 min
    python benchmarks/facades.py --quick --device cuda
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compressors import METHODS, Context, GameData, Student, check_methods  # noqa: E402

from mggc_plugin import metrics, networks  # noqa: E402
from mggc_plugin.fileio import atomic_write, atomic_write_json  # noqa: E402
from mggc_plugin.finetune import FinetuneConfig, Finetuner  # noqa: E402
from mggc_plugin.macs import count_macs  # noqa: E402
from mggc_plugin.neighborhoods import (DatasetSpec, Preprocess, TeacherSpec, build_neighborhoods,  # noqa: E402
                                       per_image_norm, read_train_opt, tensor_to_pil)
from mggc_plugin.slim import load_slim, save_slim  # noqa: E402
from mggc_plugin.upstream.compat import cpu_flags  # noqa: E402
from mggc_plugin.upstream.specs import SPECS, GanSpec  # noqa: E402
from mggc_plugin.upstream.teacher import arch_D, arch_G, find_teacher  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SHARED = ROOT.parent / "shared"


@dataclass(frozen=True)
class Task:
    """One benchmark: the MGGC model whose objective it uses (``spec``), the shared teacher
    folder's name, the upstream ``train.py`` arguments that trained that teacher (its README)
    and its epochs (``--n_epochs``, ``--n_epochs_decay``), whether the teacher trained on an
    unpaired split, and the file-name suffix of the results."""

    spec: GanSpec
    teacher: str
    train_args: Tuple[str, ...]
    epochs: Tuple[int, int]
    unpaired: bool
    suffix: str


TASKS: Dict[str, Task] = {
    "pix2pix": Task(SPECS["mggc_pix2pix"], "facades_pix2pix_unet128_ngf32", (
        "--model", "pix2pix", "--direction", "BtoA", "--netG", "unet_128", "--ngf", "32", "--ndf", "32",
        "--load_size", "143", "--crop_size", "128"), (40, 40), False, ""),
    "cycle_gan": Task(SPECS["mggc_cycle_gan"], "facades_cycle_gan_res6_ngf32_64", (
        "--model", "cycle_gan", "--netG", "resnet_6blocks", "--ngf", "32", "--ndf", "32", "--load_size", "72",
        "--crop_size", "64"), (10, 10), True, "_cycle_gan"),
}


@dataclass(frozen=True)
class Schedule:
    """How much work each method gets. ``prune_steps`` None: 10 % of the teacher's iterations."""

    targets: Tuple[float, ...] = (0.25, 0.10)
    methods: Tuple[str, ...] = tuple(METHODS)
    prune_steps: Optional[int] = None
    finetune_epochs: int = 5
    batch_size: int = 1
    k: int = 5
    round_to: int = 8
    encoder: str = "inception"
    n_train: Optional[int] = None
    n_test: Optional[int] = None
    latency_rounds: int = 7
    latency_runs: int = 5
    seed: int = 0


QUICK = Schedule(prune_steps=8, finetune_epochs=1, n_train=12, n_test=8, latency_rounds=2, latency_runs=2)


# ---------------------------------------------------------------------------------------------
# Teacher and data
# ---------------------------------------------------------------------------------------------

def teacher_options(folder: Path) -> argparse.Namespace:
    """The teacher's upstream options (``train_opt.txt``) with the types upstream parses them to."""
    raw = read_train_opt(folder / "train_opt.txt")
    ints = ("ngf", "ndf", "n_layers_D", "input_nc", "output_nc", "load_size", "crop_size", "n_epochs",
            "n_epochs_decay", "batch_size")
    return argparse.Namespace(**{**raw, **{k: int(raw[k]) for k in ints}, "no_dropout": raw["no_dropout"] == "True"})


def ensure_teacher(task: Task, folder: Path, dataroot: Path, work: Path, upstream: Optional[str],
                   device: str, epochs: Optional[int] = None) -> Path:
    """``folder`` if it holds the teacher; else train it with upstream into ``<work>/checkpoints``
    (``epochs``: fewer than the README's, split evenly into constant and decaying epochs)."""
    G_file = folder / f"latest_net_{task.spec.teacher.G}.pth"
    if G_file.is_file():
        return folder
    trained = work / "checkpoints" / task.teacher
    if (trained / G_file.name).is_file():
        return trained
    if not upstream:
        raise FileNotFoundError(f"no teacher at {G_file}: pass --teacher with the folder of an upstream "
                                f"{task.spec.teacher.model} run, or --upstream <checkout> to train one")
    data = dataroot
    if task.unpaired:
        data = write_unpaired(dataroot, work / "facades_unpaired")
    keep, decay = task.epochs if epochs is None else ((epochs + 1) // 2, epochs // 2)
    cmd = [sys.executable, "train.py", "--dataroot", str(data), "--name", task.teacher,
           "--checkpoints_dir", str(work / "checkpoints"), *task.train_args, "--n_epochs", str(keep),
           "--n_epochs_decay", str(decay), "--save_epoch_freq", str(keep + decay), "--num_threads", "2",
           *([] if device == "cuda" else cpu_flags(upstream, "train"))]
    print(f"training the teacher with upstream: {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, cwd=upstream, check=True)
    return trained


def write_unpaired(dataroot: Path, out: Path) -> Path:
    """The unpaired split the CycleGAN teacher trained on: trainA = photos (left halves),
    trainB = label maps (right halves) shifted by one index, so that no pair lines up."""
    done = out / "done.json"
    if done.is_file():
        return out
    for phase in ("train", "test"):
        sources = DatasetSpec(dataroot, "aligned", "AtoB", phase)
        photos, labels = sources.sources(), sources.targets()
        labels = labels[1:] + labels[:1]
        for side, refs in (("A", photos), ("B", labels)):
            (out / f"{phase}{side}").mkdir(parents=True, exist_ok=True)
            for ref in refs:
                atomic_write(out / f"{phase}{side}" / f"{ref.path.stem}.png",
                             lambda tmp, ref=ref: ref.load().save(tmp, format="PNG"))
    atomic_write_json(done, {"from": str(dataroot)})
    return out


def load_pairs(dataroot: Path, direction: str, phase: str, size: int, limit: Optional[int]
               ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Sources x and targets y of the aligned dataset, resized to ``size``², in [-1, 1]."""
    spec = DatasetSpec(dataroot, "aligned", direction, phase, max_size=limit)
    pre = Preprocess(size)
    sources, targets = spec.sources(), spec.targets()
    x = torch.stack([pre.tensor(r.load(), 3) for r in tqdm(sources, desc=f"{phase} sources", leave=False)])
    y = torch.stack([pre.tensor(r.load(), 3) for r in tqdm(targets, desc=f"{phase} targets", leave=False)])
    return x, y


def random_crops(images: torch.Tensor, idx: torch.Tensor, crop: int, g: torch.Generator) -> torch.Tensor:
    """Upstream's training augmentation on preloaded ``load_size`` images: a random ``crop``²
    window and a random horizontal flip per sample (the same for every tensor given the same
    generator state)."""
    size = images.shape[-1]
    out = []
    for i in idx.tolist():
        top, left = torch.randint(size - crop + 1, (2,), generator=g).tolist()
        patch = images[i, :, top:top + crop, left:left + crop]
        out.append(patch.flip(-1) if torch.rand((), generator=g) < 0.5 else patch)
    return torch.stack(out)


# ---------------------------------------------------------------------------------------------
# Finetuning and evaluation
# ---------------------------------------------------------------------------------------------

def inference_copy(G: nn.Module) -> nn.Module:
    """G as upstream's test.py runs it, made deterministic: BatchNorm normalises each image by
    its own statistics (pix2pix trains with batch size 1), dropout off. A copy; G is untouched."""
    return per_image_norm(copy.deepcopy(G).eval()).requires_grad_(False)


@torch.no_grad()
def translate(G: nn.Module, x: torch.Tensor, device: str) -> torch.Tensor:
    """G(x) image by image, rounded to 8 bits as upstream saves results, in [0, 1], on the CPU."""
    G = inference_copy(G).to(device)
    out = torch.cat([G(x[i:i + 1].to(device)).cpu() for i in range(len(x))])
    return ((out.clamp(-1, 1) + 1) * 127.5).round() / 255


def finetune(student: Student, task: Task, train: Dict[str, torch.Tensor], teacher: nn.Module,
             schedule: Schedule, crop: int, device: str) -> List[Dict[str, float]]:
    """The shared finetuning (module docstring); returns the mean losses of each epoch."""
    spec = task.spec
    G, D = student.G.to(device).train(), student.D.to(device).train()
    tuner = Finetuner(G, D, FinetuneConfig(gan_mode=spec.gan_mode, conditional_D=spec.teacher.conditional_D,
                                           lambda_L1=spec.lambda_L1))
    keep = schedule.finetune_epochs // 2
    decay = schedule.finetune_epochs - keep
    # Upstream's "linear" policy: lr·(1 - max(0, epoch + 1 - n_epochs) / (n_epochs_decay + 1)).
    rule = lambda epoch: 1.0 - max(0, epoch + 1 - keep) / float(decay + 1)  # noqa: E731
    schedulers = [torch.optim.lr_scheduler.LambdaLR(o, rule) for o in (tuner.opt_G, tuner.opt_D)]
    teacher = inference_copy(teacher).to(device) if spec.l1_target == "teacher" else None
    g = torch.Generator().manual_seed(schedule.seed)
    n = len(train["x"])
    epochs = []
    with tqdm(total=schedule.finetune_epochs * math.ceil(n / schedule.batch_size), desc="finetune", leave=False) as bar:
        for _ in range(schedule.finetune_epochs):
            sums: Dict[str, float] = {}
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
                if teacher is not None:
                    with torch.no_grad():
                        target = teacher(x)
                else:
                    target = real
                for key, value in tuner.step(x, real, target).items():
                    sums[key] = sums.get(key, 0.0) + value
                bar.update()
            for s in schedulers:
                s.step()
            steps = math.ceil(n / schedule.batch_size)
            epochs.append({k: v / steps for k, v in sums.items()})
            bar.set_postfix(L1=f"{epochs[-1]['G_L1']:.3f}")
    tuner.close()
    student.G, student.D = G.cpu(), D.cpu()
    return epochs


def fid_to(real_features: np.ndarray, images01: torch.Tensor) -> float:
    fake = metrics.inception_features(images01, progress=False)
    return metrics.frechet_distance(real_features.mean(0), np.cov(real_features, rowvar=False),
                                    fake.mean(0), np.cov(fake, rowvar=False))


def interleaved_latency(models: Dict[str, nn.Module], shape: Tuple[int, ...], rounds: int, runs: int,
                        device: str) -> Dict[str, float]:
    """Median over ``rounds`` of each model's median time over ``runs`` passes, the models taking
    turns in every round so that a change in the machine's load hits all of them alike."""
    times: Dict[str, List[float]] = {name: [] for name in models}
    for _ in tqdm(range(rounds), desc="latency", leave=False):
        for name, model in models.items():
            times[name].append(metrics.latency(model, shape, runs=runs, warmup=2, device=device))
    return {name: statistics.median(t) for name, t in times.items()}


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------

def _digest(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        return head + ("+uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_method(name: str, target: float, ctx: Context, task: Task, train: Dict[str, torch.Tensor],
               schedule: Schedule, crop: int, folder: Path) -> Dict[str, object]:
    """Make, finetune and save one student in ``folder``; reuses a finished one."""
    result_file = folder / "result.json"
    if result_file.is_file():
        print(f"  {name} @ {target:.0%}: reused {folder}", flush=True)
        return json.loads(result_file.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    student = METHODS[name].make(replace(ctx, checkpoint=folder / "game.pt"), target)
    t1 = time.perf_counter()
    epochs = finetune(student, task, train, ctx.G_T, schedule, crop, ctx.device)
    t2 = time.perf_counter()
    save_slim(student.G, folder / "slim_G.pt")
    save_slim(student.D, folder / "slim_D.pt")
    result = {"method": name, "target": target, "info": student.info, "finetune_epochs": epochs,
              "history": student.history, "seconds": {"compress": t1 - t0, "finetune": t2 - t1}}
    atomic_write_json(result_file, result, indent=None)
    print(f"  {name} @ {target:.0%}: compress {t1 - t0:.0f} s, finetune {t2 - t1:.0f} s, "
          f"final L1 {epochs[-1]['G_L1']:.3f}", flush=True)
    return result


def run_key(result: Dict[str, object]) -> str:
    """``<method>-<budget>``: a student's folder in the work folder and its key in the results."""
    return f"{result['method']}-{result['target']:g}"


def evaluate(G_T: nn.Module, teacher_label: str, students: Dict[str, nn.Module], runs: List[Dict[str, object]],
             x_test: torch.Tensor, y_test: torch.Tensor, schedule: Schedule, device: str,
             seconds: Dict[str, float]) -> Tuple[List[Dict[str, object]], Dict[str, torch.Tensor]]:
    """One table row per generator (teacher first): MACs, parameters, FID to the real test
    targets, latency and speed-up; also returns every generator's test outputs. Adds the
    stages' times to ``seconds``."""
    t = time.perf_counter()
    shape = (1, x_test.shape[1], x_test.shape[2], x_test.shape[3])
    real = metrics.inception_features((y_test + 1) / 2, progress=False)
    nets = {"teacher": G_T, **students}
    outputs = {key: translate(G, x_test, device) for key, G in nets.items()}
    by_key = {run_key(r): r for r in runs}
    teacher_macs = count_macs(G_T, shape).total
    rows = []
    for key, G in nets.items():
        r = by_key.get(key, {"method": "teacher", "target": 1.0, "seconds": {}, "info": {}})
        macs = count_macs(G, shape).total
        rows.append({"key": key, "method": r["method"], "target": r["target"],
                     "label": METHODS[r["method"]].label if key in by_key else teacher_label,
                     "macs": macs, "macs_ratio": macs / teacher_macs, "params": sum(p.numel() for p in G.parameters()),
                     "fid": fid_to(real, outputs[key]), "seconds": r["seconds"], "info": r["info"]})
    seconds["evaluate_fid"] = time.perf_counter() - t

    t = time.perf_counter()
    lat = interleaved_latency(nets, shape, schedule.latency_rounds, schedule.latency_runs, device)
    for row in rows:
        row["latency_ms"] = 1e3 * lat[row["key"]]
        row["speedup"] = lat["teacher"] / lat[row["key"]]
    seconds["latency"] = time.perf_counter() - t
    return rows, outputs


def run(args: argparse.Namespace, schedule: Schedule) -> Dict[str, object]:
    task = TASKS[args.task]
    commit = _git_commit()  # at the start: the code that runs, not what is checked out when it ends
    work_root = Path(args.work).expanduser()
    teacher_dir = ensure_teacher(task, Path(args.teacher or SHARED / "teachers" / task.teacher), Path(args.dataroot),
                                 work_root, args.upstream or os.environ.get("MGGC_UPSTREAM_DIR"), args.device,
                                 args.teacher_epochs)
    opt = teacher_options(teacher_dir)
    kind = task.spec.teacher
    teacher = find_teacher(str(teacher_dir.parent), teacher_dir.name, "latest", kind)
    G_T, D_T = networks.load_state(networks.define_G(**arch_G(opt)), teacher.G_path), \
        networks.load_state(networks.define_D(**arch_D(opt, kind)), teacher.D_path)
    crop, load = opt.crop_size, opt.load_size
    direction = opt.direction if not task.unpaired else "AtoB"  # G_A maps A (photos) to B (labels)
    n_teacher_iters = (opt.n_epochs + opt.n_epochs_decay) * len(DatasetSpec(args.dataroot, "aligned").sources())
    schedule = replace(schedule, prune_steps=schedule.prune_steps or round(0.1 * n_teacher_iters / opt.batch_size))
    config = {"task": args.task, "teacher": teacher.describe(), "dataroot": str(Path(args.dataroot).resolve()),
              "schedule": asdict(schedule), "device": args.device}
    work = work_root / f"{args.task}-{_digest(config)}"
    work.mkdir(parents=True, exist_ok=True)
    atomic_write_json(work / "config.json", config)
    print(f"{args.task}: teacher {teacher.G_path} ({opt.netG}, ngf {opt.ngf}, {crop}²), work folder {work}\n"
          f"  schedule: {schedule}", flush=True)

    seconds: Dict[str, float] = {}
    t = time.perf_counter()
    x_game, _ = load_pairs(Path(args.dataroot), direction, "train", crop, schedule.n_train)
    train_x, train_y = load_pairs(Path(args.dataroot), direction, "train", load, schedule.n_train)
    if task.unpaired:  # the teacher's unpaired split: B shifted by one index
        train_y = train_y.roll(-1, 0)
    x_test, y_test = load_pairs(Path(args.dataroot), direction, "test", crop, schedule.n_test)
    seconds["data"] = time.perf_counter() - t

    t = time.perf_counter()
    a = arch_G(opt)
    spec_T = TeacherSpec(teacher.G_path, a["netG"], a["ngf"], a["norm"], a["use_dropout"], norm_stats="per_image")
    dataset = DatasetSpec(Path(args.dataroot), "aligned", direction, max_size=schedule.n_train)
    nb, outputs = build_neighborhoods(dataset, spec_T, Preprocess(crop), work / "neighbors.pt",
                                      work_root / f"{args.task}-cache-{schedule.n_train or 'all'}", k=schedule.k,
                                      encoder=schedule.encoder, swav_checkpoint=args.swav_checkpoint)
    y_center = torch.stack([outputs.tensor(i) for i in range(len(outputs))])
    seconds["neighbourhoods"] = time.perf_counter() - t

    ctx = Context(G_T, D_T, arch_G(opt), arch_D(opt, kind), task.spec.gan_mode, kind.conditional_D,
                  GameData(x_game, y_center, nb.indices), schedule.prune_steps, schedule.batch_size, args.device,
                  schedule.round_to, schedule.seed)
    train = {"x": train_x, "y": train_y}
    runs = []
    for target in schedule.targets:
        for name in schedule.methods:
            runs.append(run_method(name, target, ctx, task, train, schedule, crop, work / f"{name}-{target:g}"))

    students = {run_key(r): load_slim(work / run_key(r) / "slim_G.pt") for r in runs}
    rows, outputs_test = evaluate(G_T, f"Teacher ({opt.netG}, ngf {opt.ngf})", students, runs, x_test, y_test,
                                  schedule, args.device, seconds)
    histories = {run_key(r): thin_history(r["history"]) for r in runs if r["history"]}
    return {"task": args.task, "commit": commit, "config": config, "quick": args.quick,
            "teacher_options": {k: getattr(opt, k) for k in ("model", "netG", "ngf", "norm", "netD", "ndf",
                                                             "crop_size", "load_size", "direction")},
            "n_train": len(train_x), "n_test": len(x_test), "rows": rows, "stage_seconds": seconds,
            "machine": {"device": args.device, "cpu_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
                        "torch": torch.__version__, "python": platform.python_version(),
                        "cuda": torch.cuda.get_device_name() if args.device == "cuda" else None,
                        "loadavg_end": os.getloadavg()},
            "histories": histories, "samples": (x_test[:4], y_test[:4], {k: v[:4] for k, v in outputs_test.items()})}


# ---------------------------------------------------------------------------------------------
# Writing the results
# ---------------------------------------------------------------------------------------------

def markdown(result: Dict[str, object]) -> str:
    cfg, opt = result["config"], result["teacher_options"]
    sched = cfg["schedule"]
    m = result["machine"]
    where = f"{m['cuda']}" if m["device"] == "cuda" else f"CPU, {m['cpus']} cores, {m['cpu_threads']} torch threads"
    direction = "labels → photo" if opt["model"] == "pix2pix" else "photo → labels (G_A)"
    title = f"Facades {result['task']}" + (f", {result['tag']}" if result.get("tag") else "")
    lines = [f"# {title}{' (quick: a smoke run, not a result)' if result['quick'] else ''}", "",
             f"Teacher: upstream {opt['model']} `{opt['netG']}` ngf {opt['ngf']} ({opt['norm']} norm), "
             f"{opt['crop_size']}², {direction}; "
             f"{result['n_train']} training images, FID on {result['n_test']} test images. Commit {result['commit']}, "
             f"{where}.", "",
             f"Every student: pruning game {sched['prune_steps']} steps (game methods), then the same finetuning, "
             f"{sched['finetune_epochs']} epochs at batch size {sched['batch_size']}; widths multiples of "
             f"{sched['round_to']}; neighbourhoods k = {sched['k']} with the {sched['encoder']} encoder; "
             f"seed {sched['seed']}.", "",
             "| Method | budget | MACs (G) | MACs kept | #Params (M) | FID ↓ | CPU speed-up | compress (s) | "
             "finetune (s) |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        s = r["seconds"]
        extra = ""
        if "ngf" in r["info"]:
            extra = f" (ngf {r['info']['ngf']})"
        lines.append(f"| {r['label']}{extra} | {'—' if r['method'] == 'teacher' else format(r['target'], '.0%')} | "
                     f"{r['macs'] / 1e9:.3f} | {r['macs_ratio']:.1%} | {r['params'] / 1e6:.2f} | {r['fid']:.1f} | "
                     f"{r['speedup']:.2f}× | {s.get('compress', 0):.0f} | {s.get('finetune', 0):.0f} |")
    st = result["stage_seconds"]
    lines += ["", "Shared stages (s): " + ", ".join(f"{k} {v:.0f}" for k, v in st.items()) + ".",
              f"Speed-up: latency of the teacher over the student's, batch 1, medians of interleaved rounds on "
              f"the machine above (load average at the end: {m['loadavg_end'][0]:.1f}).", ""]
    return "\n".join(lines)


def thin_history(history: List[Dict[str, float]], points: int = 100) -> List[Dict[str, float]]:
    """A game's per-step logs as the means over ``points`` consecutive windows of steps (5
    significant digits), each with ``step``, its last step: small enough for the results file."""
    every = max(1, math.ceil(len(history) / points))
    windows = [history[i:i + every] for i in range(0, len(history), every)]
    return [{"step": i * every + len(w), **{k: float(f"{np.mean([h[k] for h in w]):.5g}") for k in w[0]}}
            for i, w in enumerate(windows)]


def plot_dynamics(histories: Dict[str, List[Dict[str, float]]], targets: Sequence[float], path: Path) -> None:
    """Fig. 4: for each budget, MGGC's loss_G, loss_D and R against iterations, and the kept
    MACs of every game's sampled G (``histories``: :func:`thin_history` windows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(targets), 2, figsize=(11, 3.2 * len(targets)), squeeze=False)
    for row, target in zip(axes, targets):
        mggc = histories.get(f"mggc-{target:g}")
        if mggc:
            for key in ("loss_G", "loss_D", "R"):
                row[0].plot([h["step"] for h in mggc], [h[key] for h in mggc], label=key)
            row[0].legend()
            row[0].set_title(f"MGGC game at {target:.0%} MACs (means of {mggc[0]['step']}-step windows)")
        row[0].set_xlabel("iteration")
        for name in ("mggc", "mggc_k0", "baseline"):
            h = histories.get(f"{name}-{target:g}")
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


def save_samples(samples, path: Path) -> None:
    """Rows: source, ground truth, teacher, then every student; columns: test images."""
    from torchvision.utils import make_grid

    x, y, outs = samples
    rows = [(x + 1) / 2, (y + 1) / 2] + list(outs.values())
    grid = make_grid(torch.cat(rows), nrow=len(x), padding=2, pad_value=1.0)
    atomic_write(path, lambda tmp: tensor_to_pil(grid * 2 - 1).save(tmp, format="JPEG", quality=90))


def write_results(result: Dict[str, object], targets: Sequence[float]) -> Path:
    tag = result["tag"]
    stem = "facades" + TASKS[result["task"]].suffix + (f"_{tag}" if tag else "") + ("_quick" if result["quick"] else "")
    RESULTS.mkdir(parents=True, exist_ok=True)
    samples = result.pop("samples")
    save_samples(samples, RESULTS / f"{stem}_samples.jpg")
    plot_dynamics(result["histories"], targets, RESULTS / f"{stem}_dynamics.png")
    result["sample_rows"] = ["source", "ground truth", *samples[2].keys()]
    atomic_write_json(RESULTS / f"{stem}.json", result)
    md = markdown(result)
    atomic_write(RESULTS / f"{stem}.md", lambda tmp: tmp.write_text(md))
    print(md)
    return RESULTS / f"{stem}.md"


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=tuple(TASKS), default="pix2pix")
    p.add_argument("--quick", action="store_true", help="every stage on a few images (a smoke run, not a result)")
    p.add_argument("--dataroot", default=str(SHARED / "datasets" / "facades"), help="aligned facades (A|B)")
    p.add_argument("--teacher", help="the teacher's upstream checkpoint folder (default: the shared one)")
    p.add_argument("--upstream", help="upstream checkout to train a missing teacher (default $MGGC_UPSTREAM_DIR)")
    p.add_argument("--teacher_epochs", type=int, help="epochs when training a missing teacher (default: its README's)")
    p.add_argument("--work", default="~/.cache/mggc-plugin/benchmarks", help="cache of games, students, features")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--methods", nargs="+", help=f"subset of {', '.join(METHODS)}")
    p.add_argument("--targets", nargs="+", type=float, help="MACs budgets as fractions (default 0.25 0.10)")
    p.add_argument("--prune_steps", type=int, help="pruning game steps (default: 10 %% of the teacher's iterations)")
    p.add_argument("--finetune_epochs", type=int, help="finetuning epochs for every student (default 5)")
    p.add_argument("--seed", type=int, help="seed of games, initialisations and data order (default 0)")
    p.add_argument("--tag", default="", help="results go to facades[_cycle_gan]_<tag>.* (for runs beside the default)")
    p.add_argument("--encoder", choices=("inception", "swav"), help="neighbourhood encoder (default inception)")
    p.add_argument("--swav_checkpoint", help="official SwAV weights for --encoder swav")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device here; use --device cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    schedule = QUICK if args.quick else Schedule()
    overrides = {"methods": tuple(check_methods(args.methods)) if args.methods else None,
                 "targets": tuple(args.targets) if args.targets else None, "prune_steps": args.prune_steps,
                 "finetune_epochs": args.finetune_epochs, "encoder": args.encoder, "seed": args.seed}
    schedule = replace(schedule, **{k: v for k, v in overrides.items() if v is not None})
    start = time.perf_counter()
    result = run(args, schedule)
    result["wall_seconds"] = time.perf_counter() - start
    result["tag"] = args.tag
    write_results(result, schedule.targets)
    return 0


if __name__ == "__main__":
    sys.exit(main())
