"""fastest_widths spends a MAC budget where the latency table says time per MAC is lowest."""
import math

import pytest
import torch

from mggc_plugin import latency_table, networks
from mggc_plugin.baselines import fastest_widths, uniform_widths
from mggc_plugin.channels import ChannelGroups
from mggc_plugin.macs import count_macs

SIZE = 32


def _gates(groups, widths):
    return [(torch.arange(n) < w).double() for n, w in zip(groups.sizes, widths)]


@pytest.fixture
def net_table(monkeypatch):
    torch.manual_seed(0)
    G = networks.define_G(3, 3, 16, "resnet_6blocks", "instance").eval()
    groups = ChannelGroups.discover(G, torch.zeros(1, 3, SIZE, SIZE))
    # a deterministic "runtime" where layers also pay for the activations they read: a layer at
    # high resolution costs more per MAC, as the outermost layers do on real CPUs
    monkeypatch.setattr(latency_table._Timer, "__call__", lambda self, module, shape:
                        count_macs(module, shape).total / 1e6 + math.prod(shape) / 1e4)
    return groups, latency_table.measure(G, groups, "eager", 1, progress=False)


def test_fastest_widths_fit_the_budget_and_beat_uniform_widths_on_the_table(net_table):
    groups, table = net_table
    uniform = uniform_widths(groups, 0.25, 4)
    fast = fastest_widths(groups, table, 0.25, 4)
    assert float(groups.macs(_gates(groups, fast))) <= 0.25 * groups.full_macs
    assert all(w % 4 == 0 and 4 <= w <= n for w, n in zip(fast, groups.sizes))
    assert float(table(groups, _gates(groups, fast))) < float(table(groups, _gates(groups, uniform.widths)))
    # the full-resolution groups (first and last) pay most per MAC: narrower than uniform's
    assert fast[0] < uniform.widths[0] and fast[-1] < uniform.widths[-1]


def test_fastest_widths_refuse_a_budget_below_the_narrowest_and_a_foreign_table(net_table):
    groups, table = net_table
    with pytest.raises(ValueError, match="even the narrowest widths"):
        fastest_widths(groups, table, 0.001, 8)
    with pytest.raises(ValueError, match=r"target_macs=1\.5"):
        fastest_widths(groups, table, 1.5)
    other = networks.define_G(3, 3, 8, "resnet_6blocks", "instance").eval()
    with pytest.raises(ValueError, match="another network"):
        fastest_widths(ChannelGroups.discover(other, torch.zeros(1, 3, SIZE, SIZE)), table, 0.25)


def test_fastest_widths_floor_keeps_every_group_above_its_share_of_the_uniform_width(net_table):
    groups, table = net_table
    uniform = uniform_widths(groups, 0.25, 4).widths
    free = fastest_widths(groups, table, 0.25, 4)
    floored = fastest_widths(groups, table, 0.25, 4, floor=0.5)
    lowest = [max(4, math.ceil(0.5 * w / 4) * 4) for w in uniform]
    assert any(f < low for f, low in zip(free, lowest)), "the test needs a group the free greedy narrows past the floor"
    assert all(w >= low for w, low in zip(floored, lowest))
    assert float(groups.macs(_gates(groups, floored))) <= 0.25 * groups.full_macs
    # floored, the greedy still spends the MACs where the table says time is cheaper than uniform
    assert float(table(groups, _gates(groups, floored))) < float(table(groups, _gates(groups, uniform)))
    assert fastest_widths(groups, table, 0.25, 4, floor=0.0) == free


def test_fastest_widths_are_never_slower_than_uniform_widths_on_the_table(net_table):
    # at a floor of ¾ neither greedy pass ends faster than uniform widths on this table
    groups, table = net_table
    uniform = uniform_widths(groups, 0.25, 4).widths
    for floor in (0.0, 0.5, 0.75, 1.0):
        widths = fastest_widths(groups, table, 0.25, 4, floor=floor)
        assert float(table(groups, _gates(groups, widths))) <= float(table(groups, _gates(groups, uniform)))


def test_fastest_widths_refuse_a_floor_outside_zero_to_one(net_table):
    groups, table = net_table
    with pytest.raises(ValueError, match=r"floor=1\.5"):
        fastest_widths(groups, table, 0.25, 4, floor=1.5)


def test_the_plugins_table_check_names_the_flags_of_each_use(net_table, tmp_path):
    from mggc_plugin.upstream import checks

    groups, table = net_table
    path = table.save(tmp_path / "table.json")
    assert checks.latency_table(path, groups) == table
    other = networks.define_G(3, 3, 8, "resnet_6blocks", "instance").eval()
    foreign = ChannelGroups.discover(other, torch.zeros(1, 3, SIZE, SIZE))
    fastest_flags = r"--mggc_latency_table .*table\.json --mggc_widths fastest: .*another network"
    with pytest.raises(ValueError, match=fastest_flags):
        checks.latency_table(path, foreign)
    with pytest.raises(ValueError, match=r"--mggc_target_latency_ms 1e\+06: .*give a target between them"):
        checks.latency_table(path, groups, 1e6)
