"""``checkpoints/<name>/mggc_report.json`` and the console lines of the finetune phase: MACs,
parameters and kept widths of the teacher and slim networks. Nothing here imports upstream."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Sequence

from torch import nn

from ..channels import ChannelGroups
from ..fileio import atomic_write_json
from ..macs import count_macs
from ..slim import slim_info

REPORT_NAME = "mggc_report.json"


def describe(net: nn.Module, input_shape: Sequence[int]) -> Dict[str, Any]:
    """MACs (the paper's convention, :func:`count_macs`) at ``input_shape`` and parameters."""
    return {"macs": count_macs(net, input_shape).total, "params": sum(p.numel() for p in net.parameters())}


def widths(groups: ChannelGroups, slim_net: nn.Module) -> list:
    """Per channel group: its root layer, the teacher's width and the slim network's."""
    kept = slim_info(slim_net)["widths"]
    return [{"root": g.root, "teacher": g.size, "slim": w} for g, w in zip(groups, kept)]


def ratio_line(what: str, teacher: Dict[str, Any], slim: Dict[str, Any]) -> str:
    return (f"{what}: {teacher['macs'] / 1e9:.4f} G MACs, {teacher['params'] / 1e6:.3f} M params -> slim "
            f"{slim['macs'] / 1e9:.4f} G MACs ({slim['macs'] / teacher['macs']:.1%}), "
            f"{slim['params'] / 1e6:.3f} M params ({slim['params'] / teacher['params']:.1%})")


def write_report(run_dir: Path, report: Dict[str, Any]) -> Path:
    """Write ``report`` as ``<run_dir>/mggc_report.json`` atomically."""
    return atomic_write_json(Path(run_dir) / REPORT_NAME, report)
