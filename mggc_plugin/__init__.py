"""MGGC — Manifold-Guided GAN Compression (AAAI-24) for pytorch-CycleGAN-and-pix2pix.

The core engine, usable on any conv net without upstream::

    from mggc_plugin import networks, count_macs, ChannelGroups, slim, save_slim, load_slim

and the whole path: neighbourhoods (Eq. 1), the pruning game (Eq. 2–6) played with saves and
resumption, finetuning, and the baselines at the same budget::

    from mggc_plugin import (build_neighborhoods, MGGCPruner, MGGCConfig, play, neighbor_batches,
                             Finetuner, FinetuneConfig, fit, masks_to_budget, prune_to_budget)
"""
from . import networks
from .baselines import (
           filter_l1_scores,
           keep_masks,
           largest_ngf_within,
           masks_to_budget,
           prune_to_budget,
           uniform_widths,
)
from .channels import ChannelGroup, ChannelGroups
from .deploy import export
from .errors import MGGCFileNotFoundError, MGGCUserError
from .finetune import FinetuneConfig, Finetuner, FitResult, fit
from .game import neighbor_batches, play
from .macs import MacProfile, count_macs
from .neighborhoods import build_neighborhoods
from .networks import ArchSpec
from .pruner import ABLATIONS, FinalArchitecture, MGGCConfig, MGGCPruner, prunable_fraction
from .slim import load_slim, register_builder, save_slim, slim

__all__ = ["networks", "count_macs", "MacProfile", "ChannelGroups", "ChannelGroup", "slim", "save_slim",
           "load_slim", "export", "register_builder", "ArchSpec", "MGGCPruner", "MGGCConfig", "FinalArchitecture",
           "ABLATIONS", "prunable_fraction", "play", "neighbor_batches", "Finetuner", "FinetuneConfig", "fit",
           "FitResult", "build_neighborhoods", "filter_l1_scores", "uniform_widths", "keep_masks", "masks_to_budget",
           "prune_to_budget", "largest_ngf_within", "MGGCUserError", "MGGCFileNotFoundError"]
__version__ = "0.1.0"
