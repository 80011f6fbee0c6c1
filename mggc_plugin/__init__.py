"""MGGC — Manifold-Guided GAN Compression (AAAI-24) for pytorch-CycleGAN-and-pix2pix.

The core engine, usable on any conv net without upstream::

    from mggc_plugin import networks, count_macs, ChannelGroups, slim, save_slim, load_slim

and the pruning game (Eq. 2–6)::

    from mggc_plugin import MGGCPruner, MGGCConfig
"""
from . import networks
from .channels import ChannelGroup, ChannelGroups
from .macs import MacProfile, count_macs
from .networks import ArchSpec
from .pruner import ABLATIONS, FinalArchitecture, MGGCConfig, MGGCPruner, prunable_fraction
from .slim import export, load_slim, register_builder, save_slim, slim

__all__ = ["networks", "count_macs", "MacProfile", "ChannelGroups", "ChannelGroup", "slim", "save_slim",
           "load_slim", "export", "register_builder", "ArchSpec", "MGGCPruner", "MGGCConfig", "FinalArchitecture",
           "ABLATIONS", "prunable_fraction"]
__version__ = "0.1.0"
