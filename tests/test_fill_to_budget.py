"""fill_to_budget: students land just below their MACs budget, whatever rounding left them at."""
import pytest
import torch

from mggc_plugin import networks
from mggc_plugin.baselines import fill_to_budget, filter_l1_scores, masks_to_budget
from mggc_plugin.channels import ChannelGroups


@pytest.fixture(scope="module")
def groups():
    torch.manual_seed(0)
    G = networks.define_G(3, 3, 32, "unet_128", norm="batch")  # the shared pix2pix teacher's architecture
    return ChannelGroups.discover(G, torch.randn(1, 3, 128, 128))


@pytest.mark.parametrize("target", [0.05, 0.10])
def test_fill_lands_within_one_step_of_the_budget(groups, target):
    masks = masks_to_budget(groups, target, "l1_norm", round_to=8)
    scores = filter_l1_scores(groups)
    before = float(groups.macs(masks)) / groups.full_macs
    filled = fill_to_budget(groups, masks, scores, target, round_to=8)
    after = float(groups.macs(filled)) / groups.full_macs
    assert before <= after <= target
    assert after >= 0.95 * target
    # Only adds, keeps multiples of 8 (or full groups), and no further 8-channel step fits.
    for m, f, n in zip(masks, filled, groups.sizes):
        assert bool((f | ~m).all())
        assert int(f.sum()) % 8 == 0 or int(f.sum()) == n
    for i, f in enumerate(filled):
        if int(f.sum()) < groups.sizes[i]:
            extra = [g.clone() for g in filled]
            extra[i][(~f).nonzero().flatten()[:8]] = True
            assert float(groups.macs(extra)) > target * groups.full_macs


def test_fill_adds_the_highest_scoring_channels(groups):
    masks = [torch.zeros(n, dtype=torch.bool) for n in groups.sizes]
    for m in masks:
        m[0] = True
    scores = [torch.arange(n, dtype=torch.float) for n in groups.sizes]  # the last channels score highest
    filled = fill_to_budget(groups, masks, scores, 0.3, round_to=1)
    for f, n in zip(filled, groups.sizes):
        kept = f.nonzero().flatten().tolist()
        added = [c for c in kept if c != 0]
        assert added == list(range(n - len(added), n))


def test_fill_rejects_mismatched_inputs(groups):
    masks = masks_to_budget(groups, 0.1, "uniform")
    with pytest.raises(ValueError, match="one of each per group"):
        fill_to_budget(groups, masks[:-1], filter_l1_scores(groups), 0.1)
