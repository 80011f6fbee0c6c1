"""The demo's HTML report: results table, sample translations, neighbourhoods, pruning dynamics.

Images are written as files beside ``index.html`` so the folder is self-contained.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import dominate
import torch
from dominate import tags
from torchvision.utils import make_grid

from .data import tensor_to_pil
from .fileio import atomic_write
from .neighborhoods.cache import TeacherOutputs
from .neighborhoods.store import Neighborhoods


def _save(t: torch.Tensor, path: Path) -> str:
    atomic_write(path, lambda tmp: tensor_to_pil(t).save(tmp, format="PNG"))
    return path.name


def plot_dynamics(history: Sequence[Dict[str, float]], path: Path) -> str:
    """loss_G, loss_D, R and G's kept MACs against iterations, like the paper's Fig. 4."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = range(1, len(history) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    for key in ("loss_G", "loss_D", "R"):
        axes[0].plot(steps, [h[key] for h in history], label=key)
    axes[0].set_xlabel("iteration")
    axes[0].legend()
    axes[0].set_title("pruning game losses")
    axes[1].plot(steps, [h["kept_macs_G_total"] for h in history], label="G: kept MACs")
    axes[1].plot(steps, [h["kept_channels_D"] for h in history], label="D: kept channels")
    axes[1].set_ylim(0, 1.05)
    axes[1].set_xlabel("iteration")
    axes[1].legend()
    axes[1].set_title("sub-network size")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return path.name


def write_report(out: Path, cfg, rows: Dict[str, Dict[str, float]], seconds: Dict[str, float],
                 history: List[Dict[str, float]], x: torch.Tensor, y: torch.Tensor, outs: Dict[str, torch.Tensor],
                 nb: Neighborhoods, outputs: TeacherOutputs, n_samples: int = 8, n_centres: int = 6,
                 precision: Optional[Tuple[float, float]] = None) -> Path:
    """Write ``out/index.html`` and its images; returns the page's path. ``precision``: the
    neighbourhoods' precision@k on known classes and its chance level, shown beside the grid."""
    img = out / "report"
    n = min(n_samples, len(x))
    samples = torch.stack([t for i in range(n) for t in (x[i], y[i], outs["teacher"][i], outs["slim"][i])])
    translations = _save(make_grid(samples, nrow=4, padding=2, pad_value=1), img / "translations.png")
    picks = torch.linspace(0, len(nb) - 1, min(n_centres, len(nb))).long()
    centres = torch.stack([outputs.tensor(int(j)) for i in picks for j in [int(i)] + nb.indices[i].tolist()])
    grid = _save(make_grid(centres, nrow=nb.k + 1, padding=2, pad_value=1), img / "neighbourhoods.png")
    dynamics = plot_dynamics(history, img / "dynamics.png")

    t, s = rows["teacher"], rows["slim"]
    doc = dominate.document(title="MGGC demo")
    with doc:
        tags.h1("MGGC demo: manifold-guided compression of a pix2pix generator")
        tags.p(f"Built-in label→photo dataset at {cfg.size}², {cfg.n_train} training pairs, "
               f"{len(x)} held-out pairs. Teacher {cfg.netG} (ngf {cfg.ngf}); "
               f"target {cfg.target_macs:.0%} of its MACs.")
        with tags.table(border=1, cellpadding=4):
            tags.tr(tags.th(""), tags.th("MACs"), tags.th("parameters"), tags.th("CPU latency (ms, batch 1)"),
                    tags.th("PSNR to ground truth (dB)"))
            for name, r in (("teacher", t), ("slim", s)):
                tags.tr(tags.td(name), tags.td(f"{r['macs'] / 1e6:.1f} M"), tags.td(f"{r['params'] / 1e6:.3f} M"),
                        tags.td(f"{r['latency_ms']:.2f}"), tags.td(f"{r['psnr']:.2f}"))
            tags.tr(tags.td("slim / teacher"), tags.td(f"{s['macs'] / t['macs']:.1%}"),
                    tags.td(f"{s['params'] / t['params']:.1%}"),
                    tags.td(f"{t['latency_ms'] / s['latency_ms']:.2f}× faster"),
                    tags.td(f"{s['psnr'] - t['psnr']:+.2f} (slim vs teacher PSNR {s['psnr_to_teacher']:.2f})"))
        tags.h2("Translations")
        tags.p("Columns: label map, ground truth, teacher, slim generator.")
        tags.img(src=f"report/{translations}")
        tags.h2("Neighbourhoods on the teacher's manifold (Eq. 1)")
        encoder = nb.metadata.get("encoder", {}).get("name", "encoder")
        tags.p(f"First column: a teacher output y'; then its {nb.k} nearest neighbours by cosine similarity of "
               f"{encoder} embeddings — the real samples the discriminator sees during pruning. Full page: ",
               tags.a("neighbors/index.html", href="neighbors/index.html"))
        if precision is not None:
            tags.p(f"Precision@{nb.k} on the dataset's known classes (a neighbour with its centre's dominant "
                   f"object class): {precision[0]:.2f}, against {precision[1]:.2f} for random neighbours.")
        tags.img(src=f"report/{grid}")
        tags.h2("Pruning dynamics (Fig. 4)")
        tags.img(src=f"report/{dynamics}")
        tags.h2("Stages")
        with tags.table(border=1, cellpadding=4):
            for name, sec in seconds.items():
                tags.tr(tags.td(name), tags.td(f"{sec:.0f} s"))
        tags.h2("Configuration")
        tags.pre("\n".join(f"{k} = {v}" for k, v in asdict(cfg).items()))
    return atomic_write(out / "index.html", lambda tmp: tmp.write_text(doc.render()))
