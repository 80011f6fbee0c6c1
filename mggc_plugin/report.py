"""The demo's HTML report: what MGGC is, its student beside L1-norm pruning at the same budget
(size, quality with a paired interval, speed), sample translations, neighbourhoods, pruning
dynamics and the stage times.

Images are written as files beside ``index.html`` so the folder is self-contained.
"""
from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import dominate
import torch
from dominate import tags, util
from torchvision.utils import make_grid

from .data import tensor_to_pil
from .demo import STUDENTS, DemoConfig, Evaluation
from .fileio import atomic_write
from .metrics import Difference, LatencyComparison
from .neighborhoods.cache import TeacherOutputs
from .neighborhoods.store import Neighborhoods

CSS = """
body { font-family: "Segoe UI", "Helvetica Neue", Arial, "DejaVu Sans", sans-serif; max-width: 1080px;
       margin: 1.5em auto; padding: 0 1em; line-height: 1.45; color: #222; }
h1 { font-size: 1.6em; margin-bottom: 0.3em; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0; }
th, td { border: 1px solid #bbb; padding: 4px 10px; vertical-align: top; }
th { background: #f2f2f2; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
figure { margin: 1em 0; }
figcaption { font-size: 0.92em; color: #444; max-width: 900px; margin-top: 0.3em; }
img.pixels { image-rendering: pixelated; }
.columns { display: flex; font-size: 0.85em; font-weight: 600; text-align: center; }
.note { background: #fff7e0; border-left: 4px solid #e0a800; padding: 0.4em 1em; }
.lead { font-size: 1.05em; }
pre { background: #f7f7f7; padding: 0.6em; font-size: 0.85em; }
"""

#: Images of at most this side are shown enlarged (pixelated) so that 64² samples are legible.
_ENLARGE_UP_TO = 128


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
    axes[1].set_ylabel("fraction of the teacher")
    axes[1].legend()
    axes[1].set_title("sub-network size")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return path.name


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _figure(src: str, caption: str, width: Optional[int] = None, pixels: bool = False,
            columns: Sequence[str] = ()) -> None:
    """An image of ``report/`` with its caption; ``width``: display width in px; ``pixels``:
    enlarge without smoothing; ``columns``: headings above the image's equal-width columns."""
    with tags.figure():
        if columns and width:
            with tags.div(cls="columns", style=f"width: {width}px"):
                for heading in columns:
                    tags.span(heading, style=f"width: {width / len(columns):.0f}px")
        style = f"width: {width}px; max-width: 100%" if width else "max-width: 100%"
        img = tags.img(src=f"report/{src}", style=style, alt=caption.split(".")[0])
        if pixels:
            img["class"] = "pixels"
        tags.figcaption(caption)


def _grid_width(n_columns: int, size: int) -> Optional[int]:
    """Display width of a ``make_grid`` image (padding 2): doubled for small images."""
    return 2 * (n_columns * (size + 2) + 2) if size <= _ENLARGE_UP_TO else None


def difference_sentence(label: str, unit: str, d: Difference, lower_is_better: bool, digits: int = 4) -> str:
    """One sentence stating MGGC minus L1-norm on a metric (``digits`` decimals), its interval,
    and whether the interval excludes 0 (and then which method is better), without claiming more."""
    low, high = d.interval
    text = (f"{label}: MGGC − L1-norm = {d.mean_diff:+.{digits}f}{unit}, {d.level:.0%} {d.method} interval "
            f"[{low:+.{digits}f}, {high:+.{digits}f}]{unit} over {d.n} test pairs")
    if d.excludes_zero():
        better = (d.mean_diff < 0) == lower_is_better
        return text + f". The interval excludes 0: MGGC is {'better' if better else 'worse'} on this measure."
    return text + ". The interval includes 0: no difference between the two methods is shown here."


def _results(cfg: DemoConfig, ev: Evaluation, n_test: int) -> None:
    rows, t = ev.rows, ev.rows["teacher"]
    tags.p(f"Both students are cut from the same teacher to at most {cfg.target_macs:.0%} of its MACs and filled "
           "up to that budget, each by its own channel ranking (MGGC: the agents' keep-logits; L1-norm: filter "
           "L1 norms, Li et al. 2017, a uniform keep-rate per layer). Both are then finetuned identically "
           f"({_plural(cfg.finetune_epochs, 'epoch')}, GAN + L1 + distillation from the teacher, same seed and "
           "data order); "
           "MGGC keeps the discriminator its agents pruned, L1-norm the teacher's full one.")
    with tags.table():
        tags.tr(tags.th("generator"), tags.th(f"MACs at {cfg.size}²"), tags.th("share of teacher MACs"),
                tags.th("parameters"), tags.th("L1 to ground truth (lower is better)"),
                tags.th("PSNR to ground truth (higher is better)"), tags.th("PSNR to teacher output"))
        for name in ("teacher", *STUDENTS):
            r = rows[name]
            to_teacher = f"{r['psnr_to_teacher']:.2f} dB" if "psnr_to_teacher" in r else "—"
            tags.tr(tags.td(name), tags.td(f"{r['macs'] / 1e6:.1f} M", cls="num"),
                    tags.td(f"{r['macs'] / t['macs']:.1%}", cls="num"),
                    tags.td(f"{r['params'] / 1e6:.3f} M", cls="num"), tags.td(f"{r['l1']:.4f}", cls="num"),
                    tags.td(f"{r['psnr']:.2f} dB", cls="num"), tags.td(to_teacher, cls="num"))
    tags.p(f"Quality is the mean over the {n_test} held-out pairs of each image's L1 distance (mean absolute "
           "pixel difference, pixels in [0, 1]) and PSNR (dB, peak 1) to its ground-truth photo.")
    with tags.ul():
        tags.li(difference_sentence("L1 to ground truth", "", ev.differences["l1"], lower_is_better=True))
        tags.li(difference_sentence("PSNR to ground truth", " dB", ev.differences["psnr"], lower_is_better=False,
                                    digits=2))
    tags.p("The intervals resample the test images (one training run per method): they cover which images "
           "were tested, not the spread between training seeds.")


def _not_faster_note(name: str, r: LatencyComparison) -> str:
    ms = {n: 1e3 * r.median_s[n] for n in (name, r.reference)}
    return (f"At batch {r.input_shape[0]} the {name} student is not measurably faster than the {r.reference} "
            f"({ms[name]:.1f} ms vs {ms[r.reference]:.1f} ms; per-round speed-up {r.speedup[name]:.2f}×, "
            f"quartiles {r.speedup_iqr[name][0]:.2f}–{r.speedup_iqr[name][1]:.2f}). Fewer MACs save time only "
            "where convolutions dominate the run time: at these widths the per-layer costs that do not shrink with "
            "the channel count squared (operator dispatch, and the memory-bound normalisation, activation and "
            "padding passes) take most of it, and background load on the machine adds noise. A ratio is "
            "therefore not printed.")


def latency_section(cfg: DemoConfig, ev: Evaluation, timings: List[LatencyComparison]) -> None:
    """The speed section (inside a dominate document): per generator the MAC share, and per
    batch size the median time with quartiles and the speed-up, or a note saying why there is
    none when the student is not measurably faster (:meth:`LatencyComparison.faster`)."""
    first = timings[0]
    tags.p(f"The generators are fully convolutional: trained at {cfg.size}², they run unchanged at "
           f"{cfg.latency_size}², the size where convolution work, rather than per-layer overhead, sets the time "
           f"(at {cfg.size}² these small networks mostly measure overhead).")
    notes = []
    with tags.table():
        header = [tags.th("generator"), tags.th("share of teacher MACs (ideal speed-up)")]
        for r in timings:
            header += [tags.th(f"batch {r.input_shape[0]}: median time (quartiles)"),
                       tags.th(f"batch {r.input_shape[0]}: speed-up")]
        tags.tr(*header)
        for name in ("teacher", *STUDENTS):
            share = ev.rows[name]["macs"] / ev.rows["teacher"]["macs"]
            cells = [tags.td(name), tags.td(f"{share:.1%} ({1 / share:.1f}×)", cls="num")]
            for r in timings:
                q1, q3 = r.iqr_s[name]
                cells.append(tags.td(f"{1e3 * r.median_s[name]:.1f} ms ({1e3 * q1:.1f}–{1e3 * q3:.1f})", cls="num"))
                if name == r.reference:
                    speed = "1 (reference)"
                elif r.faster(name):
                    speed = f"{r.speedup[name]:.2f}×"
                else:
                    speed = "not faster (see note)"
                    notes.append(_not_faster_note(name, r))
                cells.append(tags.td(speed, cls="num"))
            tags.tr(*cells)
    tags.p(f"Runtime: {first.runtime} on {first.device.upper()}, {first.threads} thread(s); input "
           f"{cfg.latency_size}×{cfg.latency_size}. Each of {first.rounds} rounds (after {first.warmup} untimed) "
           "runs every generator once, in an order rotated from round to round, so that background load hits "
           "all alike. Time: median over rounds of one forward pass, first–third quartile in brackets. Speed-up: "
           "median over rounds of the teacher's time divided by the student's in the same round, shown only when "
           "even its first quartile exceeds 1. The ideal speed-up is the MAC ratio.")
    for note in notes:
        tags.p(note, cls="note")


def write_report(out: Path, cfg: DemoConfig, evaluation: Evaluation, timings: List[LatencyComparison],
                 seconds: Dict[str, float], history: List[Dict[str, float]], x: torch.Tensor, y: torch.Tensor,
                 nb: Neighborhoods, outputs: TeacherOutputs, n_samples: int = 8, n_centres: int = 6,
                 precision: Optional[Tuple[float, float]] = None) -> Path:
    """Write ``out/index.html`` and its images; returns the page's path. ``evaluation``: the
    demo's evaluate stage (teacher and :data:`~mggc_plugin.demo.STUDENTS`); ``timings``: one
    latency comparison per batch size; ``seconds``: the stage times. ``precision``: the
    neighbourhoods' precision@k on known classes and its chance level, shown beside the grid."""
    img = out / "report"
    outs = evaluation.outputs
    n = min(n_samples, len(x))
    columns = [x, y, outs["teacher"], *(outs[s] for s in STUDENTS)]
    samples = torch.stack([c[i] for i in range(n) for c in columns])
    translations = _save(make_grid(samples, nrow=len(columns), padding=2, pad_value=1), img / "translations.png")
    picks = torch.linspace(0, len(nb) - 1, min(n_centres, len(nb))).long()
    centres = torch.stack([outputs.tensor(int(j)) for i in picks for j in [int(i)] + nb.indices[i].tolist()])
    grid = _save(make_grid(centres, nrow=nb.k + 1, padding=2, pad_value=1), img / "neighbourhoods.png")
    dynamics = plot_dynamics(history, img / "dynamics.png")
    encoder = nb.metadata.get("encoder", {}).get("name", "encoder")

    doc = dominate.document(title="MGGC demo")
    with doc.head:
        tags.meta(charset="utf-8")
        tags.style(util.raw(CSS))  # raw: the CSS's quotes must not become &quot;
    with doc:
        tags.h1("MGGC demo: compressing a pix2pix generator")
        tags.p("MGGC (Manifold-Guided GAN Compression, AAAI 2024) shrinks a trained image-to-image generator by "
               "removing whole channels. Two small agent networks choose the channels of the generator G and of "
               "its discriminator D in a game: D judges the pruned G's outputs against nearby outputs of the "
               "original G (its neighbourhood on the teacher's output manifold), and a cost term holds G to a "
               "MACs budget. The chosen channels are then removed physically, and the small generator is "
               "finetuned with distillation from the original (the teacher).", cls="lead")
        tags.p(f"This run: a built-in label→photo dataset at {cfg.size}×{cfg.size} pixels, {cfg.n_train} training "
               f"and {len(x)} held-out pairs; teacher {cfg.netG} (ngf {cfg.ngf}); budget {cfg.target_macs:.0%} of "
               "the teacher's MACs. Sections:")
        with tags.ol():
            tags.li(tags.a("Size and quality", href="#results"),
                    ": MGGC's student beside L1-norm filter pruning at the same budget, with a paired interval.")
            tags.li(tags.a("Speed", href="#speed"), ": CPU latency of teacher and students, measured interleaved.")
            tags.li(tags.a("Translations", href="#translations"), ": held-out samples from all three generators.")
            tags.li(tags.a("Neighbourhoods", href="#neighbourhoods"),
                    ": the teacher outputs D sees as real during pruning (Eq. 1).")
            tags.li(tags.a("Pruning dynamics", href="#dynamics"), ": the game's losses and sizes (Fig. 4).")
            tags.li(tags.a("Stage times", href="#stages"), " and ", tags.a("configuration", href="#config"), ".")

        tags.h2("1. Size and quality", id="results")
        _results(cfg, evaluation, len(x))

        tags.h2("2. Speed", id="speed")
        latency_section(cfg, evaluation, timings)

        tags.h2("3. Translations", id="translations")
        _figure(translations, f"{n} held-out pairs. Columns, left to right: label map (input), ground-truth photo, "
                "teacher, MGGC student, L1-norm student. The photo's background and hues are not determined by "
                "the label map, so no generator can match them exactly.",
                width=_grid_width(len(columns), cfg.size), pixels=True,
                columns=("label map", "ground truth", "teacher", *STUDENTS))

        tags.h2("4. Neighbourhoods on the teacher's manifold (Eq. 1)", id="neighbourhoods")
        caption = (f"Each row: a teacher output y' (first column), then its {nb.k} nearest neighbours by cosine "
                   f"similarity of {encoder} embeddings — the real samples the discriminator sees during pruning.")
        if precision is not None:
            caption += (f" Precision@{nb.k} on the dataset's known classes (a neighbour with its centre's "
                           f"dominant object class): {precision[0]:.2f}, against {precision[1]:.2f} for random "
                           "neighbours.")
        _figure(grid, caption, width=_grid_width(nb.k + 1, cfg.size), pixels=True)
        tags.p("All neighbourhoods: ", tags.a("the full neighbourhood page (neighbors/index.html)",
                                                href="neighbors/index.html"), ".")

        tags.h2("5. Pruning dynamics (Fig. 4)", id="dynamics")
        _figure(dynamics, f"The pruning game over its {len(history)} iterations. Left: G's and D's losses and the "
                "MACs term R (0 once G is within budget). Right: the MACs fraction of the G sampled at each step "
                "and D's kept channel fraction. The students above are cut from the agents' final, noise-free "
                "choice.")

        tags.h2("6. Stage times", id="stages")
        with tags.table():
            tags.tr(tags.th("stage"), tags.th("wall time"))
            for name, sec in seconds.items():
                tags.tr(tags.td(name), tags.td(f"{sec:.0f} s", cls="num"))
            tags.tr(tags.td(tags.b("total")), tags.td(tags.b(f"{sum(seconds.values()):.0f} s"), cls="num"))
        tags.p(f"On this machine: {os.cpu_count()} CPU core(s) visible, torch using {torch.get_num_threads()} "
               f"thread(s) for training, device {cfg.device}. Times grow with other load on the machine.")

        tags.h2("7. Configuration", id="config")
        tags.pre("\n".join(f"{k} = {v}" for k, v in asdict(cfg).items()))
    return atomic_write(out / "index.html", lambda tmp: tmp.write_text(doc.render()))
