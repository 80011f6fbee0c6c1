"""Atomic file writes and content digests: every file the plugin writes goes through
:func:`atomic_write`; caches recognise their inputs by the digests below."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Tuple, Union

import torch

from . import distributed
from .errors import MGGCUserError

PathLike = Union[str, Path]


def atomic_write(path: PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path`` and move it into place only when it
    succeeded, so a failure never leaves a partial file. What ``write`` returns is ignored.

    Under ``torch.distributed`` only rank 0 writes: on the other ranks this does nothing (the
    ranks hold the same state, and one writer never races another for a file)."""
    path = Path(path)
    if not distributed.is_main():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        # mkstemp creates the file private (0600); give it the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def atomic_write_json(path: PathLike, obj: Any, indent: int = 1) -> Path:
    """Write ``obj`` as JSON to ``path`` with :func:`atomic_write`."""
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=indent)))


def write_record(out: PathLike, record: Any, markdown: str) -> Tuple[Path, Path]:
    """A benchmark's result: ``record`` as JSON at ``out`` with the ``.json`` suffix and
    ``markdown`` beside it (``.md``), each with :func:`atomic_write`; the Markdown is also
    printed."""
    out = Path(out)
    paths = (atomic_write_json(out.with_suffix(".json"), record),
             atomic_write(out.with_suffix(".md"), lambda tmp: tmp.write_text(markdown)))
    print(markdown)
    return paths


def atomic_torch_save(obj: Any, path: PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` with :func:`atomic_write`."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_torch_file(path: PathLike, what: str, fix: str) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)``, with one error that names the
    file when it cannot be read: :class:`~mggc_plugin.errors.MGGCUserError` saying it is not
    readable as ``what`` (truncated, corrupt, another format or holding code), then ``fix``.
    torch's own errors (e.g. "PytorchStreamReader failed reading zip archive") do not name it."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises many types: zip, pickle, EOF, weights_only refusals
        first = (str(err).strip().splitlines() or [""])[0].split(". ")[0]  # torch appends paragraphs of advice
        raise MGGCUserError(f"{path} cannot be read as {what} (truncated, corrupt or another format: "
                            f"{type(err).__name__}: {first}): {fix}") from None


def sha256_file(path: PathLike) -> str:
    """Hex SHA-256 of a file's bytes (streamed)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def json_digest(obj: Any) -> str:
    """Hex SHA-256 of ``obj`` as JSON with sorted keys: equal for equal plain data, whatever the
    order its dicts were built in. ``obj`` must be JSON-serialisable."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def state_dict_digest(state: Dict[str, torch.Tensor]) -> str:
    """Hex SHA-256 of a state dict's names and tensor bytes (in key order): identifies trained
    weights exactly, wherever they live."""
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
