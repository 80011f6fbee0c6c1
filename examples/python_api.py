"""Prune your own generator with the Python API: groups, the pruning game, slimming, a slim file.

    python examples/python_api.py
"""
import torch
from torch import nn

from mggc_plugin import (ArchSpec, MGGCConfig, MGGCPruner, count_macs, load_slim, networks, register_builder,
                         save_slim, slim)


def my_generator(width: int = 32) -> nn.Module:
    """Any conv net works: channel groups come from its dependency graph, not from layer names."""
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1), nn.InstanceNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.InstanceNorm2d(2 * width), nn.ReLU(),
        nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1), nn.InstanceNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, 3, 3, padding=1), nn.Tanh())


torch.manual_seed(0)
G = my_generator()                                  # your trained teacher: load its weights here
G.mggc_arch = ArchSpec("examples:my_generator", {"width": 32})   # so that load_slim can rebuild it
D = networks.define_D(3, 16, "basic", norm="instance")            # or your own discriminator

x = torch.rand(64, 3, 64, 64) * 2 - 1               # your training sources
with torch.no_grad():
    y_center = G(x)                                 # the teacher's outputs y'
y_neighbor = y_center.roll(1, dims=0)               # use mggc_plugin.neighborhoods for real neighbours y''

pruner = MGGCPruner(G, D, x[:1], MGGCConfig(target_macs=0.25, gan_mode="lsgan"))
for step in range(150):
    i = torch.randint(len(x), (8,))
    logs = pruner.step(x[i], y_center[i], y_neighbor[i])
    if step % 50 == 0:
        print(f"step {step}: kept MACs {logs['kept_macs_G_total']:.2f}, R {logs['R']:.3f}")

arch = pruner.finalize(round_to=4)                  # binary masks, G within the budget
small = slim(G, pruner.groups_G, arch.v_G)          # physically smaller; finetune it next
full_macs, small_macs = (count_macs(net, (1, 3, 64, 64)).total for net in (G, small))
print(f"MACs {full_macs / 1e6:.1f} M -> {small_macs / 1e6:.1f} M ({small_macs / full_macs:.1%})")

register_builder("examples:my_generator", my_generator)
save_slim(small, "my_generator.slim.pt")
again = load_slim("my_generator.slim.pt")
print("reloaded:", torch.equal(again(x[:2]), small.eval()(x[:2])))
