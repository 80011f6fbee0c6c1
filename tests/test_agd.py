"""AutoGAN-Distiller's objective: pixel L1, perceptual L1 and total variation to the teacher's
output and nothing else — no discriminator anywhere; the student learns, the teacher stays; the
benchmark's method is flagged discriminator-free."""
import inspect

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mggc_plugin import ChannelGroups, networks, slim
from mggc_plugin.agd import AGDConfig, AGDTrainer, InceptionPerceptual, agd_fit, agd_loss, total_variation

SIZE = 32


def tiny_perceptual():
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.ReLU(), nn.Conv2d(4, 4, 3))


@pytest.fixture
def pair():
    torch.manual_seed(0)
    teacher = networks.define_G(3, 3, 8, "resnet_6blocks", norm="instance")
    groups = ChannelGroups.discover(teacher, torch.zeros(1, 3, SIZE, SIZE))
    student = slim(teacher, groups, [torch.arange(n) < n // 2 for n in groups.sizes])
    return teacher, student


def sources(n=4, seed=0):
    return torch.rand(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_the_objective_has_no_discriminator():
    params = inspect.signature(agd_fit).parameters
    assert not any(name.lower() == "d" or "disc" in name.lower() for name in params)
    assert not any("disc" in name.lower() or name == "D" for name in inspect.signature(AGDTrainer).parameters)
    y, y_T = torch.rand(2, 3, 8, 8) * 2 - 1, torch.rand(2, 3, 8, 8) * 2 - 1
    losses = agd_loss(y, y_T, AGDConfig(), tiny_perceptual())
    assert set(losses) == {"content", "perceptual", "tv", "total"}


def test_the_gradient_is_exactly_that_of_its_three_terms():
    torch.manual_seed(0)
    config = AGDConfig(lambda_content=2.0, lambda_perceptual=0.5, lambda_tv=1e-3)
    net = tiny_perceptual()
    y_T = torch.rand(2, 3, 8, 8) * 2 - 1
    y = (torch.rand(2, 3, 8, 8) * 2 - 1).requires_grad_(True)
    agd_loss(y, y_T, config, net)["total"].backward()
    got = y.grad.clone()
    y.grad = None
    dw = (y[..., :, 1:] - y[..., :, :-1]).abs().sum()
    dh = (y[..., 1:, :] - y[..., :-1, :]).abs().sum()
    expected = 2.0 * F.l1_loss(y, y_T) + 0.5 * F.l1_loss(net(y), net(y_T).detach()) + 1e-3 * (dw + dh) / 2
    expected.backward()
    assert torch.allclose(got, y.grad, atol=1e-7)


def test_total_variation_sums_neighbour_differences_per_image():
    y = torch.tensor([[[[0.0, 1.0], [1.0, 3.0]]]])
    assert total_variation(y).item() == 6.0  # |1-0| + |3-1| across, |1-0| + |3-1| down
    assert total_variation(torch.cat([y, y])).item() == 6.0


def test_a_student_equal_to_the_teacher_has_zero_content_and_perceptual_loss(pair):
    teacher, _ = pair
    import copy

    trainer = AGDTrainer(copy.deepcopy(teacher), teacher, AGDConfig(lr=1e-12), tiny_perceptual())
    logs = trainer.step(sources(2))
    assert logs["content"] < 1e-6 and logs["perceptual"] < 1e-6 and logs["tv"] > 0


def test_agd_fit_distils_the_teacher_and_leaves_it_alone(pair):
    teacher, student = pair
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    net = tiny_perceptual()
    net_before = [p.clone() for p in net.parameters()]
    x = sources(4)
    result = agd_fit(student, teacher, lambda epoch: [x[:2], x[2:]], epochs=30,
                     config=AGDConfig(lr=2e-3), perceptual=net, ema_decay=0.9, progress=False)
    assert len(result.epochs) == 30
    assert result.epochs[-1]["content"] < 0.7 * result.epochs[0]["content"]
    assert result.epochs[-1]["lr"] < result.epochs[0]["lr"]  # upstream's linear policy
    assert set(result.epochs[0]) == {"content", "perceptual", "tv", "total", "lr"}
    assert result.ema_G is not None
    assert not torch.equal(next(result.ema_G.parameters()), next(student.parameters()))
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert all(torch.equal(a, b) and b.grad is None for a, b in zip(net_before, net.parameters()))  # frozen


def test_the_perceptual_network_is_required_when_weighted():
    y = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="perceptual network"):
        agd_loss(y, y, AGDConfig(lambda_perceptual=1.0))
    assert agd_loss(y, y, AGDConfig(lambda_perceptual=0.0))["perceptual"].item() == 0.0
    with pytest.raises(ValueError, match="grad_clip"):
        AGDConfig(grad_clip=0.0)


def test_an_empty_epoch_is_an_error(pair):
    teacher, student = pair
    with pytest.raises(ValueError, match="no batch"):
        agd_fit(student, teacher, lambda epoch: [], epochs=1, config=AGDConfig(lambda_perceptual=0.0), progress=False)


@pytest.mark.fid_wheel
def test_the_inception_perceptual_network_gives_differentiable_maps():
    net = InceptionPerceptual()
    y = (torch.rand(1, 3, 64, 64) * 2 - 1).requires_grad_(True)
    maps = net(y)
    assert maps.dim() == 4 and maps.shape[1] == 192
    maps.abs().mean().backward()
    assert y.grad is not None and y.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in net.parameters())
    with pytest.raises(ValueError, match="not a layer"):
        InceptionPerceptual(layer="relu2_2")


def test_the_benchmark_method_is_discriminator_free(benchmark_script):
    compressors = benchmark_script("compressors")
    method = compressors.METHODS["agd"]
    assert method.discriminator_free
    torch.manual_seed(0)
    G = networks.define_G(3, 3, 16, "resnet_6blocks", "batch")
    D = networks.define_D(6, 8, "basic", norm="batch")
    D_before = {k: v.clone() for k, v in D.state_dict().items()}
    x = sources(6)
    game = compressors.GameData(x, torch.tanh(x.flip(1)), torch.zeros(6, 1, dtype=torch.long))
    ctx = compressors.Context(G, D, dict(input_nc=3, output_nc=3, ngf=16, netG="resnet_6blocks", norm="batch"),
                              dict(input_nc=6, ndf=8, netD="basic", norm="batch"), "hinge", True, game,
                              prune_steps=2, batch_size=1, device="cpu", round_to=4, seed=0, search_candidates=3)
    student = method.make(ctx, 0.25)
    assert student.info["discriminator"] is False and student.info["supernet_steps"] == 2
    assert all("D" not in h and h["G_gan"] == 0.0 for h in student.history)
    assert all(torch.equal(D_before[k], v) for k, v in student.D.state_dict().items())  # the teacher's, untrained
