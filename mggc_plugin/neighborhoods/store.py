"""The neighbourhood file: N_{y'_i,k} for every i with its cosines and how it was made, written
atomically and read back with ``weights_only=True``."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Union

import torch

from ..fileio import atomic_torch_save

PathLike = Union[str, Path]

FORMAT = "mggc-neighborhoods"
FORMAT_VERSION = 1


@dataclass
class Neighborhoods:
    """N_{y'_i,k} for every i: ``indices[i]`` are the k neighbours of y'_i in D'_y, most similar
    first, ``similarities[i]`` their cosines; ``metadata`` says how they were made (dataset and
    source files, teacher, preprocessing, encoder and its initialisation, k, cache locations)."""

    indices: torch.Tensor
    similarities: torch.Tensor
    metadata: Dict[str, Any]

    @property
    def k(self) -> int:
        """Neighbours per sample."""
        return self.indices.shape[1]

    def __len__(self) -> int:
        return self.indices.shape[0]


def save_neighborhoods(path: PathLike, nb: Neighborhoods) -> Path:
    """Write ``nb`` atomically as a ``torch.save`` dict readable with ``weights_only=True``."""
    path = Path(path)
    atomic_torch_save({"format": FORMAT, "version": FORMAT_VERSION, "indices": nb.indices.long(),
                       "similarities": nb.similarities.float(), "metadata": nb.metadata}, path)
    return path


def load_neighborhoods(path: PathLike) -> Neighborhoods:
    """Read a file written by :func:`save_neighborhoods`, checking its format and shapes."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"neighbourhood file {path} does not exist: build it with mggc neighbors")
    d = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise ValueError(f"{path} is not a neighbourhood file (no format {FORMAT!r}): build it with mggc neighbors")
    if d.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path} has format version {d.get('version')}, this mggc-plugin reads "
                         f"{FORMAT_VERSION}: rebuild it with mggc neighbors")
    idx, sim = d["indices"], d["similarities"]
    if idx.dim() != 2 or idx.shape != sim.shape:
        raise ValueError(f"{path}: indices {tuple(idx.shape)} and similarities {tuple(sim.shape)} must be the "
                         "same N×k: rebuild it with mggc neighbors")
    return Neighborhoods(idx, sim, d["metadata"])
