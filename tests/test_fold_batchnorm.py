"""BatchNorm folded into the convolution before it computes what the unfolded network computes."""
import copy

import pytest
import torch
from torch import nn

from mggc_plugin import ChannelGroups, networks, save_slim, slim
from mggc_plugin.cli import main
from mggc_plugin.deploy import fold_batchnorm
from mggc_plugin.errors import MGGCUserError
from mggc_plugin.teacher import per_image_norm


def batchnorms(net: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in net.modules())


def with_statistics(net: nn.Module, size: int) -> nn.Module:
    """Give every BatchNorm non-trivial running statistics and affine parameters, as after training."""
    torch.manual_seed(1)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 0.5
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.5, 0.5)
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(2, 3, size, size) * 2 + 0.3)
    return net.eval()


@pytest.mark.parametrize("netG,size", [("resnet_6blocks", 32), ("unet_128", 128)])
def test_folded_outputs_equal_unfolded(netG, size):
    torch.manual_seed(0)
    net = with_statistics(networks.define_G(3, 3, 8, netG, norm="batch"), size)
    folded = fold_batchnorm(net)
    assert batchnorms(net) > 0 and batchnorms(folded) == 0, "every conv->BatchNorm pair is folded, the model kept"
    x = torch.rand(2, 3, size, size) * 2 - 1
    with torch.no_grad():
        assert (folded(x) - net(x)).abs().max().item() < 1e-5


def test_per_image_and_train_mode_batchnorm_is_refused():
    net = networks.define_G(3, 3, 8, "resnet_6blocks", norm="batch")
    with pytest.raises(MGGCUserError, match="batch's own statistics.*per_image_norm"):
        fold_batchnorm(per_image_norm(net.eval()))
    with pytest.raises(MGGCUserError, match="train mode"):
        fold_batchnorm(networks.define_G(3, 3, 8, "resnet_6blocks", norm="batch").train())


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_export_folds_batchnorm_and_keeps_parity(tmp_path, capsys):
    torch.manual_seed(0)
    G = with_statistics(networks.define_G(3, 3, 8, "resnet_6blocks", norm="batch"), 32)
    groups = ChannelGroups.discover(G, torch.zeros(1, 3, 32, 32))
    save_slim(slim(G, groups, [torch.arange(n) % 2 == 0 for n in groups.sizes]), tmp_path / "g.slim.pt")
    assert main(["export", str(tmp_path / "g.slim.pt"), "--format", "torchscript", "--norm_stats", "running"]) == 0
    assert "BatchNorm folded" in capsys.readouterr().out
    assert batchnorms(torch.jit.load(str(tmp_path / "g.slim.ts"))) == 0
    assert main(["export", str(tmp_path / "g.slim.pt"), "--format", "onnx", "--out", str(tmp_path / "g.onnx")]) == 0
    assert "BatchNorm per image, as InstanceNorm" in capsys.readouterr().out  # the default: as evaluated


def test_per_image_batchnorm_exports_as_instancenorm_with_the_same_outputs():
    from mggc_plugin.deploy.fold import batchnorm_as_instancenorm

    net = with_statistics(networks.define_G(3, 3, 8, "unet_128", norm="batch"), 128)
    reference = per_image_norm(copy.deepcopy(net).eval())
    x = torch.randn(3, 3, 128, 128)
    as_instance = batchnorm_as_instancenorm(reference)
    assert batchnorms(as_instance) == 0
    with torch.no_grad():
        per_image = torch.cat([reference(x[i:i + 1]) for i in range(len(x))])
        assert torch.allclose(as_instance(x), per_image, atol=1e-5)  # per image at any batch size
        assert not torch.allclose(fold_batchnorm(net.eval())(x[:1]), per_image[:1], atol=1e-3)
