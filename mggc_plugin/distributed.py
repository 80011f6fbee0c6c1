"""Several processes through ``torch.distributed``: what every distributed stage of the plugin needs,
in one place.

The plugin does not start processes; ``torchrun`` (or ``torch.multiprocessing.spawn``, or
upstream 2025's ``train.py`` under torchrun) does, and :func:`init_from_env` joins the group it
describes (NCCL on CUDA, gloo on the CPU). Every function here is a no-op for a single process
(no process group, or a group of one), so a stage calls them unconditionally:

- :func:`world` — this process's rank and the number of processes.
- :func:`shard` — this rank's equal share of a batch (the game draws one global batch per step
  and every rank plays its share, so N ranks play the game of one process on the whole batch).
- :func:`average_gradients_` — the mean of every rank's gradients, in place (PyTorch's own
  all-reduce; the pruning agents take no batch input, so DDP's wrapper, which hooks a module's
  ``forward``, has nothing to wrap there; the finetuner wraps its networks in DDP itself).
- :func:`broadcast_module_` — rank 0's parameters and buffers on every rank, as DDP does at
  construction.
- :func:`block`, :func:`gather_objects` — work split into contiguous blocks and collected again
  (the neighbourhood stage); :func:`mean_over_ranks` — logs averaged.
- :func:`is_main` — only rank 0 writes files; :func:`from_main` — a decision rank 0 takes for all;
  :func:`main_first` runs a block on rank 0 before the others (a cache rank 0 builds and the others
  then read); :func:`barrier`; :func:`print_main` — a message said once, by rank 0.
"""
from __future__ import annotations

import contextlib
import datetime
import os
from typing import Any, Callable, Dict, Iterable, Iterator, List, Tuple, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from .errors import MGGCUserError

T = TypeVar("T")


def active() -> bool:
    """Whether a process group of more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world() -> Tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` without a process group."""
    if not active():
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def is_main() -> bool:
    """Whether this process writes files: rank 0, or the only process."""
    return world()[0] == 0


def launched_by_torchrun() -> bool:
    """Whether torchrun (or another launcher setting ``WORLD_SIZE`` > 1) started this process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: torch.device, timeout_s: float = 1800) -> torch.device:
    """Join the process group torchrun describes (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ...)
    and return this rank's device: ``cuda:<LOCAL_RANK>`` with NCCL when ``device`` is CUDA, the
    CPU with gloo otherwise. Without torchrun (``WORLD_SIZE`` unset or 1) it does nothing and
    returns ``device``; with a group already running (upstream 2025 starts one) it joins nothing."""
    if not launched_by_torchrun():
        return device
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise MGGCUserError(f"LOCAL_RANK {local_rank}: torch sees {torch.cuda.device_count()} CUDA devices; "
                                f"start at most that many processes per node (torchrun --nproc_per_node)")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                timeout=datetime.timedelta(seconds=timeout_s))
    return device


def shard(batch: torch.Tensor) -> torch.Tensor:
    """This rank's contiguous share of ``batch`` along its first dimension (the whole batch for a
    single process). Refuses a batch the ranks cannot share equally: with unequal shares the mean
    of the ranks' gradients would not be the gradient of the whole batch's mean loss."""
    rank, size = world()
    if size == 1:
        return batch
    if len(batch) % size:
        raise MGGCUserError(f"a batch of {len(batch)} cannot be shared by {size} processes: use a batch size that "
                            f"is a multiple of the number of processes")
    n = len(batch) // size
    return batch[rank * n:(rank + 1) * n]


def average_gradients_(params: Iterable[torch.Tensor]) -> None:
    """Replace every parameter's ``.grad`` by its mean over the ranks, in one all-reduce of all
    the gradients laid end to end (as DDP's buckets: measured on the agents' 56 tensors, 1.7 M
    values, gloo on 2 CPU processes, one reduction per tensor took 92 ms, one buffer 6 ms). A
    missing gradient counts as zero, so every rank reduces the same buffer."""
    params = list(params)
    if not active() or not params:
        return
    grads = []
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        grads.append(p.grad)
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat.div_(dist.get_world_size())
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def broadcast_module_(module: nn.Module) -> None:
    """Copy rank 0's parameters and buffers into ``module`` on every rank, in place."""
    if not active():
        return
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=0)


def mean_over_ranks(values: Dict[str, float]) -> Dict[str, float]:
    """The mean of every value over the ranks (the same keys on every rank)."""
    if not active():
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    t = (t / dist.get_world_size()).cpu()
    return {k: float(v) for k, v in zip(keys, t)}


def gather_objects(obj: T) -> List[T]:
    """Every rank's ``obj``, in rank order, on every rank (``[obj]`` for a single process)."""
    if not active():
        return [obj]
    out: List[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def print_main(*args: Any, **kwargs: Any) -> None:
    """``print`` on rank 0 only (every rank runs the same code and would say the same)."""
    if is_main():
        print(*args, **kwargs)


def barrier() -> None:
    """Wait until every rank has reached this point."""
    if active():
        dist.barrier()


def from_main(fn: Callable[[], T]) -> T:
    """``fn()`` computed on rank 0 alone and handed to every rank (a decision that reads files
    rank 0 is about to change, such as whether a cache is complete)."""
    if not active():
        return fn()
    box: List[Any] = [fn() if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Run the block on rank 0, then on the other ranks: a cache rank 0 builds inside the block is
    there, complete, when the others enter it (they find and reuse it). If rank 0 fails inside
    the block the others wait until the group's timeout; torchrun stops them sooner."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def block(n: int) -> range:
    """This rank's contiguous block of ``range(n)``: the ranks' blocks differ in length by at most
    one and, in rank order, make up ``range(n)``."""
    rank, size = world()
    return range(rank * n // size, (rank + 1) * n // size)
