import pytest
import torch

from mggc_plugin import networks


@pytest.mark.parametrize("netG,size", [("resnet_6blocks", 64), ("resnet_9blocks", 64), ("unet_128", 128),
                                       ("unet_256", 256)])
def test_generator_shapes(netG, size):
    G = networks.define_G(3, 2, 8, netG, norm="instance")
    assert G(torch.randn(1, 3, size, size)).shape == (1, 2, size, size)


def test_bias_follows_upstream_rule():
    # A conv before a norm has a bias only with InstanceNorm (upstream's use_bias rule).
    assert networks.define_G(3, 3, 8, "resnet_6blocks", norm="instance").model[1].bias is not None
    assert networks.define_G(3, 3, 8, "resnet_6blocks", norm="batch").model[1].bias is None
    assert networks.define_G(3, 3, 8, "resnet_6blocks", norm="none").model[1].bias is None


def test_arch_spec_recorded():
    D = networks.define_D(6, 16, "n_layers", n_layers_D=4, norm="instance")
    assert D.mggc_arch.builder == "mggc_plugin.networks:define_D"
    assert D.mggc_arch.kwargs == dict(input_nc=6, ndf=16, netD="n_layers", n_layers_D=4, norm="instance")


@pytest.mark.parametrize("call,bad", [
    (lambda: networks.define_G(3, 3, 8, "resnet_5blocks"), "resnet_5blocks"),
    (lambda: networks.define_D(3, 8, "patch"), "patch"),
    (lambda: networks.define_G(3, 3, 8, "unet_128", norm="layer"), "layer"),
])
def test_unknown_names_are_named_in_the_error(call, bad):
    with pytest.raises(ValueError, match=f"'{bad}'.*choose one of"):
        call()


def test_load_state_rejects_another_architecture(tmp_path):
    torch.save(networks.define_G(3, 3, 8, "unet_128").state_dict(), tmp_path / "latest_net_G.pth")
    networks.load_state(networks.define_G(3, 3, 8, "unet_128"), tmp_path / "latest_net_G.pth")
    with pytest.raises(ValueError, match="another architecture.*--ngf"):
        networks.load_state(networks.define_G(3, 3, 16, "unet_128"), tmp_path / "latest_net_G.pth")


def test_load_state_names_a_damaged_file(tmp_path):
    """torch's own error ("PytorchStreamReader failed reading zip archive") names no file."""
    good = tmp_path / "latest_net_G.pth"
    torch.save(networks.define_G(3, 3, 8, "unet_128").state_dict(), good)
    truncated = tmp_path / "truncated_net_G.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match=f"{truncated} cannot be read as an upstream checkpoint .*truncated.*copy the "
                                         f"file again"):
        networks.load_state(networks.define_G(3, 3, 8, "unet_128"), truncated)
