"""Our networks are state-dict compatible with upstream's and compute the same function."""
import pytest
import torch

from mggc_plugin import networks

pytestmark = pytest.mark.upstream


@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
@pytest.mark.parametrize("netG,size", [("resnet_6blocks", 64), ("resnet_9blocks", 64), ("unet_128", 128),
                                       ("unet_256", 256)])
def test_generator_matches_upstream(upstream_networks, tmp_path, netG, size, norm):
    theirs = upstream_networks.define_G(3, 3, 8, netG, norm, use_dropout=True)
    torch.save(theirs.state_dict(), tmp_path / "latest_net_G.pth")
    ours = networks.load_state(networks.define_G(3, 3, 8, netG, norm, use_dropout=True), tmp_path / "latest_net_G.pth")
    x = torch.randn(2, 3, size, size)
    assert torch.equal(theirs.eval()(x), ours.eval()(x))


@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
@pytest.mark.parametrize("netD,n_layers", [("basic", 3), ("n_layers", 5), ("pixel", 3)])
def test_discriminator_matches_upstream(upstream_networks, tmp_path, netD, n_layers, norm):
    theirs = upstream_networks.define_D(6, 8, netD, n_layers, norm)
    torch.save(theirs.state_dict(), tmp_path / "latest_net_D.pth")
    ours = networks.load_state(networks.define_D(6, 8, netD, n_layers, norm), tmp_path / "latest_net_D.pth")
    x = torch.randn(2, 6, 128, 128)
    assert torch.equal(theirs.eval()(x), ours.eval()(x))


def test_shared_teacher_loads(upstream_networks):
    """The teacher trained by upstream on facades loads strictly into our unet_128."""
    from pathlib import Path
    path = Path(__file__).resolve().parents[2] / "shared/teachers/facades_pix2pix_unet128_ngf32/latest_net_G.pth"
    if not path.is_file():
        pytest.skip(f"no shared teacher at {path}")
    G = networks.load_state(networks.define_G(3, 3, 32, "unet_128", "batch", use_dropout=True), path)
    assert sum(p.numel() for p in G.parameters()) == pytest.approx(10.46e6, rel=1e-3)
