"""Inference latency of a generator: one network alone (:func:`latency`), or several compared
fairly (:func:`compare_latency`), beside a probe of how much of its core the host leaves the
process (:class:`HostProbe`)."""
from __future__ import annotations

import functools
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn


def latency(model: nn.Module, input_shape: Sequence[int], runs: int = 10, warmup: int = 3,
            device: str = "cpu") -> float:
    """Median wall time in seconds of one forward pass of ``model`` (eval mode, no grad) on a
    random input of ``input_shape``, over ``runs`` timed passes after ``warmup`` untimed ones.
    On CUDA each pass is synchronised so the time covers the kernels, not just their launch."""
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs={runs}, warmup={warmup}: need runs >= 1 and warmup >= 0")
    model = model.to(device).eval()
    x = torch.randn(*input_shape, device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    times = []
    with torch.no_grad():
        for i in range(warmup + runs):
            sync()
            start = time.perf_counter()
            model(x)
            sync()
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def _quartiles(values: Sequence[float]) -> Tuple[float, float]:
    q1, q3 = np.percentile(np.asarray(values, dtype=np.float64), [25, 75])
    return float(q1), float(q3)


@dataclass(frozen=True)
class LatencyComparison:
    """What :func:`compare_latency` measured. ``times_s[name]``: the seconds of one forward pass
    of each timed round; ``median_s`` and ``iqr_s`` (first and third quartile) summarise them.
    ``speedup[name]``: the median over rounds of ``t_reference / t_name`` within the same round
    (> 1: faster than the reference), with its quartiles in ``speedup_iqr``; the reference's own
    is 1. ``threads``: the torch intra-op threads used; ``runtime``: what ran the networks;
    ``warm_s``: how long each model ran untimed, back to back, before each timed pass (0: timed
    cold, right after another model's pass)."""

    input_shape: Tuple[int, ...]
    threads: int
    rounds: int
    warmup: int
    device: str
    reference: str
    runtime: str
    times_s: Dict[str, List[float]]
    median_s: Dict[str, float]
    iqr_s: Dict[str, Tuple[float, float]]
    speedup: Dict[str, float]
    speedup_iqr: Dict[str, Tuple[float, float]]
    warm_s: float = 0.0

    def speedup_over(self, name: str, reference: str) -> float:
        """``speedup[name]`` against another of the timed networks: the median over rounds of
        ``t_reference / t_name`` within the same round."""
        return statistics.median(r / t for r, t in zip(self.times_s[reference], self.times_s[name]))

    def faster(self, name: str) -> bool:
        """Whether ``name`` is measurably faster than the reference: even the first quartile of
        its per-round speed-ups exceeds 1."""
        return self.speedup_iqr[name][0] > 1.0


def compare_latency(models: Mapping[str, nn.Module], input_shape: Sequence[int], rounds: int = 10,
                    warmup: int = 2, threads: Optional[int] = 1, reference: Optional[str] = None,
                    device: str = "cpu", warm_s: float = 0.0) -> LatencyComparison:
    """Time the forward passes of ``models`` (eval mode, no grad, one random input of
    ``input_shape`` shared by all) *interleaved*: every round runs each model once, in an order
    rotated from round to round, so that background load and clock changes hit all models alike
    instead of whichever happened to be timed during them. ``warmup`` untimed rounds come first.
    The speed-up of a model is the median over rounds of the reference's time divided by its
    own in the same round (``reference``: default the first model).

    ``warm_s``: before each timed pass, the model runs untimed passes back to back for at least
    this many seconds (at least one pass), so that it is timed warm, as a deployed generator runs
    frame after frame. With 0 each pass is timed right after another model's, which penalises
    small models: their caches (and whatever else the host shares) refill over several passes
    after another network's, or after a pause, while a large model's never held it
    (``benchmarks/results/warm_timing.md``). That refill takes passes whose count depends on the
    model, which is why this is a duration and not a pass count.

    ``threads``: torch's intra-op threads during the timing (``torch.set_num_threads``; None
    leaves the current setting); the previous setting and every model's train/eval mode are
    restored afterwards. On CUDA each pass is synchronised. Written here rather than with
    ``torch.utils.benchmark``, whose ``Timer`` measures one statement at a time, in blocks, which
    is exactly what lets a burst of background load land on one model only. Raises ValueError for
    no model, an unknown ``reference``, ``rounds < 1`` or ``warmup < 0``."""
    names = list(models)
    if not names:
        raise ValueError("no models to time: give a mapping name -> network")
    reference = names[0] if reference is None else reference
    if reference not in models:
        raise ValueError(f"reference {reference!r} is not among the models {names}")
    if rounds < 1 or warmup < 0:
        raise ValueError(f"rounds={rounds}, warmup={warmup}: need rounds >= 1 and warmup >= 0")
    if threads is not None and threads < 1:
        raise ValueError(f"threads={threads}: give at least 1 (or None to keep torch's setting)")
    if warm_s < 0:
        raise ValueError(f"warm_s={warm_s}: give the seconds of untimed passes before each timed one, at least 0")
    sync: Callable[[], None] = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    # A local generator: timing must not move the caller's global RNG.
    x = torch.randn(*input_shape, generator=torch.Generator().manual_seed(0)).to(device)
    modes = {name: net.training for name, net in models.items()}
    previous_threads = torch.get_num_threads()
    times: Dict[str, List[float]] = {name: [] for name in names}
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        nets = {name: net.to(device).eval() for name, net in models.items()}
        with torch.no_grad():
            for r in range(warmup + rounds):
                shift = r % len(names)
                for name in names[shift:] + names[:shift]:
                    run_for(functools.partial(_synced_pass, nets[name], x, sync), warm_s)
                    sync()
                    start = time.perf_counter()
                    nets[name](x)
                    sync()
                    if r >= warmup:
                        times[name].append(time.perf_counter() - start)
        used_threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(previous_threads)
        for name, net in models.items():
            net.train(modes[name])
    ratios = {name: [t_ref / t for t_ref, t in zip(times[reference], times[name])] for name in names}
    return LatencyComparison(
        input_shape=tuple(int(s) for s in input_shape), threads=used_threads, rounds=rounds, warmup=warmup,
        device=device, reference=reference, runtime=f"PyTorch {torch.__version__} eager, float32",
        times_s=times, median_s={n: statistics.median(t) for n, t in times.items()},
        iqr_s={n: _quartiles(t) for n, t in times.items()},
        speedup={n: statistics.median(r) for n, r in ratios.items()},
        speedup_iqr={n: _quartiles(r) for n, r in ratios.items()}, warm_s=warm_s)


class HostProbe(nn.Module):
    """A fixed CPU workload, timed beside networks to show the host's load (a module, so that
    :func:`compare_latency` times it in the same rounds). Its forward pass returns its input
    and runs ``ops`` products of two resident ``size``×``size`` matrices: no memory traffic, and
    at 64×64 the time is mostly the per-operation dispatch, scalar work of the kind that weighs
    more in a narrow network's pass than in a wide one's. On a shared 2-core AMD EPYC VM its
    medians over 10 rounds ranged 1.45–2.07 ms in four processes, 1.51–2.06 ms within one, and the
    share of the MAC ratio that a unet_256 student at 10 % of the MACs reached against its
    teacher (OpenVINO bfloat16) fell as it slowed (Pearson's r −0.62 over 100 blocks,
    ``benchmarks/results/host_load_epyc_unet10.md``); an ad hoc reading of ``/proc/stat`` during
    such slow spells counted almost no steal time, so the host took the core's throughput, not
    its time slices (a busy hyperthread sibling, presumably; not verified)."""

    matrix: torch.Tensor

    def __init__(self, ops: int = 200, size: int = 64):
        super().__init__()
        if ops < 1 or size < 1:
            raise ValueError(f"ops={ops}, size={size}: give at least one product of at least 1×1 matrices")
        self.ops = ops
        self.register_buffer("matrix", torch.randn(size, size, generator=torch.Generator().manual_seed(0)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.ops):
            torch.mm(self.matrix, self.matrix)
        return x


def _synced_pass(net: nn.Module, x: torch.Tensor, sync: Callable[[], None]) -> None:
    net(x)
    sync()


def run_for(step: Callable[[], object], seconds: float) -> None:
    """Call ``step`` back to back until ``seconds`` have passed: at least once when ``seconds``
    is positive, not at all when it is 0 (the warm-up of :func:`compare_latency`'s ``warm_s``)."""
    if seconds <= 0:
        return
    end = time.perf_counter() + seconds
    while True:
        step()
        if time.perf_counter() >= end:
            return
