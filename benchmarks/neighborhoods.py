"""Benchmark of MGGC's neighbourhoods (Eq. 1): which encoder E finds same-class neighbours, and
how fast the chunked top-k is.

The image set is synthetic with known classes: one filled shape per image (disk, square,
triangle, plus, ring, star) with random foreground and background colours, position, scale and
rotation, so that raw pixels are a weak baseline — two images of one class share little pixel
content, two images with similar colours share a lot. Reported:

* precision@5 — the fraction of the k = 5 neighbours (``topk_cosine``) that share the centre's
  class — for (a) raw pixels, (b) SwAV (resnet18) trained from scratch on the set, with the
  untrained network as a control, and (c) the frozen FID Inception encoder;
* the wall time and peak extra memory (RSS above the input) of ``topk_cosine`` on 50,000
  random 2,048-d embeddings, measured in a fresh process.

Writes ``benchmarks/results/neighborhoods.json`` and ``.md``. ``--quick`` shrinks everything
(fewer images, epochs and points) for a smoke run of a minute or two.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import torch
from PIL import Image, ImageDraw

from mggc_plugin import encoders
from mggc_plugin.data import pil_to_tensor
from mggc_plugin.fileio import atomic_write, atomic_write_json
from mggc_plugin.neighborhoods.topk import precision_at_k, topk_cosine

CLASSES = ("disk", "square", "triangle", "plus", "ring", "star")
RESULTS = Path(__file__).resolve().parent / "results"


def _polygon(cx: float, cy: float, r: float, angle: float, radii: List[float]) -> List[Tuple[float, float]]:
    n = len(radii)
    return [(cx + r * radii[i] * math.cos(angle + 2 * math.pi * i / n),
             cy + r * radii[i] * math.sin(angle + 2 * math.pi * i / n)) for i in range(n)]


def draw_shape(cls: str, size: int, rng: np.random.Generator) -> Image.Image:
    """One image of class ``cls``: random background and foreground colours (at least 100 apart
    in summed RGB, so the shape is visible), scale 18–40 % of the side, random position and
    rotation."""
    while True:
        bg, fg = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        if np.abs(bg - fg).sum() >= 100:
            break
    image = Image.new("RGB", (size, size), tuple(int(c) for c in bg))
    d = ImageDraw.Draw(image)
    r = size * rng.uniform(0.18, 0.40)
    cx, cy = rng.uniform(r, size - r, 2)
    a = rng.uniform(0, 2 * math.pi)
    colour = tuple(int(c) for c in fg)
    if cls == "disk":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif cls == "ring":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
        d.ellipse([cx - r / 2, cy - r / 2, cx + r / 2, cy + r / 2], fill=tuple(int(c) for c in bg))
    elif cls == "square":
        d.polygon(_polygon(cx, cy, r, a, [1.0] * 4), fill=colour)
    elif cls == "triangle":
        d.polygon(_polygon(cx, cy, r, a, [1.0] * 3), fill=colour)
    elif cls == "star":
        d.polygon(_polygon(cx, cy, r, a, [1.0, 0.4] * 5), fill=colour)
    elif cls == "plus":
        w = r / 3
        for arm in range(2):
            t = a + arm * math.pi / 2
            dx, dy = math.cos(t), math.sin(t)
            px, py = -dy * w, dx * w
            d.polygon([(cx - dx * r + px, cy - dy * r + py), (cx + dx * r + px, cy + dy * r + py),
                       (cx + dx * r - px, cy + dy * r - py), (cx - dx * r - px, cy - dy * r - py)], fill=colour)
    return image


def make_shapes(per_class: int, size: int, seed: int) -> Tuple[List[Image.Image], torch.Tensor]:
    """``per_class`` images of each class (shuffled) and their labels."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(len(CLASSES)), per_class))
    return [draw_shape(CLASSES[c], size, rng) for c in labels], torch.from_numpy(labels)


def _embed(encoder, images: torch.Tensor, batch: int = 64) -> torch.Tensor:
    return encoders.embed_all(encoder, lambda i: images[i], len(images), batch, progress=False)


def topk_timing(n: int, dim: int, k: int) -> Dict[str, float]:
    """Time and peak extra RSS of ``topk_cosine`` on n random dim-d embeddings, in a fresh
    process so the peak belongs to this call alone. Also the fp32 matmul speed just before and
    after, and the time the N²·D/2 multiply-adds alone take at that speed: on a shared machine
    the wall time moves with other load, the ratio of the two much less."""
    code = f"""
import json, time, torch
from mggc_plugin.neighborhoods.topk import precision_at_k, topk_cosine
def status_mb(key):  # VmHWM, not ru_maxrss: the latter keeps the forking parent's peak across exec
    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith(key)) / 1024
torch.manual_seed(0)
x = torch.randn({n}, {dim})
topk_cosine(x[:2000], {k})  # warm-up: thread pool, allocator
def matmul_gflops():  # the machine's fp32 matmul speed right now, on one 1024-row block
    best = min(_block_seconds() for _ in range(2))
    return 2 * 1024 * {n} * {dim} / best / 1e9
def _block_seconds():
    t = time.perf_counter()
    x[:1024] @ x.T
    return time.perf_counter() - t
before = matmul_gflops()
base = status_mb('VmRSS')
t = time.perf_counter()
topk_cosine(x, {k})
dt = time.perf_counter() - t
peak = status_mb('VmHWM')
after = matmul_gflops()
print(json.dumps({{"seconds": dt, "peak_extra_mb": peak - base, "threads": torch.get_num_threads(),
                  "matmul_gflops_before_after": [before, after],
                  "matmul_only_seconds": {n} * {n} * {dim} / ((before + after) / 2 * 1e9)}}))
"""
    env = {**os.environ, "OMP_NUM_THREADS": "2"}  # the 2 cores the target is stated for
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small smoke run")
    p.add_argument("--per_class", type=int, help="images per class (default 150; quick 40)")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--epochs", type=int, help="SwAV epochs (default 15; quick 3)")
    p.add_argument("--threads", type=int, help="torch threads for the encoders (default: torch's); "
                   "the top-k timing always uses 2")
    p.add_argument("--topk_n", type=int, help="points for the top-k timing (default 50000; quick 10000)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    per_class = args.per_class or (40 if args.quick else 150)
    epochs = args.epochs if args.epochs is not None else (3 if args.quick else 15)
    if args.threads:
        torch.set_num_threads(args.threads)
    topk_n = args.topk_n or (10000 if args.quick else 50000)
    k = 5
    torch.manual_seed(args.seed)
    load_before = os.getloadavg()

    pil, labels = make_shapes(per_class, args.size, args.seed)
    images = torch.stack([pil_to_tensor(im) for im in pil])
    rows: List[Dict[str, object]] = []

    def record(name: str, emb: torch.Tensor, seconds: float, **extra: object) -> None:
        idx, _ = topk_cosine(emb, k)
        rows.append({"encoder": name, "dim": emb.shape[1], "precision_at_5": precision_at_k(idx, labels),
                     "seconds": round(seconds, 1), **extra})
        print(f"{name}: precision@5 {rows[-1]['precision_at_5']:.3f} ({seconds:.0f} s)", flush=True)

    t = time.perf_counter()
    record("raw pixels", images.flatten(1), time.perf_counter() - t)

    # The official hyper-parameters (encoders.SwAVConfig), scaled down only where CPU minutes
    # force it: resnet18, crops of the image size and half of it, 2 + 4 crops, few epochs.
    config = encoders.SwAVConfig(arch="resnet18", size_crops=(args.size, args.size // 2), nmb_crops=(2, 4),
                                 batch_size=64, epochs=epochs, warmup_epochs=min(2, epochs), seed=args.seed)
    torch.manual_seed(args.seed)
    net = encoders.SwAVNet(config.arch, config.feat_dim, config.hidden_mlp, config.n_prototypes)
    t = time.perf_counter()
    record("SwAV resnet18, untrained (control)", _embed(encoders.SwAVEncoder(net, args.size), images),
           time.perf_counter() - t)
    t = time.perf_counter()
    losses = encoders.train_swav(net, pil, config)
    train_s = time.perf_counter() - t
    n_it = len(losses) // max(1, epochs)
    first, last = float(np.mean(losses[:n_it])), float(np.mean(losses[-n_it:]))
    record(f"SwAV resnet18, from scratch ({epochs} epochs, {len(losses)} steps)",
           _embed(encoders.SwAVEncoder(net, args.size), images), time.perf_counter() - t,
           loss_first_epoch=round(first, 3), loss_last_epoch=round(last, 3),
           ln_prototypes=round(math.log(config.n_prototypes), 3), train_seconds=round(train_s, 1),
           note=f"loss {first:.3f} → {last:.3f} (ln K = {math.log(config.n_prototypes):.3f})")

    try:
        inception = encoders.InceptionEncoder()
    except ModuleNotFoundError as err:
        print(f"Inception skipped: {err}")
    else:
        t = time.perf_counter()
        record("FID Inception (frozen)", _embed(inception, images, 32), time.perf_counter() - t)

    print(f"top-k on {topk_n} × 2048 ...", flush=True)
    timing = topk_timing(topk_n, 2048, k)
    print(f"top-k: {timing['seconds']:.1f} s (matmul alone {timing['matmul_only_seconds']:.1f} s), peak extra "
          f"{timing['peak_extra_mb']:.0f} MB", flush=True)

    result = {
        "dataset": {"classes": list(CLASSES), "per_class": per_class, "size": args.size, "n": len(pil),
                    "seed": args.seed},
        "k": k, "swav_config": config.to_dict(), "precision_at_5": rows,
        "topk": {"n": topk_n, "dim": 2048, "k": k, **timing},
        "machine": {"cpus": os.cpu_count(), "threads": torch.get_num_threads(), "torch": torch.__version__,
                    "python": platform.python_version(),
                    "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "quick": args.quick,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / "neighborhoods.json", result)
    lines = [f"# Neighbourhoods (Eq. 1) benchmark{' (quick)' if args.quick else ''}", "",
             f"Synthetic shapes: {len(CLASSES)} classes × {per_class} images, {args.size}², random colours, "
             f"position, scale, rotation. precision@5 = share of the 5 cosine neighbours with the centre's class "
             f"(chance {1 / len(CLASSES):.3f}).", "",
             "| encoder | dim | precision@5 | seconds | note |", "|---|---:|---:|---:|---|"]
    lines += [f"| {r['encoder']} | {r['dim']} | {r['precision_at_5']:.3f} | {r['seconds']} | {r.get('note', '')} |"
              for r in rows]
    gf = timing["matmul_gflops_before_after"]
    lines += ["", f"topk_cosine, N = {topk_n}, D = 2048, k = {k}, {timing['threads']} threads: "
              f"{timing['seconds']:.1f} s, peak extra memory {timing['peak_extra_mb']:.0f} MB. "
              f"The N²·D/2 multiply-adds alone would take {timing['matmul_only_seconds']:.1f} s at the fp32 matmul "
              f"speed measured around it ({gf[0]:.0f} / {gf[1]:.0f} GFLOPS before / after); "
              f"load average before / after the benchmark: {load_before[0]:.1f} / "
              f"{result['machine']['loadavg_after'][0]:.1f}.", ""]
    atomic_write(RESULTS / "neighborhoods.md", lambda tmp: tmp.write_text("\n".join(lines)))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
