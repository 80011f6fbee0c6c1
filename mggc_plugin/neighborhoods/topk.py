"""Eq. 1's top-k: for every embedding e'_i, the k other embeddings with the highest cosine
similarity, exact and in memory linear in N (:func:`topk_cosine`)."""
from __future__ import annotations

from typing import Tuple

import torch

from ..device import DeviceLike, exact_float32, resolve_device


def _canonical_topk(values: torch.Tensor, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    # Top-k of every row, most similar first, ties broken by the lower column: a total order,
    # so chunked and brute-force results agree exactly. torch.topk alone picks arbitrarily
    # among equal values, hence the repair of rows whose k-th and (k+1)-th values tie.
    kk = min(k + 1, values.shape[1])
    v, pos = torch.topk(values, kk, dim=1)
    tied = (v[:, k] == v[:, k - 1]) if kk > k else torch.zeros(len(v), dtype=torch.bool, device=v.device)
    v, pos = v[:, :k], pos[:, :k]
    v, pos = _sort_canonical(v, pos)
    for r in tied.nonzero().flatten().tolist():
        row, kth = values[r], v[r, k - 1]
        greater = (row > kth).nonzero().flatten()
        equal = (row == kth).nonzero().flatten()[: k - len(greater)]
        sel = torch.cat([greater, equal])
        v[r], pos[r] = _sort_canonical(row[sel][None], sel[None])
    return v, pos


def _sort_canonical(v: torch.Tensor, idx: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    order = idx.argsort(dim=1)
    v, idx = v.gather(1, order), idx.gather(1, order)
    order = v.argsort(dim=1, descending=True, stable=True)
    return v.gather(1, order), idx.gather(1, order)


def _merge(best_v: torch.Tensor, best_i: torch.Tensor, v: torch.Tensor, i: torch.Tensor,
           k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    # The canonical top-k of a union is the canonical top-k of the parts' canonical top-k's.
    mv, mi = _sort_canonical(torch.cat([best_v, v], 1), torch.cat([best_i, i], 1))
    return mv[:, :k], mi[:, :k]


def _check_embeddings(embeddings: torch.Tensor, k: int) -> torch.Tensor:
    if not isinstance(embeddings, torch.Tensor) or embeddings.dim() != 2:
        shape = tuple(embeddings.shape) if isinstance(embeddings, torch.Tensor) else type(embeddings).__name__
        raise ValueError(f"embeddings must be an N×D tensor, got {shape}")
    if not embeddings.is_floating_point():
        raise ValueError(f"embeddings must be floating point, got {embeddings.dtype}: convert with .float()")
    n = embeddings.shape[0]
    if k < 1:
        raise ValueError(f"k={k}: need at least one neighbour (the paper uses k=5)")
    if n <= k:
        raise ValueError(f"k={k} neighbours need at least k+1={k + 1} embeddings (a point is not its own "
                         f"neighbour), got N={n}: lower k or add images")
    x = embeddings.detach()
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    if not torch.isfinite(x).all():
        raise ValueError(f"embeddings contain NaN or infinity (row {int((~torch.isfinite(x)).any(1).nonzero()[0])})")
    return x.contiguous()


def topk_cosine(embeddings: torch.Tensor, k: int = 5, chunk_size: int = 1024,
                device: DeviceLike = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Eq. 1: for every row e'_i of ``embeddings`` (N×D float), the ``k`` rows j ≠ i with the
    highest cosine similarity e'_i·e'_j / (‖e'_i‖‖e'_j‖).

    Returns ``(indices, similarities)``, both N×k, most similar first; equal similarities are
    ordered by index, so the result is unique and equals a brute-force computation. The paper
    writes the numerator as an absolute value (‖e'_iᵀe'_j‖); we rank by the signed cosine, the
    usual and intended meaning (a vector is not similar to its opposite).

    Each pair is computed once: row chunk c is multiplied with the columns from c's start on,
    and that block serves both c's rows and (transposed) the later rows, so the work is N²·D/2
    multiply-adds and the extra memory ~2·chunk_size·N floats (plus 17·N·k candidates), linear
    in N. N = 50,000 × D = 2,048 takes about 37 s on 2 idle CPU cores (80 % of it the matrix
    product) and 0.7 GB extra (benchmarks/results/neighborhoods.md). Computation is in
    float64 for float64 input and float32 otherwise. Raises ``ValueError`` for N ≤ k, for a
    zero row (cosine undefined) and for NaN/inf.

    ``device``: where to compute (``None``: where ``embeddings`` are; otherwise
    :func:`~mggc_plugin.device.resolve_device`), in IEEE float32 (no TF32) for float32 input; the
    result is on the CPU. Two devices sum the dot products in different orders, so their
    similarities differ by float32 rounding (~1e-7 relative) and their lists only where two
    candidates tie within that (the tie's order is then the rounding's choice).
    """
    x = _check_embeddings(embeddings, k)
    if device is not None:
        x = x.to(resolve_device(device))
    if chunk_size < 1:
        raise ValueError(f"chunk_size={chunk_size}: must be positive")
    n = x.shape[0]
    norms = torch.linalg.vector_norm(x, dim=1)
    zero = (norms == 0).nonzero().flatten()
    if len(zero):
        raise ValueError(f"embedding row {int(zero[0])} is all zeros: its cosine similarity (Eq. 1) is undefined "
                         "— check the encoder's output for that image")
    if not torch.isfinite(norms).all():
        raise ValueError("embedding norms overflow: rescale the embeddings")
    best_v = torch.full((n, k), float("-inf"), dtype=x.dtype, device=x.device)
    best_i = torch.full((n, k), n, dtype=torch.long, device=x.device)
    # Candidates that a chunk finds for the later rows wait here and are merged in bulk every
    # `slots` chunks: re-sorting all later rows after every chunk costs as much as the top-k.
    slots = 16
    pend_v = torch.full((n, slots * k), float("-inf"), dtype=x.dtype, device=x.device)
    pend_i = torch.full((n, slots * k), n, dtype=torch.long, device=x.device)
    used, pend_from = 0, n

    def flush() -> None:
        best_v[pend_from:], best_i[pend_from:] = _merge(best_v[pend_from:], best_i[pend_from:],
                                                        pend_v[pend_from:], pend_i[pend_from:], k)
        pend_v[pend_from:] = float("-inf")
        pend_i[pend_from:] = n

    for start in range(0, n, chunk_size):
        end = min(n, start + chunk_size)
        with exact_float32():
            sim = x[start:end] @ x[start:].T
        # Divide by the product of the norms (commutative, so sim(i, j) == sim(j, i) bitwise).
        sim.div_(norms[start:end, None] * norms[None, start:])
        rows = torch.arange(end - start, device=x.device)
        sim[rows, rows] = float("-inf")  # j ≠ i
        v, pos = _canonical_topk(sim, min(k, sim.shape[1]))
        best_v[start:end], best_i[start:end] = _merge(best_v[start:end], best_i[start:end], v, pos + start, k)
        if end < n:
            v, pos = _canonical_topk(sim[:, end - start:].T, min(k, end - start))
            cols = slice(used * k, used * k + v.shape[1])
            pend_v[end:, cols], pend_i[end:, cols] = v, pos + start
            used, pend_from = used + 1, min(pend_from, end)
            if used == slots:
                flush()
                used, pend_from = 0, n
    if used:
        flush()
    return best_i.cpu(), best_v.cpu()


def precision_at_k(indices: torch.Tensor, labels: torch.Tensor) -> float:
    """How often a neighbour shares its centre's label: the mean over samples i and their
    neighbours j ∈ ``indices[i]`` (N×k, e.g. from :func:`topk_cosine`) of ``labels[j] ==
    labels[i]`` — the check of Eq. 1's neighbourhoods on data whose classes are known."""
    if indices.dim() != 2 or len(indices) != len(labels):
        raise ValueError(f"indices {tuple(indices.shape)} and labels ({len(labels)}) must describe the same N "
                         "samples: indices is N×k")
    return (labels[indices] == labels[:, None]).float().mean().item()
