"""The finetuner trains the slim pair with the GAN objective (+ KD) and never touches the teacher."""
import pytest
import torch

from mggc_plugin import ChannelGroups, networks, slim
from mggc_plugin.finetune import FinetuneConfig, Finetuner, fit, linear_lr


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


def _epoch_batches(x, y, batch_size=2):
    return lambda epoch: ((x[i:i + batch_size], y[i:i + batch_size], y[i:i + batch_size])
                          for i in range(0, len(x), batch_size))


def test_fit_follows_upstreams_linear_policy_and_reports_epoch_means(pair):
    teacher, groups, G, D = pair
    tuner = Finetuner(G, D, FinetuneConfig(gan_mode="lsgan", lr=1e-3))
    x, y = torch.randn(4, 3, 32, 32), torch.rand(4, 3, 32, 32)
    steps = []
    real_step = tuner.step
    tuner.step = lambda *a: steps.append(tuner.opt_D.param_groups[0]["lr"]) or real_step(*a)
    result = fit(tuner, _epoch_batches(x, y), epochs=4, progress=False)
    # keep = 2 constant epochs, then 1 - max(0, e + 1 - 2) / 3: 1, 1, 2/3, 1/3 of the lr, for G and D alike
    expected = [1e-3 * f for f in (1, 1, 2 / 3, 1 / 3)]
    assert [e["lr"] for e in result.epochs] == pytest.approx(expected)
    assert steps == pytest.approx([lr for lr in expected for _ in range(2)])
    assert [linear_lr(5)(e) for e in range(5)] == pytest.approx([1, 1, 3 / 4, 2 / 4, 1 / 4])
    assert set(result.epochs[0]) == {"G_GAN", "G_L1", "G_KD", "D", "lr"} and result.ema_G is None


def test_the_epoch_means_are_the_means_of_the_steps(pair):
    teacher, groups, G, D = pair
    tuner = Finetuner(G, D, FinetuneConfig(gan_mode="lsgan"))
    logs = []
    real_step = tuner.step
    tuner.step = lambda *a: logs.append(real_step(*a)) or logs[-1]
    result = fit(tuner, _epoch_batches(torch.randn(6, 3, 32, 32), torch.rand(6, 3, 32, 32)), epochs=1,
                 progress=False)
    assert len(logs) == 3
    assert result.epochs[0]["G_L1"] == pytest.approx(sum(step["G_L1"] for step in logs) / 3)


def _state(net):
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def test_an_ema_of_decay_0_is_G(pair):
    teacher, groups, G, D = pair
    G.train()
    result = fit(Finetuner(G, D, FinetuneConfig(gan_mode="lsgan")), _epoch_batches(torch.randn(4, 3, 32, 32),
                 torch.rand(4, 3, 32, 32)), epochs=2, ema_decay=0.0, progress=False)
    ema = result.ema_G.state_dict()
    assert all(torch.equal(ema[k], v) for k, v in G.state_dict().items())
    assert ema.keys() == G.state_dict().keys() and result.ema_G is not G


def test_after_one_step_the_ema_is_the_decayed_mix_of_old_and_new(pair):
    teacher, groups, G, D = pair
    G = networks.define_G(3, 3, 8, "resnet_6blocks", norm="batch")  # BatchNorm: buffers that move too
    old = _state(G)
    d = 0.9
    result = fit(Finetuner(G, D, FinetuneConfig(gan_mode="lsgan")), _epoch_batches(torch.randn(2, 3, 32, 32),
                 torch.rand(2, 3, 32, 32)), epochs=1, ema_decay=d, progress=False)
    new, ema = _state(G), result.ema_G.state_dict()
    moved = [k for k in new if new[k].is_floating_point() and not torch.equal(new[k], old[k])]
    assert any("running_mean" in k for k in moved) and any(k.endswith("weight") for k in moved)
    for k in moved:
        assert torch.allclose(ema[k], d * old[k] + (1 - d) * new[k], atol=1e-6), k
    with pytest.raises(ValueError, match="ema_decay"):
        fit(Finetuner(G, D, FinetuneConfig()), _epoch_batches(torch.randn(2, 3, 32, 32), torch.rand(2, 3, 32, 32)),
            epochs=1, ema_decay=1.5, progress=False)


def test_kd_distils_the_teacher_as_given_per_image_norm_included():
    """A pix2pix teacher (BatchNorm) runs with per-image statistics, as upstream's test.py; the
    finetuner must not put it back into eval(), which would distil another network."""
    from mggc_plugin.finetune import FeatureTaps
    from mggc_plugin.teacher import inference_copy

    torch.manual_seed(0)
    teacher = networks.define_G(3, 3, 8, "unet_128", norm="batch")
    with torch.no_grad():  # running statistics unlike any one image's, as after training
        for m in teacher.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 3, 128, 128)
    per_image = inference_copy(teacher)
    with torch.no_grad():
        expected = torch.cat([per_image(x[i:i + 1]) for i in range(len(x))])
        in_eval = torch.cat([teacher.eval()(x[i:i + 1]) for i in range(len(x))])
    assert not torch.allclose(expected, in_eval, atol=1e-3)
    groups = ChannelGroups.discover(teacher, x[:1])
    G = slim(teacher, groups, [torch.arange(n) < max(1, n // 2) for n in groups.sizes])
    D = networks.define_D(6, 8, "basic", norm="instance")
    kd_teacher = inference_copy(teacher)
    tuner = Finetuner(G, D, FinetuneConfig(lambda_kd=1.0), teacher=kd_teacher, kd_layers=[g.root for g in groups])
    out = FeatureTaps(tuner.teacher, ["model"])
    for i in range(len(x)):
        tuner.step(x[i:i + 1], torch.rand(1, 3, 128, 128), torch.rand(1, 3, 128, 128))
        assert torch.equal(out.features["model"], expected[i:i + 1])
    out.remove()


def test_kd_at_norm_distils_the_normalised_features(pair):
    from mggc_plugin.finetune import post_norm_layer

    teacher, groups, G, D = pair
    roots = [g.root for g in groups]
    taps = [post_norm_layer(teacher, r) for r in roots]
    modules = dict(teacher.named_modules())
    # every resnet group's root convolution is followed by an instance norm
    assert all(isinstance(modules[t], torch.nn.InstanceNorm2d) for t in taps)
    unet = networks.define_G(3, 3, 8, "unet_128", norm="batch")
    unet_groups = ChannelGroups.discover(unet, torch.zeros(1, 3, 128, 128))
    unet_taps = [post_norm_layer(unet, g.root) for g in unet_groups]
    # upstream's outermost and innermost down-convolutions have no norm after them: KD falls back
    # to the convolutions themselves; every other group is tapped at its BatchNorm
    fallback = [g.root for t, g in zip(unet_taps, unet_groups) if t == g.root]
    assert fallback == [unet_groups[0].root, unet_groups[6].root]
    unet_modules = dict(unet.named_modules())
    assert all(isinstance(unet_modules[t], torch.nn.BatchNorm2d) for t in unet_taps if t not in fallback)

    x, y = torch.randn(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    losses = {}
    for at in ("root", "norm"):
        torch.manual_seed(1)
        tuner = Finetuner(slim(teacher, groups, [torch.arange(n) < n // 2 for n in groups.sizes]), D,
                          FinetuneConfig(lambda_kd=1.0, kd_at=at), teacher=teacher, kd_layers=roots)
        losses[at] = tuner.step(x, y, y)["G_KD"]
        assert set(tuner._taps_T.features) == set(roots if at == "root" else taps)
        tuner.close()
    assert losses["root"] != losses["norm"]
    with pytest.raises(ValueError, match="kd_at='post'"):
        FinetuneConfig(kd_at="post")
