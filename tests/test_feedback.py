"""G↔D feedback (Eq. 3–4): with it on, gen_G's logits depend on h_D (and gen_D's on h_G); off, not."""
import copy
import functools

import pytest
import torch

from mggc_plugin import networks
from mggc_plugin.channels import ChannelGroups
from mggc_plugin.pruner import MGGCConfig, MGGCPruner


@functools.lru_cache(maxsize=None)
def _nets():
    torch.manual_seed(0)
    G = networks.define_G(3, 3, 8, "resnet_6blocks", norm="instance")
    D = networks.define_D(3, 8, "basic", norm="instance")
    x = torch.zeros(1, 3, 32, 32)
    return G, D, ChannelGroups.discover(G, x), ChannelGroups.discover(D, x)


def _pruner(ablation):
    G, D, groups_G, groups_D = _nets()
    return MGGCPruner(G, D, torch.zeros(1, 3, 32, 32), MGGCConfig(p=0.5, ablation=ablation, hidden=16),
                      groups_G=groups_G, groups_D=groups_D)


def _logits(agent, h):
    with torch.no_grad():
        return torch.cat(agent(h)[0])


@pytest.mark.parametrize("ablation,feedback", [("feedback", True), ("mggc", True), ("agents", False)])
def test_agent_logits_depend_on_the_peer_only_with_feedback(ablation, feedback):
    pruner = _pruner(ablation)
    h_a, h_b = torch.randn(2, pruner.gen_D.embed_dim, generator=torch.Generator().manual_seed(1))
    # Both agents have 2·hidden-d embeddings, so the same pair of h serves as h_D and as h_G.
    for agent in (pruner.gen_G, pruner.gen_D):
        changed = (_logits(agent, h_a) - _logits(agent, h_b)).abs().max().item()
        if feedback:
            assert changed > 1e-4
        else:
            assert changed == 0.0


@pytest.mark.parametrize("ablation,feedback", [("feedback", True), ("agents", False)])
def test_step_passes_the_last_h_D_to_gen_G(ablation, feedback):
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    results = []
    for h_D in (None, torch.randn(32, generator=torch.Generator().manual_seed(3)) * 5):
        pruner = _pruner(ablation)
        if h_D is not None:
            pruner.h_D = h_D
        with torch.no_grad():
            y = pruner.G(x)
        pruner.step(x, y)
        results.append(torch.cat([p.detach().flatten() for p in pruner.gen_G.parameters()]))
    differ = not torch.equal(*results)
    assert differ == feedback


def test_embeddings_are_exchanged_every_step():
    pruner = _pruner("feedback")
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        y = pruner.G(x)
    pruner.step(x, y)
    first = pruner.h_D.clone()
    assert first.abs().sum() > 0 and pruner.h_G.abs().sum() > 0
    gen_D_before = copy.deepcopy(pruner.gen_D)
    pruner.step(x, y)
    assert not torch.equal(first, pruner.h_D)
    # h_D is what gen_D (before its update) made of the h_G gen_G produced in the same step.
    with torch.no_grad():
        assert torch.allclose(gen_D_before(pruner.h_G)[1], pruner.h_D, atol=1e-6)
