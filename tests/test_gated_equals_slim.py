"""The central invariant: a gated full network == the physically slimmed one, and T(v) == its MACs."""
import pytest
import torch

from mggc_plugin import ChannelGroups, count_macs, networks, slim

CASES = {
    "resnet_9blocks-instance": (lambda: networks.define_G(3, 3, 32, "resnet_9blocks", norm="instance"), (2, 3, 64, 64)),
    "unet_256-batch": (lambda: networks.define_G(3, 3, 16, "unet_256", norm="batch", use_dropout=True),
                       (2, 3, 256, 256)),
    "basic-D-instance": (lambda: networks.define_D(6, 32, "basic", norm="instance"), (2, 6, 64, 64)),
    "basic-D-batch": (lambda: networks.define_D(6, 32, "basic", norm="batch"), (2, 6, 64, 64)),
}


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    torch.manual_seed(0)
    build, shape = CASES[request.param]
    net = build().eval()
    x = torch.randn(shape)
    groups = ChannelGroups.discover(net, x)
    masks = [torch.rand(n) > 0.5 for n in groups.sizes]
    for m in masks:
        m[0] = True
    return net, x, groups, masks, slim(net, groups, masks).eval()


def test_gated_full_equals_slimmed(case):
    net, x, groups, masks, small = case
    with torch.no_grad(), groups.gated(masks):
        gated = net(x)
    assert (gated - small(x)).abs().max().item() <= 1e-4


def test_slimmed_is_really_smaller(case):
    net, x, groups, masks, small = case
    widths = [int(m.sum()) for m in masks]
    assert small.mggc_slim["widths"] == widths
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in net.parameters())


def test_differentiable_macs_equal_slim_macs(case):
    net, x, groups, masks, small = case
    t = groups.macs([m.float() for m in masks]).item()
    assert abs(t - count_macs(small, tuple(x.shape)).total) / t < 1e-6
    assert groups.macs([torch.ones(n) for n in groups.sizes]).item() == groups.full_macs


def test_macs_are_differentiable_in_every_group(case):
    net, x, groups, masks, small = case
    gates = [torch.full((n,), 0.5, requires_grad=True) for n in groups.sizes]
    groups.macs(gates).backward()
    assert all(g.grad is not None and bool((g.grad > 0).all()) for g in gates)
