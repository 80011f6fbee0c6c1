"""Prune your own generator with the Python API: the pruning game, slimming, finetuning, a slim
file, and the L1-norm baseline at the same budget.

    python examples/python_api.py
"""
import torch
from torch import nn

from mggc_plugin import (
    ArchSpec,
    FinetuneConfig,
    Finetuner,
    MGGCConfig,
    MGGCPruner,
    count_macs,
    fit,
    load_slim,
    neighbor_batches,
    networks,
    play,
    prune_to_budget,
    register_builder,
    save_slim,
    slim,
)


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
neighbors = torch.arange(len(x)).roll(1)[:, None]  # N×k indices of neighbours y''; build_neighborhoods finds real ones

pruner = MGGCPruner(G, D, x[:1], MGGCConfig(target_macs=0.25, gan_mode="lsgan"))
# Saved every 50 steps; run the script again after an interruption and the game resumes there.
history = play(pruner, neighbor_batches(x, y_center, neighbors, batch_size=8), steps=150, save_every=50,
               checkpoint="my_generator.game.pt")
for step in (0, 50, 100, 149):
    print(f"step {step}: kept MACs {history[step]['kept_macs_G_total']:.2f}, R {history[step]['R']:.3f}")

arch = pruner.finalize(round_to=4)                  # binary masks, G within the budget
small = slim(G, pruner.groups_G, arch.v_G)          # physically smaller
small_D = slim(D, pruner.groups_D, arch.v_D)
full_macs, small_macs = (count_macs(net, (1, 3, 64, 64)).total for net in (G, small))
print(f"MACs {full_macs / 1e6:.1f} M -> {small_macs / 1e6:.1f} M ({small_macs / full_macs:.1%})")

# Finetune the slim pair: GAN + L1 to the teacher's outputs, upstream's linear lr policy, an EMA of G.
tuner = Finetuner(small, small_D, FinetuneConfig(gan_mode="lsgan", conditional_D=False, lambda_L1=10))


def batches(epoch):
    """One epoch of (x, real, target): D's real samples and the L1 target are the teacher's outputs."""
    for i in range(0, len(x), 8):
        yield x[i:i + 8], y_center[i:i + 8], y_center[i:i + 8]


result = fit(tuner, batches, epochs=2, ema_decay=0.9)
small = result.ema_G.eval()                         # evaluate (and ship) the EMA weights
print(f"finetuned: L1 to the teacher {result.epochs[-1]['G_L1']:.3f}")

# The L1-norm filter pruning baseline (Li et al. 2017) at the same budget, for comparison.
l1 = prune_to_budget(G, x[:1], 0.25, method="l1_norm", round_to=4)
print(f"L1-norm baseline: {count_macs(l1, (1, 3, 64, 64)).total / full_macs:.1%} of the MACs")

register_builder("examples:my_generator", my_generator)
save_slim(small, "my_generator.slim.pt")
again = load_slim("my_generator.slim.pt")
print("reloaded:", torch.equal(again(x[:2]), small.eval()(x[:2])))
