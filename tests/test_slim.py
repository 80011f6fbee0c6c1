"""slim(): a new, smaller module; masks validated; widths rounded for hardware."""
import pytest
import torch

from mggc_plugin import ChannelGroups, networks, slim


@pytest.fixture(scope="module")
def resnet():
    G = networks.define_G(3, 3, 16, "resnet_6blocks", norm="instance")
    return G, ChannelGroups.discover(G, torch.zeros(1, 3, 32, 32))


def test_original_model_unchanged(resnet):
    G, groups = resnet
    before = {k: v.clone() for k, v in G.state_dict().items()}
    slim(G, groups, [torch.arange(n) % 3 == 0 for n in groups.sizes])
    after = G.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_round_to_8_gives_multiples_of_8(resnet):
    G, groups = resnet
    torch.manual_seed(1)
    masks = [torch.rand(n) > 0.7 for n in groups.sizes]
    for m in masks:
        m[0] = True
    small = slim(G, groups, masks, round_to=8)
    for width, keep, size in zip(small.mggc_slim["widths"], masks, groups.sizes):
        assert width % 8 == 0 or width == size
        assert int(keep.sum()) <= width < int(keep.sum()) + 8
    assert small(torch.randn(1, 3, 32, 32)).shape == (1, 3, 32, 32)


def test_all_zero_group_is_refused(resnet):
    G, groups = resnet
    masks = [torch.ones(n, dtype=torch.bool) for n in groups.sizes]
    masks[3] = torch.zeros(groups.sizes[3], dtype=torch.bool)
    with pytest.raises(ValueError, match=r"masks\[3\] drops every channel of group 3.*at least one"):
        slim(G, groups, masks)


def test_wrong_length_and_soft_masks_are_refused(resnet):
    G, groups = resnet
    masks = [torch.ones(n) for n in groups.sizes]
    with pytest.raises(ValueError, match=r"masks\[0\] has shape \(15,\)"):
        slim(G, groups, [torch.ones(15)] + masks[1:])
    with pytest.raises(ValueError, match=r"masks\[1\] is not binary"):
        slim(G, groups, masks[:1] + [torch.full((groups.sizes[1],), 0.7)] + masks[2:])
