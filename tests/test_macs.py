"""MACs in the literature's convention (convs + linear, ConvTranspose2d by output size)."""
import pytest
import torch
from torch import nn

from mggc_plugin import count_macs, networks


def test_resnet_9blocks_is_56_80_G():
    G = networks.define_G(3, 3, 64, "resnet_9blocks", norm="instance")
    assert count_macs(G, (1, 3, 256, 256)).total / 1e9 == pytest.approx(56.80, abs=0.01)


def test_unet_256_is_18_14_G():
    G = networks.define_G(3, 3, 64, "unet_256", norm="batch")
    assert count_macs(G, (1, 3, 256, 256)).total / 1e9 == pytest.approx(18.14, abs=0.01)


def test_transposed_conv_counted_by_output_size_and_norms_not_counted():
    net = nn.Sequential(nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1), nn.BatchNorm2d(6),
                        nn.ReLU(), nn.Conv2d(6, 5, 1), nn.Flatten(), nn.Linear(5 * 16 * 16, 7))
    profile = count_macs(net, (2, 4, 8, 8))
    expected = [2 * 6 * 16 * 16 * 4 * 9, 2 * 5 * 16 * 16 * 6, 2 * 7 * 5 * 16 * 16]
    assert [layer.macs for layer in profile.layers] == expected
    assert profile.total == sum(layer.macs for layer in profile.layers)


def test_profile_leaves_model_unchanged():
    G = networks.define_G(3, 3, 8, "unet_128", norm="batch").train()
    before = {k: v.clone() for k, v in G.state_dict().items()}
    count_macs(G, (1, 3, 128, 128))
    assert G.training and all(torch.equal(before[k], v) for k, v in G.state_dict().items())


def test_table_lists_every_layer_and_the_total():
    profile = count_macs(networks.define_D(6, 8, "basic"), (1, 6, 64, 64))
    table = profile.table()
    assert len(profile.layers) == 5 and all(layer.name in table for layer in profile.layers)
    assert f"{int(profile.total):,d}" in table.splitlines()[-1]
