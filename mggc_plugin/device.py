"""Where the plugin computes, and in which precision: one meaning of ``--device`` and ``amp`` for
every stage and every ``mggc`` command.

- :func:`resolve_device` turns what a user wrote (``cpu``, ``cuda``, ``cuda:N``, ``auto`` or
  nothing) into a ``torch.device``, or refuses it with an :class:`~mggc_plugin.errors.MGGCUserError`
  that names the value and the fix; :func:`add_device_argument` is the ``--device`` flag of every
  ``mggc`` command that computes.
- :func:`compute_precision` is the arithmetic a stage runs in: IEEE float32 by default (TF32
  switched off on CUDA, so that a cache built on a GPU matches one built on the CPU within float32
  rounding), or autocast to bfloat16/float16 when ``amp`` asks for it (:func:`amp_dtype`).
- :func:`synchronize` waits for a device's queued work, for wall-clock timings.
- :func:`rng_states` / :func:`restore_rng_states`: the global RNG states a training step draws
  from (dropout), for saves that resume as the uninterrupted run; :class:`RNGStream`, a seeded
  private stream of them, so that a stage's dropout depends on its seed and not on what the
  process drew before.

Caches never depend on the device: tensors are stored on the CPU in float32 and cache keys hold no
device (the ``amp`` setting, which changes the numbers, is part of them where it applies).
"""
from __future__ import annotations

import argparse
import contextlib
import re
from typing import Iterator, Optional, Tuple, Union

import torch

from .errors import MGGCUserError

#: What a device may be given as: a name (``cpu``, ``cuda``, ``cuda:N``, ``auto``), a
#: ``torch.device``, or ``None`` (= ``auto``).
DeviceLike = Union[str, torch.device, None]

#: The mixed-precision settings :func:`compute_precision` accepts besides ``None`` (float32).
AMP_CHOICES = ("bf16", "fp16")
_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

DEVICE_HELP = ("where to compute: cpu, cuda (the current CUDA device), cuda:N, or auto (default): cuda when "
               "torch sees a CUDA device, else cpu")

_CUDA = re.compile(r"cuda(?::(\d+))?")


def _no_cuda(spec: str) -> MGGCUserError:
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only"
    return MGGCUserError(f"--device {spec}: torch sees no CUDA device here (torch {torch.__version__}, {build} "
                         f"build; check the driver and CUDA_VISIBLE_DEVICES): use --device cpu, or leave --device "
                         f"out to take cuda only when it is available")


def resolve_device(spec: DeviceLike = None) -> torch.device:
    """The ``torch.device`` that ``spec`` names, checked against what torch sees.

    ``None`` and ``"auto"``: ``cuda`` when ``torch.cuda.is_available()``, else ``cpu``.
    ``"cpu"``, ``"cuda"`` (the current CUDA device) and ``"cuda:N"`` are taken as given (case and
    surrounding spaces ignored), as is a ``torch.device`` of type cpu or cuda. Raises
    :class:`MGGCUserError` naming the value and the fix for any other value, for ``cuda``/``cuda:N``
    when torch sees no CUDA device, and for ``cuda:N`` with N at or past the device count."""
    if isinstance(spec, torch.device):
        if spec.type == "cpu":
            return torch.device("cpu")
        text = str(spec)
    elif spec is None:
        text = "auto"
    elif isinstance(spec, str):
        text = spec.strip().lower()
    else:
        raise MGGCUserError(f"device {spec!r}: give a name such as cpu, cuda, cuda:0 or auto")
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    match = _CUDA.fullmatch(text)
    if match is None:
        raise MGGCUserError(f"--device {spec}: unknown device; use cpu, cuda, cuda:N (N = 0, 1, ...) or auto "
                            f"(cuda when available, else cpu)")
    if not torch.cuda.is_available():
        raise _no_cuda(text)
    if match.group(1) is None:
        return torch.device("cuda")
    index, count = int(match.group(1)), torch.cuda.device_count()
    if index >= count:
        raise MGGCUserError(f"--device {text}: torch sees {count} CUDA device{'s' if count != 1 else ''} "
                            f"(cuda:0 to cuda:{count - 1}): pick one of them, or check CUDA_VISIBLE_DEVICES")
    return torch.device("cuda", index)


def add_device_argument(parser: argparse.ArgumentParser, extra_help: str = "") -> None:
    """Add ``--device`` (:data:`DEVICE_HELP`, default ``None`` = auto) to ``parser``. The value is
    kept as written; the command resolves it with :func:`resolve_device` before any work, so a
    bad value is one clear error. ``extra_help`` says what runs there for this command."""
    parser.add_argument("--device", default=None, metavar="DEVICE",
                        help=DEVICE_HELP + (f"; {extra_help}" if extra_help else ""))


def amp_dtype(amp: Optional[str], device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype of ``amp`` on ``device``: ``None`` (float32) for ``None``,
    ``torch.bfloat16`` for ``"bf16"`` (CPU, and CUDA devices that support it), ``torch.float16``
    for ``"fp16"`` (CUDA only: float16 autocast on the CPU is slow and its accuracy is not
    checked here). Raises :class:`MGGCUserError` for another value or an unsupported pair."""
    if amp is None:
        return None
    if amp not in _AMP_DTYPES:
        raise MGGCUserError(f"--amp {amp}: choose one of {', '.join(AMP_CHOICES)}, or leave it out for float32")
    if amp == "fp16" and device.type != "cuda":
        raise MGGCUserError(f"--amp fp16 needs a CUDA device, the device here is {device}: use --amp bf16 "
                            f"(works on the CPU), or leave --amp out for float32")
    if amp == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise MGGCUserError(f"--amp bf16: {device} ({torch.cuda.get_device_name(device)}) has no bfloat16 support: "
                            f"use --amp fp16, or leave --amp out for float32")
    return _AMP_DTYPES[amp]


@contextlib.contextmanager
def exact_float32() -> Iterator[None]:
    """IEEE float32 convolutions and matrix products on CUDA while inside: TF32 off for cuDNN
    (PyTorch's default turns it on for convolutions, ~1e-3 relative error) and for matmuls; the
    previous settings are restored on exit. Nothing changes on the CPU."""
    cudnn = torch.backends.cudnn
    matmul = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with cudnn.flags(enabled=cudnn.enabled, benchmark=cudnn.benchmark, benchmark_limit=cudnn.benchmark_limit,
                         deterministic=cudnn.deterministic, allow_tf32=False):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul


@contextlib.contextmanager
def compute_precision(device: torch.device, amp: Optional[str] = None) -> Iterator[None]:
    """The arithmetic of a stage on ``device``: :func:`exact_float32`, plus ``torch.autocast`` to
    :func:`amp_dtype` when ``amp`` is set (checked first: fp16 on the CPU is refused). Under
    autocast the operations it keeps in float32 are IEEE float32 too."""
    dtype = amp_dtype(amp, device)
    with exact_float32():
        if dtype is None:
            yield
        else:
            with torch.autocast(device_type=device.type, dtype=dtype):
                yield


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (CUDA kernels run asynchronously); nothing on the
    CPU. Call before reading a clock."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rng_states(device: torch.device) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """The global torch RNG state and, on a CUDA ``device``, that device's (else None)."""
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def restore_rng_states(torch_rng: torch.Tensor, cuda_rng: Optional[torch.Tensor], device: torch.device) -> None:
    """Put back what :func:`rng_states` returned (the CUDA state only on a CUDA ``device``)."""
    torch.set_rng_state(torch_rng)
    if cuda_rng is not None and device.type == "cuda":
        torch.cuda.set_rng_state(cuda_rng, device)


class RNGStream:
    """A private stream of the global torch RNG (and of ``device``'s on CUDA), started from
    ``seed``: code run inside :meth:`drawing` (dropout, ``torch.rand``) draws from this stream,
    and the caller's stream is as it was afterwards. Modules such as ``nn.Dropout`` take no
    generator, so swapping the global state in and out is the only way to seed what they draw
    without seeding the whole process. ``torch_rng``/``cuda_rng``: the stream's current states,
    what a save stores and a resume sets."""

    def __init__(self, seed: int, device: torch.device) -> None:
        self.device = device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            self.torch_rng, self.cuda_rng = rng_states(device)

    @contextlib.contextmanager
    def drawing(self) -> Iterator[None]:
        """Draw from this stream inside the block; the caller's stream is restored after it."""
        caller = rng_states(self.device)
        restore_rng_states(self.torch_rng, self.cuda_rng, self.device)
        try:
            yield
        finally:
            self.torch_rng, self.cuda_rng = rng_states(self.device)
            restore_rng_states(*caller, self.device)
