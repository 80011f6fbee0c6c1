"""``--dataset_mode neighborhood``: upstream's paired or unpaired data plus the teacher's output
y' of each source x and a neighbour y'' of y' on the teacher's manifold (Eq. 1)."""
from __future__ import annotations

import argparse
import os
import random
from pathlib import Path
from typing import Any, Dict, List, Optional

from data.base_dataset import BaseDataset, get_params, get_transform
from data.image_folder import make_dataset

from .. import distributed
from ..data import DatasetSpec, Preprocess, detect_dataset_mode, open_image
from ..distributed import print_main
from ..errors import MGGCUserError, install_excepthook
from ..neighborhoods.html import write_neighborhood_html
from ..neighborhoods.pipeline import build_neighborhoods
from . import options
from .checks import check_prune_run
from .compat import device_of
from .specs import SPECS
from .teacher import find_teacher, inference_spec, load_G

install_excepthook()  # upstream's train.py catches nothing: show our user errors as one line


class NeighborhoodDataset(BaseDataset):
    """Upstream's ``aligned`` (pix2pix) or ``unaligned`` (CycleGAN) dataset with MGGC's targets.

    Each item holds upstream's keys ``A``, ``B``, ``A_paths``, ``B_paths`` — loaded and
    transformed as the wrapped dataset does — and ``y_center`` (y' = G(x), the teacher's output
    for the source image x), ``y_neighbor`` (y'', one of y''s k neighbours, drawn uniformly each
    time) and ``neighbor_index``. x is A for ``--direction AtoB``, else B. The random crop and
    flip drawn for x (upstream's ``get_params``) are applied to y' and y'' as well, so the three
    are geometrically aligned; the teacher's outputs, cached at ``--crop_size``, are resized with
    x to ``--load_size`` first. The unpaired real target keeps its own random transform, as in
    upstream's unaligned dataset.

    The neighbourhoods are built on construction, or reused from the cache: the teacher is
    ``<checkpoints_dir>/<teacher_name>/<teacher_epoch>_net_G.pth`` (``_net_G_A`` for CycleGAN),
    checked against this run's architecture options before any work. Written (never into the
    teacher's folder): ``<checkpoints_dir>/<name>/neighbors.pt``, the page
    ``<checkpoints_dir>/<name>/neighbors/index.html`` and the cache (``--mggc_cache_dir``).
    """

    @staticmethod
    def modify_commandline_options(parser, is_train):
        options.add_teacher_options(parser)
        options.add_neighborhood_options(parser)
        return parser

    def __init__(self, opt: argparse.Namespace) -> None:
        BaseDataset.__init__(self, opt)
        options.check_neighborhood_options(opt)
        self.mode = opt.mggc_base_mode or detect_dataset_mode(opt.dataroot, opt.phase)
        self.AtoB = opt.direction == "AtoB"
        self.source_nc, self.target_nc = opt.input_nc, opt.output_nc
        run_dir = Path(opt.checkpoints_dir) / opt.name
        spec = SPECS.get(opt.model)
        if spec is not None and opt.isTrain and options.plays_game(opt):
            # upstream builds the dataset before the model: refuse the run here, before any work
            teacher, _ = check_prune_run(opt, spec, run_dir)
        else:
            teacher = find_teacher(opt.checkpoints_dir, opt.teacher_name, opt.teacher_epoch,
                                   spec.teacher if spec else None, run_dir)
            teacher.check_options(opt)
            load_G(teacher, opt)  # a strict load: a wrong architecture fails here, before any work

        data = DatasetSpec(Path(opt.dataroot), self.mode, opt.direction, opt.phase)
        self._check_sizes(opt, data)
        cache_dir = Path(opt.mggc_cache_dir) if opt.mggc_cache_dir else run_dir / "mggc_cache"
        preprocess = Preprocess(opt.crop_size, opt.input_nc, opt.output_nc)
        nb, self.outputs = build_neighborhoods(
            data, inference_spec(teacher, opt, opt.mggc_norm_stats), preprocess, run_dir / "neighbors.pt", cache_dir,
            opt.mggc_k, opt.mggc_encoder, options.swav_config(opt), opt.mggc_swav_checkpoint,
            device=device_of(opt))
        if distributed.is_main():  # under torchrun every rank builds the dataset; rank 0 writes and reports
            page = write_neighborhood_html(run_dir / "neighbors", nb, self.outputs, n_centres=min(20, len(nb)),
                                           sources=data.sources())
            encoder = nb.metadata["encoder"]
            print_main(f"MGGC neighbourhoods: k={nb.k} of {len(nb)} teacher outputs ({encoder['name']} encoder, "
                       f"{encoder['reason']}; mean cosine {nb.similarities.mean().item():.3f}); "
                       f"{run_dir / 'neighbors.pt'}, page {page}")
        self.neighbors: List[List[int]] = nb.indices.tolist()

        if self.mode == "aligned":
            self.source_paths = sorted(make_dataset(os.path.join(opt.dataroot, opt.phase), opt.max_dataset_size))
            self.target_paths = self.source_paths
        else:
            a = sorted(make_dataset(os.path.join(opt.dataroot, opt.phase + "A"), opt.max_dataset_size))
            b = sorted(make_dataset(os.path.join(opt.dataroot, opt.phase + "B"), opt.max_dataset_size))
            self.source_paths, self.target_paths = (a, b) if self.AtoB else (b, a)
        index = {rel: i for i, rel in enumerate(self.outputs.sources)}
        missing = [p for p in self.source_paths if os.path.relpath(p, opt.dataroot) not in index]
        if missing:
            raise MGGCUserError(f"{missing[0]} (and {len(missing) - 1} more) has no teacher output: the neighbourhood "
                                f"code and upstream list {opt.dataroot} differently (unusual file extensions?)")
        self.output_index = [index[os.path.relpath(p, opt.dataroot)] for p in self.source_paths]

    def _check_sizes(self, opt, data: DatasetSpec) -> None:
        # The engine's own errors name its CLI flags; these name this run's options.
        n = len(data.sources())
        if n <= opt.mggc_k:
            raise MGGCUserError(f"--mggc_k {opt.mggc_k} neighbours need more than k source images; {opt.dataroot} "
                                f"has {n}: lower --mggc_k")

    def _transform(self, params: Optional[Dict[str, Any]], nc: int):
        return get_transform(self.opt, params, grayscale=(nc == 1))

    def __getitem__(self, index: int) -> Dict[str, Any]:
        i_source = index % len(self.source_paths)
        source_path = self.source_paths[i_source]
        if self.mode == "aligned":
            target_path = source_path
            AB = open_image(source_path)
            w, h = AB.size
            A, B = AB.crop((0, 0, w // 2, h)), AB.crop((w // 2, 0, w, h))
            source, target = (A, B) if self.AtoB else (B, A)
            params = get_params(self.opt, source.size)
            target_params: Optional[Dict[str, Any]] = params
        else:
            n_target = len(self.target_paths)
            j_target = index % n_target if self.opt.serial_batches else random.randint(0, n_target - 1)
            target_path = self.target_paths[j_target]
            source, target = open_image(source_path), open_image(target_path)
            # As upstream's unaligned dataset: the unpaired target is cropped and flipped on its own.
            params, target_params = get_params(self.opt, source.size), None
        i = self.output_index[i_source]
        j = random.choice(self.neighbors[i])
        x = self._transform(params, self.source_nc)(source)
        y = self._transform(target_params, self.target_nc)(target)
        along_x = self._transform(params, self.target_nc)
        item = {"y_center": along_x(self.outputs.image(i)), "y_neighbor": along_x(self.outputs.image(j)),
                "neighbor_index": j}
        if self.AtoB:
            item.update(A=x, B=y, A_paths=source_path, B_paths=target_path)
        else:
            item.update(A=y, B=x, A_paths=target_path, B_paths=source_path)
        return item

    def __len__(self) -> int:
        if self.mode == "aligned":
            return len(self.source_paths)
        return max(len(self.source_paths), len(self.target_paths))
