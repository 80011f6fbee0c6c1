"""Loading a SwAV checkpoint in the official layout maps every backbone weight, or says what is missing."""
import pytest
import torch

from mggc_plugin import encoders


def official_layout(net: encoders.SwAVNet) -> dict:
    """The layout of ``swav_800ep_pretrain.pth.tar``: the DDP-wrapped official ResNet's state
    dict — keys ``module.conv1.weight``, ``module.layer1.0.bn1.running_mean``, ...,
    ``module.projection_head.0.weight``, ``module.prototypes.weight`` — with no ``fc``."""
    state = {}
    for k, v in net.state_dict().items():
        state["module." + k.removeprefix("backbone.")] = v.clone()
    return state


def randomised(arch: str, **head) -> encoders.SwAVNet:
    torch.manual_seed(7)
    net = encoders.SwAVNet(arch, **head)
    with torch.no_grad():
        for t in net.state_dict().values():
            if t.is_floating_point():
                t.uniform_(-1, 1)  # every tensor distinct from a fresh initialisation
    return net


@pytest.mark.parametrize("arch", ["resnet50", "resnet18"])
def test_every_tensor_of_an_official_layout_checkpoint_is_loaded(tmp_path, arch):
    source = randomised(arch, feat_dim=128, hidden_mlp=2048, n_prototypes=3000)
    state = official_layout(source)
    assert "module.conv1.weight" in state and "module.prototypes.weight" in state
    assert not any(k.startswith(("module.fc.", "module.backbone.")) for k in state)
    path = tmp_path / "swav_800ep_pretrain.pth.tar"
    torch.save(state, path)

    # built with other head sizes on purpose: the checkpoint's shapes win
    net, report = encoders.load_swav_checkpoint(path, arch, feat_dim=16, hidden_mlp=32, n_prototypes=10)
    loaded = net.state_dict()
    assert set(loaded) == set(source.state_dict())
    for k, v in source.state_dict().items():
        assert torch.equal(loaded[k], v), k
    n_backbone = len([k for k in source.backbone.state_dict()])
    assert report == {"backbone_tensors": n_backbone, "head_from_checkpoint": True, "feat_dim": 128,
                      "hidden_mlp": 2048, "n_prototypes": 3000}


def test_training_checkpoint_wrapper_and_backbone_only_files(tmp_path):
    source = randomised("resnet18", feat_dim=8, hidden_mlp=16, n_prototypes=5)
    state = official_layout(source)
    torch.save({"epoch": 3, "state_dict": state, "optimizer": {}}, tmp_path / "checkpoint.pth.tar")
    net, report = encoders.load_swav_checkpoint(tmp_path / "checkpoint.pth.tar", "resnet18")
    assert report["head_from_checkpoint"] and torch.equal(net.prototypes.weight, source.prototypes.weight)

    head = ("module.projection_head", "module.prototypes")
    backbone_only = {k: v for k, v in state.items() if not k.startswith(head)}
    torch.save(backbone_only, tmp_path / "backbone.pth")
    net, report = encoders.load_swav_checkpoint(tmp_path / "backbone.pth", "resnet18", 8, 16, 5)
    assert not report["head_from_checkpoint"]
    for k, v in source.backbone.state_dict().items():
        assert torch.equal(net.backbone.state_dict()[k], v), k


def test_a_missing_backbone_weight_is_an_error_that_names_it(tmp_path):
    state = official_layout(randomised("resnet18", feat_dim=8, hidden_mlp=16, n_prototypes=5))
    del state["module.layer3.1.bn2.running_var"]
    torch.save(state, tmp_path / "ckpt.pth")
    with pytest.raises(ValueError, match=r"lacks 1 .*layer3\.1\.bn2\.running_var"):
        encoders.load_swav_checkpoint(tmp_path / "ckpt.pth", "resnet18")


def test_num_batches_tracked_may_be_absent(tmp_path):
    state = official_layout(randomised("resnet18", feat_dim=8, hidden_mlp=16, n_prototypes=5))
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "ckpt.pth")
    net, _ = encoders.load_swav_checkpoint(tmp_path / "ckpt.pth", "resnet18")
    assert torch.equal(net.backbone.conv1.weight, state["module.conv1.weight"])


def test_wrong_architecture_is_an_error(tmp_path):
    torch.save(official_layout(randomised("resnet18", feat_dim=8, hidden_mlp=16, n_prototypes=5)),
               tmp_path / "r18.pth")
    with pytest.raises(ValueError, match="check --swav_arch"):
        encoders.load_swav_checkpoint(tmp_path / "r18.pth", "resnet50")
    state = official_layout(randomised("resnet18", feat_dim=8, hidden_mlp=16, n_prototypes=5))
    state["module.fc.weight"] = torch.zeros(10, 512)
    torch.save(state, tmp_path / "extra.pth")
    with pytest.raises(ValueError, match=r"1 keys .*fc\.weight"):
        encoders.load_swav_checkpoint(tmp_path / "extra.pth", "resnet18")


def test_missing_or_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="from scratch"):
        encoders.load_swav_checkpoint(tmp_path / "nope.pth.tar")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="not a SwAV state dict"):
        encoders.load_swav_checkpoint(tmp_path / "list.pth")
