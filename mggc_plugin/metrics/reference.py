"""Inception features of a reference set, computed once and cached on disk with a fingerprint of
the files they come from."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from ..fileio import atomic_write
from . import inception
from .images import FolderOrFiles, PathLike, files_of

# Bumped when the features of unchanged files would change (preprocessing, network): old caches
# then no longer match and are rebuilt.
_CACHE_VERSION = 1


def _fingerprint(files, half: Optional[str], size: Optional[int]) -> dict:
    # The network's SHA-1 is the published one: load_fid_inception refuses any other file, so the
    # features can only come from that network and the file need not be hashed again here.
    stats = []
    for f in sorted(files, key=lambda p: str(p.resolve())):
        st = f.stat()
        stats.append([str(f.resolve()), st.st_size, st.st_mtime_ns])
    return {"version": _CACHE_VERSION, "network_sha1": inception.FID_INCEPTION_SHA1,
            "input_size": inception.FID_INPUT_SIZE, "half": half, "size": size, "files": stats}


def _cache_path(folder_or_files: FolderOrFiles, files, half: Optional[str], size: Optional[int],
                cache_dir: Path) -> Path:
    # Named after what the caller passed (the folder, or the listed files), not after the folder's
    # content, so that a file added to or removed from a folder rebuilds this cache instead of
    # starting a second one beside it.
    if isinstance(folder_or_files, (str, os.PathLike)):
        identity = ["folder", str(Path(folder_or_files).resolve())]
    else:
        identity = ["files"] + sorted(str(f.resolve()) for f in files)
    identity += [str(half), str(size)]
    key = hashlib.sha256("\n".join(identity).encode()).hexdigest()[:16]
    return cache_dir / f"inception_features_{key}.npz"


def _read(path: Path, fingerprint: dict, order) -> Optional[np.ndarray]:
    # The rows are stored in the order of the call that wrote them; a list of the same files in
    # another order gets its own order back.
    try:
        with np.load(path, allow_pickle=False) as data:
            stored = json.loads(str(data["fingerprint"]))
            features, stored_order = data["features"], [str(p) for p in data["order"]]
    except (OSError, ValueError, KeyError):
        return None  # unreadable or from another layout: rebuilt and replaced
    if stored != fingerprint:
        return None
    row = {p: i for i, p in enumerate(stored_order)}
    return features[[row[p] for p in order]]


def reference_features(folder_or_files: FolderOrFiles, cache_dir: PathLike, half: Optional[str] = None,
                       batch_size: int = 50, device: Union[str, torch.device, None] = None,
                       progress: bool = True, size: Optional[int] = None) -> np.ndarray:
    """FID Inception features (:func:`~.inception.inception_features`) of a reference set, an
    ``(N, 2048)`` float64 array with one row per file in the order of :func:`~.images.files_of`
    (a folder's files sorted by name, a list in its own order), cached in ``cache_dir``.

    The cache is one ``.npz`` file per folder (or per set of listed files) and ``half``, written
    atomically, holding the features and a fingerprint: every file's resolved path, size and
    modification time (ns), ``half``, the input size and the SHA-1 of the Inception network. It is
    reused when the fingerprint is unchanged and recomputed and replaced when any file changed,
    appeared in or disappeared from the folder. A list of files may span folders (e.g. the train
    and test images of a dataset); pass ``half='left'`` for the photos of CMP Facades' ``A|B``
    pairs, and ``size`` to score the real images at a generator's resolution (bicubic, as upstream's
    preprocessing; part of the fingerprint). Raises as :func:`~.inception.inception_features` does."""
    files = files_of(folder_or_files)
    cache_dir = Path(cache_dir)
    if cache_dir.exists() and not cache_dir.is_dir():
        raise ValueError(f"cache_dir {cache_dir} is a file: pass a folder for the cached features")
    fingerprint = _fingerprint(files, half, size)
    path = _cache_path(folder_or_files, files, half, size, cache_dir)
    order = [str(f.resolve()) for f in files]
    if path.is_file():
        cached = _read(path, fingerprint, order)
        if cached is not None:
            return cached
    features = inception.inception_features(files, batch_size, device, progress, half=half, size=size)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, features=features, order=np.array(order), fingerprint=np.array(json.dumps(fingerprint)))

    atomic_write(path, write)
    return features
