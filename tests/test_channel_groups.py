"""Channel groups come from the dependency graph; gates attach and detach cleanly."""
import pytest
import torch

from mggc_plugin import ChannelGroups, networks


@pytest.mark.parametrize("build,shape,count,channels", [
    (lambda: networks.define_G(3, 3, 64, "resnet_9blocks", norm="instance"), (1, 3, 64, 64), 14, 2944),
    (lambda: networks.define_G(3, 3, 64, "unet_256", norm="batch"), (1, 3, 256, 256), 15, 5504),
    (lambda: networks.define_D(6, 64, "basic", norm="instance"), (1, 6, 64, 64), 4, 960),
])
def test_group_counts(build, shape, count, channels):
    groups = ChannelGroups.discover(build(), torch.zeros(shape))
    assert (len(groups), groups.total_channels) == (count, channels)


def test_resnet_trunk_is_one_group():
    G = networks.define_G(3, 3, 8, "resnet_6blocks", norm="instance")
    groups = ChannelGroups.discover(G, torch.zeros(1, 3, 32, 32))
    trunk = groups[2]
    # the second down-sampling conv plus the last conv of each of the 6 residual branches
    assert trunk.root == "model.7" and len(trunk.producers) == 7 and groups.sizes[:3] == [8, 16, 32]


def test_output_layers_are_not_prunable():
    G = networks.define_G(3, 3, 8, "resnet_6blocks", norm="instance")
    groups = ChannelGroups.discover(G, torch.zeros(1, 3, 32, 32))
    last = [n for n, m in G.named_modules() if isinstance(m, torch.nn.Conv2d)][-1]
    assert all(last not in g.producers for g in groups)


def test_gates_attach_and_detach_leave_the_model_as_it_was():
    G = networks.define_G(3, 3, 8, "unet_128", norm="batch").train()
    x = torch.randn(2, 3, 128, 128)
    before = {k: v.clone() for k, v in G.state_dict().items()}
    inplace = [m.inplace for m in G.modules() if hasattr(m, "inplace")]
    groups = ChannelGroups.discover(G, x)
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items()), "discover changed the weights or stats"
    assert [m.inplace for m in G.modules() if hasattr(m, "inplace")] == inplace and G.training
    G.eval()
    with torch.no_grad():
        y0 = G(x)
        with groups.gated([torch.zeros(n) for n in groups.sizes]):
            assert not torch.equal(G(x), y0)
        y1 = G(x)
    assert torch.equal(y0, y1)
    assert all(not m._forward_pre_hooks for m in G.modules())


def test_hooks_removed_on_error():
    G = networks.define_G(3, 3, 8, "resnet_6blocks", norm="instance")
    groups = ChannelGroups.discover(G, torch.zeros(1, 3, 32, 32))
    with pytest.raises(RuntimeError), groups.gated([torch.ones(n) for n in groups.sizes]):
        G(torch.zeros(1, 5, 32, 32))
    assert all(not m._forward_pre_hooks for m in G.modules())


def test_wrong_gate_length_is_named():
    G = networks.define_D(3, 8, "basic")
    groups = ChannelGroups.discover(G, torch.zeros(1, 3, 64, 64))
    bad = [torch.ones(n) for n in groups.sizes]
    bad[1] = torch.ones(5)
    with pytest.raises(ValueError, match=r"gates\[1\] has shape \(5,\) but group 1 .* has 16 channels"):
        groups.macs(bad)
    with pytest.raises(ValueError, match="got 3 gates vectors for 4 channel groups"):
        groups.macs(bad[:3])


def test_frozen_model_is_traced_and_stays_frozen():
    D = networks.define_D(6, 8, "basic").requires_grad_(False)
    with torch.no_grad():
        groups = ChannelGroups.discover(D, torch.zeros(1, 6, 64, 64))
    assert len(groups) == 4
    assert not any(p.requires_grad for p in D.parameters())
