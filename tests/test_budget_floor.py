"""The budget is checked against what G can be pruned to at all (every channel group keeps one
channel, or --mggc_round_to channels) before any work; no upstream needed."""
import argparse

import pytest
import torch

from mggc_plugin import ChannelGroups, networks
from mggc_plugin.baselines import masks_to_budget
from mggc_plugin.upstream import checks


@pytest.fixture(scope="module")
def groups():
    G = networks.define_G(3, 3, 8, "unet_128", norm="batch")
    return ChannelGroups.discover(G, torch.zeros(1, 3, 128, 128))


OPT = argparse.Namespace(netG="unet_128", ngf=8)


def test_the_floor_is_the_narrowest_network(groups):
    floor = checks.narrowest_fraction(groups, 1)
    one_each = [torch.arange(n) < 1 for n in groups.sizes]
    assert floor == pytest.approx(float(groups.macs(one_each)) / groups.full_macs)
    assert 0 < floor < checks.narrowest_fraction(groups, 4) < 1
    masks_to_budget(groups, floor, "uniform")  # exactly the floor is reachable


@pytest.mark.parametrize("round_to", [1, 4])
def test_a_budget_below_the_floor_names_the_smallest_budget(groups, round_to):
    floor = checks.narrowest_fraction(groups, round_to)
    checks.check_budget(floor, groups, round_to, OPT)
    with pytest.raises(ValueError, match=r"--mggc_target_macs 1e-06 is below what G \(unet_128, ngf 8\) can be pruned "
                                         r"to: .* it keeps 0\.\d{4} of its MACs; give --mggc_target_macs 0\.\d{4} or "
                                         r"more") as err:
        checks.check_budget(1e-6, groups, round_to, OPT)
    suggested = float(str(err.value).split("give --mggc_target_macs ")[1].split()[0])
    assert floor <= suggested < floor + 1e-4
    checks.check_budget(suggested, groups, round_to, OPT)
    with pytest.raises(ValueError, match="--mggc_round_to 4: .* more than the prune phase's --mggc_target_macs"):
        checks.check_round_to(checks.narrowest_fraction(groups, 1), groups, 4)
