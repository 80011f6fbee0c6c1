"""What mixed precision (``amp``) does to Eq. 1's neighbour lists, and to the embedding time.

The same teacher outputs are embedded twice by the same encoder — in float32 and under autocast
(``--amp``, default bf16, the one that runs on the CPU) — and Eq. 1's top-k
(:func:`~mggc_plugin.neighborhoods.topk.topk_cosine`) is taken of each. Reported: the fraction
of top-k lists that are identical (same neighbours in the same order) and identical as sets,
the mean overlap@k (shared neighbours / k), the embeddings' relative error (‖e_amp − e‖ / ‖e‖,
median and max over images), and the embedding wall time of each precision (synchronised on
CUDA; one warm-up batch first, untimed).

Images: the first ``--n`` teacher outputs of an existing cache (``--outputs``, a
``teacher_outputs`` folder written by ``build_teacher_outputs``; default: the facades pix2pix
benchmark's) when it is readable, else the demo's synthetic label→photo targets. Nothing is
written unless ``--out`` names a JSON file.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import torch

from mggc_plugin import synthetic
from mggc_plugin.device import AMP_CHOICES, resolve_device, synchronize
from mggc_plugin.encoders import InceptionEncoder, SwAVEncoder, SwAVNet, embed_all
from mggc_plugin.fileio import atomic_write_json
from mggc_plugin.neighborhoods.cache import TeacherOutputs
from mggc_plugin.neighborhoods.topk import topk_cosine

DEFAULT_OUTPUTS = Path.home() / ".cache/mggc-plugin/benchmarks/pix2pix-cache-all/teacher_outputs"


def load_images(outputs: Path, n: int) -> Tuple[List[torch.Tensor], str]:
    """``n`` images in [-1, 1] and where they came from."""
    try:
        cache = TeacherOutputs(outputs)
        count = min(n, len(cache))
        return [cache.tensor(i) for i in range(count)], f"the first {count} teacher outputs in {outputs}"
    except (FileNotFoundError, PermissionError) as err:
        pairs = synthetic.make_pairs(n, 64, 0)
        return list(pairs.B), f"{n} synthetic demo targets at 64² ({outputs} unreadable: {err})"


def embed_timed(encoder: Any, images: List[torch.Tensor], batch: int) -> Tuple[torch.Tensor, float]:
    """E' of ``images`` and the seconds it took (after one untimed warm-up batch)."""
    encoder.embed(torch.stack(images[:batch]))
    synchronize(encoder.device)
    start = time.perf_counter()
    emb = embed_all(encoder, images.__getitem__, len(images), batch, progress=False)
    synchronize(encoder.device)
    return emb, time.perf_counter() - start


def compare(ref: torch.Tensor, amp: torch.Tensor, k: int) -> Dict[str, float]:
    """How far the top-k lists of ``amp`` embeddings are from those of ``ref``."""
    i_ref, _ = topk_cosine(ref, k)
    i_amp, _ = topk_cosine(amp, k)
    overlap = [len(set(a.tolist()) & set(b.tolist())) / k for a, b in zip(i_ref, i_amp)]
    rel = (amp - ref).norm(dim=1) / ref.norm(dim=1)
    return {"identical_lists": float((i_ref == i_amp).all(dim=1).float().mean()),
            "identical_sets": float(sum(o == 1.0 for o in overlap) / len(overlap)),
            "mean_overlap": float(sum(overlap) / len(overlap)),
            "rel_error_median": float(rel.median()), "rel_error_max": float(rel.max())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outputs", type=Path, default=DEFAULT_OUTPUTS)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--batch", type=int, default=25)
    parser.add_argument("--device", default=None)
    parser.add_argument("--amp", choices=AMP_CHOICES, default="bf16")
    parser.add_argument("--encoders", nargs="+", choices=("inception", "resnet18"), default=["inception"],
                        help="resnet18: a seeded, untrained SwAV resnet18 at 224² (checks the arithmetic of the "
                             "SwAV path; not a trained E)")
    parser.add_argument("--out", type=Path, help="JSON file for the result")
    args = parser.parse_args()
    device = resolve_device(args.device)
    images, source = load_images(args.outputs, args.n)
    builders: Dict[str, Callable[[Any], Any]] = {
        "inception": lambda amp: InceptionEncoder(device, amp),
        "resnet18": lambda amp: SwAVEncoder(_seeded_resnet18(), 224, device=device, amp=amp),
    }
    rows = []
    for name in args.encoders:
        ref, t_ref = embed_timed(builders[name](None), images, args.batch)
        low, t_low = embed_timed(builders[name](args.amp), images, args.batch)
        rows.append({"encoder": name, "float32_s": t_ref, f"{args.amp}_s": t_low, **compare(ref, low, args.k)})
    print(f"{len(images)} images ({source}); device {device}, {torch.get_num_threads()} thread(s); "
          f"top-{args.k}, {args.amp} autocast against float32")
    print(f"| encoder | identical lists | identical sets | mean overlap@{args.k} | rel. error median / max | "
          f"float32 (s) | {args.amp} (s) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['encoder']} | {r['identical_lists']:.3f} | {r['identical_sets']:.3f} | {r['mean_overlap']:.3f} | "
              f"{r['rel_error_median']:.2e} / {r['rel_error_max']:.2e} | {r['float32_s']:.1f} | "
              f"{r[args.amp + '_s']:.1f} |")
    if args.out:
        atomic_write_json(args.out, {"source": source, "device": str(device), "threads": torch.get_num_threads(),
                                     "k": args.k, "amp": args.amp, "rows": rows}, indent=2)
        print(json.dumps({"wrote": str(args.out)}))


def _seeded_resnet18() -> SwAVNet:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return SwAVNet("resnet18", 128, 512, 64)


if __name__ == "__main__":
    main()
