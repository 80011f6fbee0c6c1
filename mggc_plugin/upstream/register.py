"""``mggc register``: make ``--model mggc_*`` and ``--dataset_mode neighborhood`` visible to upstream.

Upstream finds ``--model X`` by importing ``models/X_model.py`` and ``--dataset_mode X`` by
importing ``data/X_dataset.py``; it has no plugin registry. Registration therefore writes three
one-line shim modules into the checkout, each importing its class from ``mggc_plugin.upstream``.
Each shim starts with :data:`MARKER`, so that registration never overwrites a file it did not
write and ``--undo`` removes exactly its own files; a shim whose content is no longer what
registration wrote (the user edited it) is neither overwritten nor removed. ``patches/register-mggc.patch`` is the same
change for ``git apply``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Union

from ..errors import MGGCUserError

MARKER = "# Written by `mggc register` (mggc-plugin); remove with `mggc register --undo`."

SHIMS: Dict[str, str] = {
    "models/mggc_pix2pix_model.py": "from mggc_plugin.upstream.models import MggcPix2PixModel  # noqa: F401",
    "models/mggc_cycle_gan_model.py": "from mggc_plugin.upstream.models import MggcCycleGanModel  # noqa: F401",
    "data/neighborhood_dataset.py": "from mggc_plugin.upstream.dataset import NeighborhoodDataset  # noqa: F401",
}


def shim_text(relpath: str) -> str:
    return f"{MARKER}\n{SHIMS[relpath]}\n"


def _check_checkout(root: Path) -> None:
    missing = [p for p in ("models/base_model.py", "data/base_dataset.py", "train.py") if not (root / p).is_file()]
    if missing:
        raise MGGCUserError(f"{root} is not a pytorch-CycleGAN-and-pix2pix checkout (missing {', '.join(missing)}): "
                            f"pass the folder that holds train.py")


def _ours(path: Path) -> bool:
    return path.read_text().startswith(MARKER)


def _edited(root: Path) -> List[Path]:
    # Shims this command wrote (they start with the marker) whose content changed since.
    return [root / rel for rel in SHIMS if (root / rel).is_file() and _ours(root / rel)
            and (root / rel).read_text() != shim_text(rel)]


def _refuse_edited(root: Path, nothing: str) -> None:
    edited = _edited(root)
    if edited:
        expected = "; ".join(f"{p.relative_to(root)}: {SHIMS[str(p.relative_to(root))]!r}" for p in edited)
        raise MGGCUserError(f"{', '.join(map(str, edited))} changed since `mggc register` wrote it (it held only the "
                            f"marker line and {expected}); {nothing}: move it away, or restore that content, and "
                            f"run the command again")


def register(upstream_dir: Union[str, Path]) -> List[Path]:
    """Write the shims into ``upstream_dir``; returns the files written. Refuses, writing nothing,
    if one of them exists and was not written by this command, or was edited since."""
    root = Path(upstream_dir).resolve()
    _check_checkout(root)
    foreign = [root / rel for rel in SHIMS if (root / rel).exists() and not _ours(root / rel)]
    if foreign:
        raise MGGCUserError(f"{', '.join(map(str, foreign))} exists and was not written by `mggc register`; "
                            f"move it away first (nothing was written)")
    _refuse_edited(root, "nothing was written")
    written = []
    for rel in SHIMS:
        path = root / rel
        tmp = path.with_suffix(".py.tmp")
        tmp.write_text(shim_text(rel))
        tmp.replace(path)
        written.append(path)
    return written


def unregister(upstream_dir: Union[str, Path]) -> List[Path]:
    """Remove the shims this command wrote (and nothing else); returns the files removed.
    Refuses, removing nothing, if one of them was edited since it was written."""
    root = Path(upstream_dir).resolve()
    _check_checkout(root)
    _refuse_edited(root, "nothing was removed")
    removed = []
    for rel in SHIMS:
        path = root / rel
        if path.is_file() and _ours(path):
            path.unlink()
            removed.append(path)
            cached = path.parent / "__pycache__"
            for pyc in cached.glob(f"{path.stem}.*.pyc") if cached.is_dir() else ():
                pyc.unlink()
    return removed
