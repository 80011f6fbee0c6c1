"""Slim checkpoints: self-describing, weights_only-readable, bit-identical round trip, clear errors."""
import pytest
import torch

from mggc_plugin import ArchSpec, ChannelGroups, load_slim, networks, register_builder, save_slim, slim


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    G = networks.define_G(3, 3, 16, "unet_128", norm="batch", use_dropout=True)
    groups = ChannelGroups.discover(G, torch.zeros(1, 3, 128, 128))
    masks = [torch.rand(n) > 0.5 for n in groups.sizes]
    for m in masks:
        m[-1] = True
    return slim(G, groups, masks).eval()


def test_round_trip_is_bit_identical(small, tmp_path):
    save_slim(small, tmp_path / "g.pt")
    again = load_slim(tmp_path / "g.pt")
    assert small.state_dict().keys() == again.state_dict().keys()
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in small.state_dict().items())
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        assert torch.equal(small(x), again(x))


def test_file_is_plain_data(small, tmp_path):
    save_slim(small, tmp_path / "g.pt")
    payload = torch.load(tmp_path / "g.pt", weights_only=True)
    assert payload["arch"] == {"builder": "mggc_plugin.networks:define_G",
                               "kwargs": dict(input_nc=3, output_nc=3, ngf=16, netG="unet_128", norm="batch",
                                              use_dropout=True)}
    assert payload["widths"] == small.mggc_slim["widths"] and payload["input_shape"] == [1, 3, 128, 128]


def test_not_a_slim_checkpoint(tmp_path):
    torch.save(networks.define_D(3, 8, "basic").state_dict(), tmp_path / "latest_net_D.pth")
    with pytest.raises(ValueError, match="not a slim checkpoint.*state dict"):
        load_slim(tmp_path / "latest_net_D.pth")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="not a readable torch file"):
        load_slim(tmp_path / "notes.txt")
    with pytest.raises(FileNotFoundError, match="no slim checkpoint"):
        load_slim(tmp_path / "missing.pt")


def test_truncated_file(small, tmp_path):
    save_slim(small, tmp_path / "g.pt")
    data = (tmp_path / "g.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable torch file.*truncated"):
        load_slim(tmp_path / "cut.pt")


def test_checkpoint_for_another_architecture(small, tmp_path):
    save_slim(small, tmp_path / "g.pt")
    payload = torch.load(tmp_path / "g.pt", weights_only=True)
    payload["arch"]["kwargs"]["netG"] = "resnet_6blocks"
    torch.save(payload, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="does not fit the architecture"):
        load_slim(tmp_path / "other.pt")


def test_unregistered_builder_is_never_imported(small, tmp_path):
    save_slim(small, tmp_path / "g.pt")
    payload = torch.load(tmp_path / "g.pt", weights_only=True)
    payload["arch"]["builder"] = "os:system"
    torch.save(payload, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="'os:system', which is not registered"):
        load_slim(tmp_path / "evil.pt")


def test_own_architecture_with_registered_builder(tmp_path):
    def tiny(width: int) -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Conv2d(3, width, 3, padding=1), torch.nn.ReLU(),
                                   torch.nn.Conv2d(width, 3, 3, padding=1))
    net = tiny(8)
    net.mggc_arch = ArchSpec("tests:tiny", {"width": 8})
    groups = ChannelGroups.discover(net, torch.zeros(1, 3, 16, 16))
    small = slim(net, groups, [torch.arange(8) < 3])
    register_builder("tests:tiny", tiny)
    save_slim(small, tmp_path / "tiny.pt")
    assert load_slim(tmp_path / "tiny.pt")[0].out_channels == 3


def test_nothing_written_on_failure(tmp_path):
    with pytest.raises(ValueError, match="not produced by mggc_plugin.slim"):
        save_slim(networks.define_D(3, 8, "basic"), tmp_path / "d.pt")
    with pytest.raises(ValueError, match="no architecture description"):
        save_slim(torch.nn.Conv2d(3, 3, 1), tmp_path / "c.pt")
    assert list(tmp_path.iterdir()) == []
