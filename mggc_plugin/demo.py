"""``mggc demo``: the whole method end to end on a built-in dataset, with an HTML report.

Stages, each printing a one-line summary (all engine code, the same the upstream path runs):

1. **data** — :mod:`mggc_plugin.synthetic` label→photo pairs, written as an upstream ``aligned``
   dataset (A|B side by side) so the neighbourhood code reads it as it reads facades.
2. **teacher** — a reference pix2pix pair (``define_G``/``define_D``) trained with the GAN
   objective (:func:`~mggc_plugin.finetune.fit` of a :class:`~mggc_plugin.finetune.Finetuner` on
   the full networks, upstream's linear learning-rate policy) and saved as upstream
   does (``latest_net_G.pth``, ``train_opt.txt``); reused when its configuration is unchanged.
3. **neighbourhoods** — Eq. 1: teacher outputs, the default encoder (``auto``: the FID
   Inception network without a SwAV checkpoint), top-k cosine neighbours
   (:func:`~mggc_plugin.neighborhoods.build_neighborhoods`, cached), and their precision on the
   dataset's known classes.
4. **prune** — the pruning game of Eq. 2 (:class:`~mggc_plugin.pruner.MGGCPruner`, played by
   :func:`~mggc_plugin.game.play` on batches of :func:`~mggc_plugin.game.neighbor_batches`).
5. **MGGC student** — the agents' final masks filled to the budget by their keep-logits
   (:func:`~mggc_plugin.baselines.fill_to_budget`), physical slimming, finetuning with KD.
6. **L1-norm student** — the simple alternative at the same budget: Li et al.'s L1-norm filter
   pruning (:mod:`mggc_plugin.baselines`, filled to the budget by filter norms) with the teacher's
   full D, finetuned exactly as the MGGC student (same configuration, epochs, seed, data order).
7. **evaluate** — MACs, parameters and per-image L1/PSNR to the ground truth on the held-out
   pairs (:func:`~mggc_plugin.metrics.paired`) for the teacher and both students, and the paired
   bootstrap interval of MGGC minus L1-norm (:func:`~mggc_plugin.metrics.paired_bootstrap`); the
   students saved as slim checkpoints.
8. **latency** — all three generators timed interleaved
   (:func:`~mggc_plugin.metrics.compare_latency`) at ``latency_size``² (they are fully
   convolutional), batch 1 and a larger batch, on ``latency_threads`` threads.
"""
from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple, TypeVar

import torch
from torch import nn

from . import networks, synthetic
from .baselines import fill_to_budget, filter_l1_scores, keep_masks, uniform_widths
from .data import DatasetSpec, Preprocess, list_images
from .fileio import atomic_torch_save, atomic_write, atomic_write_json
from .finetune import FinetuneConfig, Finetuner, fit
from .game import neighbor_batches, play
from .macs import count_macs
from .metrics import Difference, LatencyComparison, compare_latency, paired, paired_bootstrap
from .neighborhoods.cache import TeacherOutputs
from .neighborhoods.html import write_neighborhood_html
from .neighborhoods.pipeline import build_neighborhoods
from .neighborhoods.store import Neighborhoods
from .neighborhoods.topk import precision_at_k
from .pruner import MGGCConfig, MGGCPruner
from .slim import save_slim, slim
from .teacher import TeacherSpec


@dataclass(frozen=True)
class DemoConfig:
    """Sizes and schedules of the demo. The defaults are sized to run end to end in under 5
    minutes on 2 CPU cores; the ``latency_*`` fields set the speed measurement (input side,
    batch sizes, interleaved rounds, torch threads)."""

    size: int = 64
    n_train: int = 200
    n_test: int = 50
    netG: str = "resnet_6blocks"
    ngf: int = 16
    ndf: int = 16
    norm: str = "instance"
    batch_size: int = 16
    teacher_epochs: int = 14
    k: int = 5
    prune_steps: int = 150
    target_macs: float = 0.15
    finetune_epochs: int = 8
    lambda_kd: float = 1.0
    round_to: int = 4
    seed: int = 0
    device: str = "cpu"
    latency_size: int = 256
    latency_batches: Tuple[int, ...] = (1, 4)
    latency_rounds: int = 8
    latency_threads: int = 1


#: A reduced run for tests: every stage, tiny schedules.
QUICK = DemoConfig(n_train=24, n_test=6, batch_size=8, teacher_epochs=1, prune_steps=6,
                   target_macs=0.3, finetune_epochs=1, latency_rounds=3)

#: The students the demo compares, in the report's order.
STUDENTS = ("MGGC", "L1-norm")

T = TypeVar("T")


class Stages:
    """Times the demo's stages and prints one summary line per stage."""

    def __init__(self) -> None:
        self.seconds: Dict[str, float] = {}

    def run(self, name: str, fn: Callable[..., Tuple[T, str]], *args: Any, **kwargs: Any) -> T:
        """Call ``fn(*args, **kwargs)``, which returns ``(result, summary)``; print the summary
        and the time taken, and return the result."""
        start = time.perf_counter()
        result, summary = fn(*args, **kwargs)
        self.seconds[name] = time.perf_counter() - start
        print(f"[{name}] {summary} ({self.seconds[name]:.0f} s)", flush=True)
        return result


def _write_dataset(root: Path, cfg: DemoConfig) -> Tuple[Tuple[DatasetSpec, torch.Tensor], str]:
    """The dataset folder, and each training pair's dominant object class (the labels the
    neighbourhoods are checked against), kept beside the images in ``demo_data.json``."""
    dataset = DatasetSpec(root, "aligned", "AtoB")
    summary = f"{cfg.n_train} train / {cfg.n_test} test label→photo pairs at {cfg.size}² in {root}"
    key = {k: v for k, v in asdict(cfg).items() if k in ("size", "n_train", "n_test", "seed")}
    config_file = root / "demo_data.json"
    # Rewriting unchanged files would change their mtimes and invalidate the neighbourhood cache.
    if config_file.is_file():
        saved = json.loads(config_file.read_text())
        if saved.get("key") == key and "dominant_class" in saved:
            return (dataset, torch.tensor(saved["dominant_class"])), "reused " + summary
    train, test = synthetic.split(cfg.n_train, cfg.n_test, cfg.size, cfg.seed)
    for phase, pairs in (("train", train), ("test", test)):
        for stale in list_images(root / phase) if (root / phase).is_dir() else []:
            stale.unlink()
        for i in range(len(pairs)):
            _save_png(torch.cat([pairs.A[i], pairs.B[i]], dim=2), root / phase / f"{i:05d}.png")
    labels = synthetic.dominant_class(train.classes)
    atomic_write_json(config_file, {"key": key, "dominant_class": labels.tolist()})
    return (dataset, labels), summary


def _save_png(t: torch.Tensor, path: Path) -> None:
    from .data import tensor_to_pil

    atomic_write(path, lambda tmp: tensor_to_pil(t).save(tmp, format="PNG"))


def _load_pairs(dataset: DatasetSpec, preprocess: Preprocess) -> Tuple[torch.Tensor, torch.Tensor]:
    x = torch.stack([preprocess.tensor(r.load(), 3) for r in dataset.sources()])
    y = torch.stack([preprocess.tensor(r.load(), 3) for r in dataset.targets()])
    return x, y


def _batches(n: int, batch_size: int, generator: torch.Generator):
    order = torch.randperm(n, generator=generator)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def _build_pair(cfg: DemoConfig) -> Tuple[nn.Module, nn.Module]:
    G = networks.define_G(3, 3, cfg.ngf, cfg.netG, norm=cfg.norm)
    D = networks.define_D(6, cfg.ndf, "basic", norm=cfg.norm)
    return G.to(cfg.device), D.to(cfg.device)


def _train(tuner: Finetuner, x: torch.Tensor, y: torch.Tensor, epochs: int, cfg: DemoConfig, desc: str
           ) -> Dict[str, float]:
    """Train on (x, y) in shuffled batches with :func:`~mggc_plugin.finetune.fit`; the last epoch's mean losses."""
    g = torch.Generator().manual_seed(cfg.seed)

    def batches(epoch: int):
        for idx in _batches(len(x), cfg.batch_size, g):
            xb, yb = x[idx].to(cfg.device), y[idx].to(cfg.device)
            yield xb, yb, yb

    return fit(tuner, batches, epochs, steps_per_epoch=math.ceil(len(x) / cfg.batch_size), desc=desc).epochs[-1]


def _teacher(out: Path, cfg: DemoConfig, x: torch.Tensor, y: torch.Tensor) -> Tuple[Tuple[nn.Module, nn.Module], str]:
    folder = out / "teacher"
    key = {k: v for k, v in asdict(cfg).items() if k in ("size", "n_train", "netG", "ngf", "ndf", "norm",
                                                          "batch_size", "teacher_epochs", "seed")}
    G, D = _build_pair(cfg)
    config_file = folder / "demo_teacher.json"
    if config_file.is_file() and json.loads(config_file.read_text()) == key:
        networks.load_state(G, folder / "latest_net_G.pth")
        networks.load_state(D, folder / "latest_net_D.pth")
        return (G, D), f"reused the teacher in {folder}"
    torch.manual_seed(cfg.seed)
    G, D = _build_pair(cfg)
    logs = _train(Finetuner(G, D, FinetuneConfig(gan_mode="hinge")), x, y, cfg.teacher_epochs, cfg, "teacher")
    for name, net in (("G", G), ("D", D)):
        atomic_torch_save(net.state_dict(), folder / f"latest_net_{name}.pth")
    # train_opt.txt as upstream writes it, so `mggc neighbors --teacher <folder>` reads the options.
    opts = dict(model="pix2pix", netG=cfg.netG, ngf=cfg.ngf, ndf=cfg.ndf, norm=cfg.norm, input_nc=3, output_nc=3,
                crop_size=cfg.size, load_size=cfg.size, direction="AtoB", no_dropout=True)
    text = "----------------- Options ---------------\n" + "".join(f"{k:>25}: {v}\n" for k, v in opts.items())
    text += "----------------- End -------------------\n"
    atomic_write(folder / "train_opt.txt", lambda tmp: tmp.write_text(text))
    atomic_write_json(config_file, key)
    return (G, D), f"{cfg.netG} (ngf {cfg.ngf}) trained {cfg.teacher_epochs} epochs, final L1 {logs['G_L1']:.3f}"


def _neighbourhoods(out: Path, cfg: DemoConfig, dataset: DatasetSpec, labels: torch.Tensor, preprocess: Preprocess
                    ) -> Tuple[Tuple[Neighborhoods, TeacherOutputs, float, float], str]:
    """Eq. 1 with the default encoder (``auto``: the FID Inception network, no SwAV checkpoint
    being given), and the neighbourhoods' precision@k on the demo's known classes beside the
    chance level (the probability that two random samples share their dominant class)."""
    teacher = TeacherSpec(out / "teacher" / "latest_net_G.pth", cfg.netG, cfg.ngf, cfg.norm)
    nb, outputs = build_neighborhoods(dataset, teacher, preprocess, out / "neighbors.pt", out / "cache", k=cfg.k,
                                      device=cfg.device)
    write_neighborhood_html(out / "neighbors", nb, outputs, n_centres=min(20, len(nb)), sources=dataset.sources())
    precision = precision_at_k(nb.indices, labels)
    chance = float((torch.bincount(labels).float() / len(labels)).pow(2).sum())
    return (nb, outputs, precision, chance), (
        f"k={cfg.k} neighbours of {len(nb)} teacher outputs ({nb.metadata['encoder']['name']} encoder), mean cosine "
        f"{nb.similarities.mean():.3f}; precision@{cfg.k} on the known classes {precision:.2f} (chance {chance:.2f})")


def _prune(cfg: DemoConfig, G: nn.Module, D: nn.Module, x: torch.Tensor, nb: Neighborhoods, outputs: TeacherOutputs
           ) -> Tuple[Tuple[MGGCPruner, List[Dict[str, float]]], str]:
    y_center = torch.stack([outputs.tensor(i) for i in range(len(outputs))])
    pruner = MGGCPruner(G, D, x[:1].to(cfg.device), MGGCConfig(target_macs=cfg.target_macs, gan_mode="hinge",
                                                                conditional_D=True, seed=cfg.seed))
    batches = neighbor_batches(x, y_center, nb.indices, cfg.batch_size, cfg.seed, cfg.device)
    history = play(pruner, batches, cfg.prune_steps)
    last = history[-1]
    return (pruner, history), (f"{cfg.prune_steps} steps of the game: G keeps {last['kept_macs_G_total']:.1%} of its "
                               f"MACs (target {cfg.target_macs:.0%}), "
                               f"D keeps {last['kept_channels_D']:.1%} of its channels")


def _finetune(cfg: DemoConfig, pruner: MGGCPruner, G_s: nn.Module, D_s: nn.Module, x: torch.Tensor,
              y: torch.Tensor, desc: str) -> Dict[str, float]:
    """The finetuning both students share: the same objective, KD from the teacher at the same
    layers, epochs, seed (the KD adapters' initialisation) and data order."""
    torch.manual_seed(cfg.seed)
    tuner = Finetuner(G_s, D_s, FinetuneConfig(gan_mode="hinge", lambda_kd=cfg.lambda_kd), teacher=pruner.G.eval(),
                      kd_layers=[g.root for g in pruner.groups_G])
    logs = _train(tuner, x, y, cfg.finetune_epochs, cfg, desc)
    tuner.close()
    G_s.eval()
    return logs


def _summary(cfg: DemoConfig, pruner: MGGCPruner, G_s: nn.Module, logs: Dict[str, float]) -> str:
    macs = count_macs(G_s, (1, 3, cfg.size, cfg.size)).total / pruner.groups_G.full_macs
    return (f"{macs:.1%} of the teacher's MACs (budget {cfg.target_macs:.0%}), finetuned {cfg.finetune_epochs} "
            f"epochs with KD, final L1 {logs['G_L1']:.3f}")


def _mggc_student(cfg: DemoConfig, pruner: MGGCPruner, x: torch.Tensor, y: torch.Tensor
                  ) -> Tuple[nn.Module, str]:
    """The agents' final architecture, filled to the budget by their keep-logits, slimmed and finetuned."""
    arch = pruner.finalize(round_to=cfg.round_to)
    masks = fill_to_budget(pruner.groups_G, arch.v_G, arch.logits_G, cfg.target_macs, cfg.round_to)
    G_s = slim(pruner.G, pruner.groups_G, masks).to(cfg.device)
    D_s = slim(pruner.D, pruner.groups_D, arch.v_D).to(cfg.device)
    logs = _finetune(cfg, pruner, G_s, D_s, x, y, "finetune MGGC")
    return G_s, _summary(cfg, pruner, G_s, logs)


def _l1_norm_student(cfg: DemoConfig, pruner: MGGCPruner, x: torch.Tensor, y: torch.Tensor
                     ) -> Tuple[nn.Module, str]:
    """Li et al.'s L1-norm filter pruning of the teacher at the same budget (uniform rate, filled
    by filter norms), with the teacher's full-width D as the benchmark's ``l1_norm`` (the method
    prunes G only), finetuned as the MGGC student."""
    groups = pruner.groups_G
    masks = keep_masks(groups, uniform_widths(groups, cfg.target_macs, cfg.round_to).widths, "l1_norm")
    masks = fill_to_budget(groups, masks, filter_l1_scores(groups), cfg.target_macs, cfg.round_to)
    G_s = slim(pruner.G, groups, masks).to(cfg.device)
    D_s = copy.deepcopy(pruner.D).to(cfg.device)
    logs = _finetune(cfg, pruner, G_s, D_s, x, y, "finetune L1-norm")
    return G_s, _summary(cfg, pruner, G_s, logs)


def _to01(t: torch.Tensor) -> torch.Tensor:
    """Generator range [-1, 1] to the paired metrics' [0, 1]."""
    return ((t + 1) / 2).clamp(0, 1)


@dataclass(frozen=True)
class Evaluation:
    """What the evaluate stage measured. ``rows[name]`` (``teacher`` and :data:`STUDENTS`):
    ``macs`` (at the demo's size), ``params``, ``l1`` (mean per-image L1 to the ground truth,
    [0, 1] units), ``psnr`` (mean per-image PSNR to the ground truth, dB) and, for students,
    ``psnr_to_teacher``. ``differences[metric]``: MGGC minus L1-norm on ``l1`` and ``psnr``,
    paired over the test pairs with its 95 % bootstrap interval. ``outputs[name]``: the test
    outputs in [-1, 1]."""

    rows: Dict[str, Dict[str, float]]
    differences: Dict[str, Difference]
    outputs: Dict[str, torch.Tensor]


def _evaluate(out: Path, cfg: DemoConfig, teacher: nn.Module, students: Dict[str, nn.Module], x: torch.Tensor,
              y: torch.Tensor) -> Tuple[Evaluation, str]:
    shape = (1, 3, cfg.size, cfg.size)
    nets = {"teacher": teacher.eval(), **students}
    with torch.no_grad():
        outs = {name: net(x.to(cfg.device)).cpu() for name, net in nets.items()}
    rows: Dict[str, Dict[str, float]] = {}
    scores = {}
    for name, net in nets.items():
        scores[name] = paired(_to01(outs[name]), _to01(y))
        rows[name] = {"macs": count_macs(net, shape).total, "params": sum(p.numel() for p in net.parameters()),
                      "l1": float(scores[name].l1.mean()), "psnr": float(scores[name].psnr.mean())}
        if name != "teacher":
            rows[name]["psnr_to_teacher"] = float(paired(_to01(outs[name]), _to01(outs["teacher"])).psnr.mean())
    a, b = scores[STUDENTS[0]], scores[STUDENTS[1]]
    differences = {"l1": paired_bootstrap(a.l1, b.l1, seed=cfg.seed),
                   "psnr": paired_bootstrap(a.psnr, b.psnr, seed=cfg.seed)}
    save_slim(students["MGGC"].cpu(), out / "slim_G.pt")
    save_slim(students["L1-norm"].cpu(), out / "l1_norm_G.pt")
    for net in students.values():
        net.to(cfg.device)
    d = differences["psnr"]
    summary = (", ".join(f"{n} PSNR {rows[n]['psnr']:.2f} dB" for n in nets) + f" on {len(x)} test pairs; "
               f"MGGC − L1-norm {d.mean_diff:+.2f} dB (95 % CI {d.interval[0]:+.2f} to {d.interval[1]:+.2f}); "
               f"saved {out / 'slim_G.pt'} and {out / 'l1_norm_G.pt'}")
    return Evaluation(rows, differences, outs), summary


def _latency(cfg: DemoConfig, teacher: nn.Module, students: Dict[str, nn.Module]
             ) -> Tuple[List[LatencyComparison], str]:
    """Teacher and students timed interleaved at ``latency_size``² (fully convolutional
    generators run at any size), one comparison per batch size."""
    nets = {"teacher": teacher, **students}
    results = [compare_latency(nets, (batch, 3, cfg.latency_size, cfg.latency_size), rounds=cfg.latency_rounds,
                               warmup=1, threads=cfg.latency_threads, device=cfg.device)
               for batch in cfg.latency_batches]
    parts = [f"{name} " + "/".join(f"{r.speedup[name]:.2f}x" for r in results) for name in students]
    return results, (f"speed-up over the teacher at {cfg.latency_size}², batch "
                     f"{'/'.join(map(str, cfg.latency_batches))}, {cfg.latency_threads} thread(s), median of "
                     f"{cfg.latency_rounds} interleaved rounds: " + "; ".join(parts))


def run_demo(out: Path, cfg: DemoConfig = DemoConfig()) -> Path:
    """Run every stage into ``out`` and write ``out/index.html``; returns its path."""
    from .report import write_report

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stages = Stages()
    preprocess = Preprocess(cfg.size)
    dataset, labels = stages.run("data", _write_dataset, out / "data", cfg)
    x, y = _load_pairs(dataset, preprocess)
    G, D = stages.run("teacher", _teacher, out, cfg, x, y)
    nb, outputs, precision, chance = stages.run("neighbourhoods", _neighbourhoods, out, cfg, dataset, labels,
                                                 preprocess)
    pruner, history = stages.run("prune", _prune, cfg, G, D, x, nb, outputs)
    students = {"MGGC": stages.run("MGGC student", _mggc_student, cfg, pruner, x, y),
                "L1-norm": stages.run("L1-norm student", _l1_norm_student, cfg, pruner, x, y)}
    x_test, y_test = _load_pairs(replace(dataset, phase="test"), preprocess)
    evaluation = stages.run("evaluate", _evaluate, out, cfg, G, students, x_test, y_test)
    timings = stages.run("latency", _latency, cfg, G, students)
    index = write_report(out, cfg, evaluation, timings, stages.seconds, history, x_test, y_test, nb, outputs,
                         precision=(precision, chance))
    print(f"report: {index}")
    return index
