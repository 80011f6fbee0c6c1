"""Inference latency of a generator."""
from __future__ import annotations

import statistics
import time
from typing import Sequence

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
