"""What distinguishes ``--model mggc_pix2pix`` from ``--model mggc_cycle_gan``: small typed
descriptions, looked up by name, so the shared model code has no per-model branches.

Nothing here imports upstream.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Mapping


@dataclass(frozen=True)
class TeacherKind:
    """How upstream saved a teacher of one ``--model``: the file names (``<epoch>_net_<G>.pth``)
    of the generator MGGC prunes and of the discriminator that judges its outputs, whether that
    D reads ``cat(x, y)``, and the dataset mode the teacher trained on."""

    model: str
    G: str
    D: str
    conditional_D: bool
    dataset_mode: str


#: Upstream teachers by their ``--model``. For CycleGAN the pruned direction is G_A (A→B), judged
#: by D_A, which upstream trains on real B against G_A(A).
TEACHER_KINDS: Dict[str, TeacherKind] = {
    "pix2pix": TeacherKind("pix2pix", G="G", D="D", conditional_D=True, dataset_mode="aligned"),
    "cycle_gan": TeacherKind("cycle_gan", G="G_A", D="D_A", conditional_D=False, dataset_mode="unaligned"),
}


@dataclass(frozen=True)
class GanSpec:
    """One MGGC model.

    name: the ``--model`` value. teacher: the :class:`TeacherKind` it compresses.
    gan_mode: f of Eq. 2 and of the finetune objective (paper: hinge for pix2pix, least squares
        for CycleGAN); the default of upstream's ``--gan_mode`` for this model.
    l1_target: what the finetune phase's L1 term pulls G(x) towards: ``ground_truth`` (the
        paired B) or ``teacher`` (the teacher's G_T(x), standing in for CycleGAN's missing pairs).
    lambda_L1: default weight of that term.
    defaults: upstream option defaults this model sets, those of the teacher's upstream model
        (so a teacher trained with upstream's defaults needs no architecture flags).
    """

    name: str
    teacher: TeacherKind
    gan_mode: str
    l1_target: str
    lambda_L1: float
    defaults: Mapping[str, Any] = field(default_factory=dict)


SPECS: Dict[str, GanSpec] = {
    "mggc_pix2pix": GanSpec("mggc_pix2pix", TEACHER_KINDS["pix2pix"], gan_mode="hinge", l1_target="ground_truth",
                            lambda_L1=100.0, defaults={"norm": "batch", "netG": "unet_256"}),
    # λ_L1 = 10: CycleGAN's own weight of its reconstruction (cycle) terms, whose role the L1 to
    # the teacher's output takes over.
    "mggc_cycle_gan": GanSpec("mggc_cycle_gan", TEACHER_KINDS["cycle_gan"], gan_mode="lsgan", l1_target="teacher",
                              lambda_L1=10.0, defaults={"no_dropout": True}),
}
