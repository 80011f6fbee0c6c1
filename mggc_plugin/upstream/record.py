"""``checkpoints/<name>/mggc_run.json``: what the prune phase compressed and how.

Upstream rewrites ``train_opt.txt`` on every ``train.py`` run, so the finetune phase (same
``--name``, other options) cannot learn from it which teacher and which game configuration the
saved agents belong to. The prune phase writes this record; the finetune phase reads it, checks
that the teacher files are unchanged and that the architecture options agree, and rebuilds the
pruner from it. Nothing here imports upstream.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict

from ..errors import MGGCFileNotFoundError, MGGCUserError
from ..fileio import atomic_write_json, sha256_file
from ..pruner import MGGCConfig
from .options import RUN_RECORD
from .teacher import Teacher, arch_D, arch_G

FILE_NAME = RUN_RECORD
FORMAT = "mggc-upstream-run"
VERSION = 1


@dataclass(frozen=True)
class RunRecord:
    """model: the ``--model``; teacher_name/teacher: the teacher's experiment name and its
    files with their SHA-256; arch_G/arch_D: the ``define_G``/``define_D`` arguments; pruner: the
    :class:`MGGCConfig` fields; norm_stats: how the teacher computed y'; method: the
    ``--mggc_method`` (``mggc``: the finetune phase slims by the game's saved state; a baseline:
    by the masks the prune phase wrote). Records written before ``method`` existed are ``mggc``."""

    model: str
    teacher_name: str
    teacher: Dict[str, Any]
    arch_G: Dict[str, Any]
    arch_D: Dict[str, Any]
    pruner: Dict[str, Any]
    norm_stats: str
    method: str = "mggc"

    @classmethod
    def of_prune_run(cls, opt: argparse.Namespace, teacher: Teacher, config: MGGCConfig) -> "RunRecord":
        return cls(opt.model, opt.teacher_name, teacher.describe(), arch_G(opt), arch_D(opt, teacher.kind),
                   asdict(config), opt.mggc_norm_stats, opt.mggc_method)

    def write(self, run_dir: Path) -> Path:
        payload = {"format": FORMAT, "version": VERSION, **asdict(self)}
        return atomic_write_json(Path(run_dir) / FILE_NAME, payload)

    @classmethod
    def read(cls, run_dir: Path) -> "RunRecord":
        """Raises FileNotFoundError when no prune phase ran under this name."""
        path = Path(run_dir) / FILE_NAME
        if not path.is_file():
            raise MGGCFileNotFoundError(f"{path} does not exist: run --mggc_phase prune with the same --name first")
        try:
            payload = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise MGGCUserError(f"{path} is not valid JSON ({err}): it was damaged; run the prune phase again "
                                f"(with --mggc_restart)") from None
        if payload.get("format") != FORMAT or payload.get("version") != VERSION:
            raise MGGCUserError(f"{path} is not a record this mggc-plugin reads (format {payload.get('format')!r}, "
                                f"version {payload.get('version')!r}); run the prune phase again")
        return cls(**{k: payload[k] for k in cls.__dataclass_fields__ if k in payload})

    def config(self) -> MGGCConfig:
        return MGGCConfig(**self.pruner)

    def check(self, opt: argparse.Namespace, teacher: Teacher) -> None:
        """Raise ValueError when this run's model or architecture options differ from the prune
        phase's, or when the teacher files changed since."""
        if opt.model != self.model:
            raise MGGCUserError(f"the prune phase of {opt.name} ran --model {self.model}; continue with --model "
                                f"{self.model}")
        for what, recorded, now in (("G", self.arch_G, arch_G(opt)), ("D", self.arch_D, arch_D(opt, teacher.kind))):
            wrong = {k: (v, now[k]) for k, v in recorded.items() if now[k] != v}
            if wrong:
                detail = ", ".join(f"{k}={v!r} (now {n!r})" for k, (v, n) in wrong.items())
                raise MGGCUserError(f"the prune phase built {what} with {detail}: pass the same --netG/--ngf/--ndf/"
                                    f"--norm/--netD/--n_layers_D/--no_dropout/--input_nc/--output_nc as then")
        for net, path in (("G", teacher.G_path), ("D", teacher.D_path)):
            if sha256_file(path) != self.teacher[f"{net}_sha256"]:
                raise MGGCUserError(f"the teacher file {path} changed since the prune phase: the saved agents belong "
                                    f"to the old teacher; run the prune phase again")
