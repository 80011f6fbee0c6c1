"""The baselines (mggc_plugin.baselines): torch-pruning's L1 importance is Li et al.'s filter L1
norm on every group's root layer; the one uniform-rate bisection lands on the largest rate within
the budget; l1_norm and uniform choose their channels as documented; the ngf search is tight."""
import pytest
import torch
from torch import nn

from mggc_plugin import ChannelGroups, count_macs, networks
from mggc_plugin.baselines import (
    filter_l1_scores,
    keep_masks,
    largest_ngf_within,
    masks_to_budget,
    prune_to_budget,
    uniform_widths,
    widths_at_rate,
)

SIZE = 32


def li_filter_l1(module: nn.Module) -> torch.Tensor:
    """Li et al. 2017's score written out: Σ|w| over each output channel's filter (a transposed
    convolution stores its output channels in dimension 1)."""
    w = module.weight.detach()
    if isinstance(module, nn.ConvTranspose2d):
        return w.abs().sum(dim=(0, 2, 3))
    return w.abs().flatten(1).sum(dim=1)


@pytest.fixture(params=[("resnet_6blocks", "instance"), ("unet_128", "batch")], ids=["resnet", "unet"])
def groups(request):
    torch.manual_seed(0)
    G = networks.define_G(3, 3, 8, request.param[0], norm=request.param[1])
    size = 128 if request.param[0] == "unet_128" else SIZE
    return ChannelGroups.discover(G, torch.zeros(1, 3, size, size))


def test_torch_pruning_importance_equals_the_filter_l1_of_every_root(groups):
    modules = dict(groups.model.named_modules())
    kinds = set()
    for group, score in zip(groups, filter_l1_scores(groups)):
        root = modules[group.root]
        kinds.add(type(root))
        assert score.shape == (group.size,)
        assert torch.allclose(score, li_filter_l1(root), rtol=1e-6, atol=0)
    assert kinds == {nn.Conv2d, nn.ConvTranspose2d}  # both layer kinds are checked


def test_a_transposed_root_is_scored_by_its_output_channel():
    G = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.ConvTranspose2d(4, 5, 4, stride=2, padding=1),
                      nn.ReLU(), nn.Conv2d(5, 3, 3, padding=1))
    with torch.no_grad():
        G[2].weight.fill_(0.0)
        G[2].weight[:, 3].fill_(-2.0)  # output channel 3 alone has weight
    groups = ChannelGroups.discover(G, torch.zeros(1, 3, 8, 8))
    score = filter_l1_scores(groups)[[g.root for g in groups].index("2")]
    assert score[3] > 0 and score.sum() == score[3]
    assert keep_masks(groups, [1, 1], "l1_norm")[1].nonzero().flatten().tolist() == [3]


@pytest.mark.parametrize("round_to", [1, 2])
@pytest.mark.parametrize("target", [0.3, 0.15])
def test_the_bisection_finds_the_largest_rate_within_the_budget(groups, target, round_to):
    found = uniform_widths(groups, target, round_to)
    budget = target * groups.full_macs
    assert found.macs <= budget
    assert found.widths == widths_at_rate(groups.sizes, found.rate, round_to)
    assert all(w % round_to == 0 or w == n for w, n in zip(found.widths, groups.sizes))
    larger = widths_at_rate(groups.sizes, found.rate + 1e-9, round_to)
    assert float(groups.macs([torch.arange(n) < w for n, w in zip(groups.sizes, larger)])) > budget


def test_the_whole_network_fits_a_budget_of_one(groups):
    assert uniform_widths(groups, 1.0).widths == groups.sizes


def test_a_budget_below_the_narrowest_widths_is_refused(groups):
    with pytest.raises(ValueError, match="narrowest"):
        uniform_widths(groups, 1e-6, round_to=8)
    with pytest.raises(ValueError, match="target_macs"):
        uniform_widths(groups, 1.5)


def test_l1_norm_keeps_the_largest_filters_and_uniform_the_first_channels(groups):
    widths = uniform_widths(groups, 0.25, 2).widths
    l1, first = masks_to_budget(groups, 0.25, "l1_norm", 2), masks_to_budget(groups, 0.25, "uniform", 2)
    for score, m_l1, m_first, w in zip(filter_l1_scores(groups), l1, first, widths):
        assert int(m_l1.sum()) == int(m_first.sum()) == w
        assert m_first[:w].all() and not m_first[w:].any()
        assert score[m_l1].min() >= score[~m_l1].max() if w < len(score) else m_l1.all()
    with pytest.raises(ValueError, match="random"):
        masks_to_budget(groups, 0.25, "random")


def test_prune_to_budget_returns_a_slim_network_within_the_budget():
    torch.manual_seed(0)
    G = networks.define_G(3, 3, 8, "resnet_6blocks", norm="instance")
    small = prune_to_budget(G, torch.zeros(1, 3, SIZE, SIZE), 0.3, "l1_norm", round_to=2)
    shape = (1, 3, SIZE, SIZE)
    assert count_macs(small, shape).total <= 0.3 * count_macs(G, shape).total
    assert small(torch.randn(shape)).shape == shape


def test_largest_ngf_within_is_the_largest():
    arch = dict(input_nc=3, output_nc=3, ngf=16, netG="resnet_6blocks", norm="batch")
    shape = (1, 3, SIZE, SIZE)
    full = count_macs(networks.define_G(**arch), shape).total
    rng = torch.get_rng_state()
    ngf = largest_ngf_within(arch, shape, 0.25 * full)
    assert torch.equal(torch.get_rng_state(), rng)  # the caller's RNG is untouched
    assert count_macs(networks.define_G(**{**arch, "ngf": ngf}), shape).total <= 0.25 * full
    assert count_macs(networks.define_G(**{**arch, "ngf": ngf + 1}), shape).total > 0.25 * full
    assert largest_ngf_within(arch, shape, full) == 16
    with pytest.raises(ValueError, match="no ngf"):
        largest_ngf_within(arch, shape, 1.0)


def test_top_channels_keeps_the_highest_scores_of_each_group():
    import torch

    from mggc_plugin.baselines import top_channels

    masks = top_channels([torch.tensor([0.1, 3.0, 2.0, -1.0]), torch.tensor([5.0, 4.0])], [2, 1])
    assert [m.tolist() for m in masks] == [[False, True, True, False], [True, False]]


def test_uniform_widths_with_factors_scales_a_shape_to_the_budget():
    import torch

    from mggc_plugin import networks
    from mggc_plugin.baselines import uniform_widths
    from mggc_plugin.channels import ChannelGroups

    net = networks.define_G(3, 3, 16, "resnet_6blocks", norm="instance").eval()
    groups = ChannelGroups.discover(net, torch.zeros(1, 3, 32, 32))
    plain = uniform_widths(groups, 0.3, 1)
    assert uniform_widths(groups, 0.3, 1, [1.0] * len(groups)) == plain
    shaped = uniform_widths(groups, 0.3, 1, [3.0] + [1.0] * (len(groups) - 1))
    assert shaped.macs <= 0.3 * groups.full_macs
    # the first group keeps three times the others' rate (whole, if that is beyond its size)
    assert shaped.widths[0] == min(groups.sizes[0], round(3 * shaped.rate * groups.sizes[0]))
    assert shaped.widths[0] > plain.widths[0]
    assert all(s <= p for s, p in zip(shaped.widths[1:], plain.widths[1:]))  # paid for by the others
