"""The finetuner trains the slim pair with the GAN objective (+ KD) and never touches the teacher."""
import pytest
import torch

from mggc_plugin import ChannelGroups, networks, slim
from mggc_plugin.finetune import FinetuneConfig, Finetuner


@pytest.fixture()
def pair():
    torch.manual_seed(0)
    teacher = networks.define_G(3, 3, 8, "resnet_6blocks", norm="instance")
    groups = ChannelGroups.discover(teacher, torch.zeros(1, 3, 32, 32))
    G = slim(teacher, groups, [torch.arange(n) < n // 2 for n in groups.sizes])
    D = networks.define_D(6, 8, "basic", norm="instance")
    return teacher, groups, G, D


def test_l1_to_the_target_decreases(pair):
    teacher, groups, G, D = pair
    tuner = Finetuner(G, D, FinetuneConfig(gan_mode="lsgan"))
    x = torch.randn(4, 3, 32, 32)
    y = torch.tanh(x.flip(1))  # a mapping the slim G can learn
    first = tuner.step(x, y, y)["G_L1"]
    for _ in range(40):
        last = tuner.step(x, y, y)["G_L1"]
    assert last < 0.9 * first


def test_kd_trains_adapters_and_leaves_the_teacher_alone(pair):
    teacher, groups, G, D = pair
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    tuner = Finetuner(G, D, FinetuneConfig(lambda_kd=1.0), teacher=teacher, kd_layers=[g.root for g in groups])
    assert len(tuner.adapters) == len(groups)
    adapter = next(iter(tuner.adapters.values()))
    w0 = adapter.weight.clone()
    x, y = torch.randn(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    logs = tuner.step(x, y, y)
    assert logs["G_KD"] > 0 and not torch.equal(adapter.weight, w0)
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    tuner.close()
    assert all(not m._forward_hooks for m in list(teacher.modules()) + list(G.modules()))


def test_kd_needs_the_teacher(pair):
    teacher, groups, G, D = pair
    with pytest.raises(ValueError, match="lambda_kd > 0 needs the teacher"):
        Finetuner(G, D, FinetuneConfig(lambda_kd=1.0))
