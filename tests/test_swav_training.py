"""SwAV: Sinkhorn-Knopp codes, the swapped-prediction loss, and training from scratch that learns."""
import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from mggc_plugin import encoders


def test_sinkhorn_codes_are_equipartitioned_assignments():
    g = torch.Generator().manual_seed(0)
    scores = F.normalize(torch.randn(32, 8, generator=g), dim=1) * 0.9  # cosines, like z·c
    q = encoders.sinkhorn_knopp(scores, epsilon=0.05, iterations=3)
    assert q.shape == (32, 8)
    torch.testing.assert_close(q.sum(1), torch.ones(32))  # each sample's code is a distribution
    # with many iterations every prototype receives B/K samples' worth of mass
    q_many = encoders.sinkhorn_knopp(scores, epsilon=0.05, iterations=200)
    torch.testing.assert_close(q_many.sum(0), torch.full((8,), 32 / 8), rtol=0, atol=1e-3)
    # 3 iterations already move towards it from the plain softmax
    soft = torch.softmax(scores / 0.05, dim=1)
    assert (q.sum(0) - 4).abs().sum() < (soft.sum(0) - 4).abs().sum()


def test_sinkhorn_matches_the_official_formula():
    # official: Q = exp(out/eps).T; Q /= sum; 3×(rows /= sum, /K; cols /= sum, /B); Q *= B; Q.T
    scores = torch.randn(16, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 0.5
    q = torch.exp(scores / 0.05).t()
    q /= q.sum()
    for _ in range(3):
        q /= q.sum(dim=1, keepdim=True)
        q /= 5
        q /= q.sum(dim=0, keepdim=True)
        q /= 16
    expected = (q * 16).t()
    torch.testing.assert_close(encoders.sinkhorn_knopp(scores, 0.05, 3), expected)
    # the max-subtraction keeps huge scores finite
    assert torch.isfinite(encoders.sinkhorn_knopp(scores.float() * 100, 0.05, 3)).all()


def test_swav_loss_is_the_swapped_cross_entropy():
    g = torch.Generator().manual_seed(2)
    scores = torch.randn(2 * 6, 4, generator=g, requires_grad=True)
    loss = encoders.swav_loss(scores, batch=6, n_crops=2, crops_for_assign=(0, 1), temperature=0.1)
    s0, s1 = scores[:6].detach(), scores[6:].detach()
    q0, q1 = encoders.sinkhorn_knopp(s0), encoders.sinkhorn_knopp(s1)
    ce = lambda q, s: -(q * torch.log_softmax(s / 0.1, dim=1)).sum(1).mean()  # noqa: E731
    torch.testing.assert_close(loss.detach(), (ce(q0, s1) + ce(q1, s0)) / 2)
    loss.backward()  # gradients flow through the predictions only
    assert scores.grad.abs().sum() > 0


def shapes(n: int, size: int = 24):
    """Two classes (disk, square) with random colours and positions."""
    rng = np.random.default_rng(0)
    images = []
    for i in range(n):
        im = Image.new("RGB", (size, size), tuple(int(c) for c in rng.integers(0, 256, 3)))
        r = rng.uniform(4, 7)
        cx, cy = rng.uniform(r, size - r, 2)
        draw = ImageDraw.Draw(im)
        box = [cx - r, cy - r, cx + r, cy + r]
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if i % 2 else draw.rectangle)(box, fill=colour)
        images.append(im)
    return images


def tiny_config(**kw):
    base = dict(arch="resnet18", feat_dim=16, hidden_mlp=64, n_prototypes=8, size_crops=(24, 12),
                nmb_crops=(2, 2), min_scale_crops=(0.5, 0.2), max_scale_crops=(1.0, 0.5), batch_size=8,
                epochs=8, warmup_epochs=0, freeze_prototypes_epochs=0, lr=2.0, seed=0)
    base.update(kw)
    return encoders.SwAVConfig(**base)


def test_training_from_scratch_decreases_the_loss():
    torch.manual_seed(0)
    config = tiny_config()
    net = encoders.SwAVNet(config.arch, config.feat_dim, config.hidden_mlp, config.n_prototypes)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    losses = encoders.train_swav(net, shapes(16), config, progress=False)
    assert len(losses) == 8 * 2  # 16 images, batch 8, drop_last
    assert all(np.isfinite(losses))
    first, last = np.mean(losses[:4]), np.mean(losses[-4:])
    assert last < first - 0.3, (first, last)
    assert not torch.equal(before["backbone.conv1.weight"], net.backbone.conv1.weight)
    # prototypes are re-normalised before every step
    torch.testing.assert_close(net.prototypes.weight.norm(dim=1), torch.ones(8), atol=0.05, rtol=0)


def test_queued_embeddings_join_the_sinkhorn_problem_only():
    g = torch.Generator().manual_seed(4)
    scores, queued = torch.randn(2 * 6, 4, generator=g), torch.randn(10, 4, generator=g)
    loss = encoders.swav_loss(scores, 6, 2, (0,), queue_scores=[queued])
    q = encoders.sinkhorn_knopp(torch.cat([queued, scores[:6]]))[-6:]
    expected = -(q * torch.log_softmax(scores[6:] / 0.1, dim=1)).sum(1).mean()
    torch.testing.assert_close(loss, expected)
    assert not torch.allclose(loss, encoders.swav_loss(scores, 6, 2, (0,)))


def test_resumed_training_equals_uninterrupted_training():
    # with the queue switched on after the first epoch, so it must be carried over too
    config = tiny_config(epochs=3, queue_length=12, epoch_queue_starts=1)
    images = shapes(16)
    torch.manual_seed(0)
    a = encoders.SwAVNet(config.arch, config.feat_dim, config.hidden_mlp, config.n_prototypes)
    init = {k: v.clone() for k, v in a.state_dict().items()}
    states = []
    full = encoders.train_swav(a, images, config, on_epoch_end=states.append, progress=False)
    b = encoders.SwAVNet(config.arch, config.feat_dim, config.hidden_mlp, config.n_prototypes)
    b.load_state_dict(init)
    resumed = encoders.train_swav(b, images, config, resume=states[1], progress=False)
    assert [s.epoch for s in states] == [1, 2, 3]
    assert states[0].queue is None and states[1].queue.shape == (2, 8, 16)  # 12 → a multiple of 8
    assert states[1].queue.abs().sum() > 0
    np.testing.assert_allclose(resumed, full, rtol=1e-4)
    for k, v in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[k], v, rtol=1e-4, atol=1e-5)


def _nan_gradient(param, calls=None):
    """Make ``param``'s gradient all NaN (on its first ``calls`` backward passes; None: always)."""
    seen = []

    def hook(grad):
        seen.append(1)
        return torch.full_like(grad, float("nan")) if calls is None or len(seen) <= calls else grad
    param.register_hook(hook)


def test_a_step_with_a_non_finite_gradient_is_skipped_with_a_warning(caplog):
    config = tiny_config(epochs=1)
    torch.manual_seed(0)
    net = encoders.SwAVNet(config.arch, config.feat_dim, config.hidden_mlp, config.n_prototypes)
    before = {k: v.detach().clone() for k, v in net.named_parameters()}
    _nan_gradient(net.backbone.layer4[0].conv1.weight, calls=1)
    caplog.set_level(logging.WARNING, logger="mggc_plugin.encoders.swav_train")
    losses = encoders.train_swav(net, shapes(8), config, progress=False)  # one iteration
    assert len(losses) == 1 and np.isfinite(losses[0])
    assert "iteration 0: non-finite gradient in backbone.layer4.0.conv1.weight; step skipped" in caplog.text
    for name, value in net.named_parameters():  # BatchNorm's running statistics did move in the forward pass
        if name != "prototypes.weight":  # re-normalised before the step
            assert torch.equal(value, before[name]), name


def test_non_finite_gradients_step_after_step_stop_the_training(monkeypatch):
    from mggc_plugin.encoders import swav_train
    from mggc_plugin.errors import MGGCUserError

    monkeypatch.setattr(swav_train, "MAX_NONFINITE_STEPS", 2)
    config = tiny_config(epochs=1)
    net = encoders.SwAVNet(config.arch, config.feat_dim, config.hidden_mlp, config.n_prototypes)
    _nan_gradient(net.prototypes.weight)
    with pytest.raises(MGGCUserError, match=r"2 steps in a row had non-finite gradients \(last in prototypes.weight\)"
                                            r" in float32; use larger --swav_crops or a lower --swav_lr"):
        encoders.train_swav(net, shapes(16), config, progress=False)


def test_too_few_images_is_a_clear_error():
    config = tiny_config()
    net = encoders.SwAVNet(config.arch, config.feat_dim, config.hidden_mlp, config.n_prototypes)
    with pytest.raises(ValueError, match="batch_size=8 .*got 5"):
        encoders.train_swav(net, shapes(5), config, progress=False)


def test_encoder_embeds_in_eval_mode_independently_of_the_batch():
    net = encoders.SwAVNet("resnet18", 16, 64, 8)
    enc = encoders.SwAVEncoder(net, 32)
    x = torch.rand(4, 3, 24, 24) * 2 - 1
    e = enc.embed(x)
    assert e.shape == (4, 512) and enc.dim == 512
    torch.testing.assert_close(enc.embed(x[1:2]), e[1:2], rtol=1e-4, atol=1e-5)
    gray = enc.embed(x[:, :1])  # one-channel images are repeated to RGB
    torch.testing.assert_close(gray, enc.embed(x[:, :1].expand(-1, 3, -1, -1)))
    assert enc.describe()["arch"] == "resnet18"


def test_config_rejects_inconsistent_crops():
    with pytest.raises(ValueError, match="same length"):
        encoders.SwAVConfig(size_crops=(224,), nmb_crops=(2, 6))
    with pytest.raises(ValueError, match="crops_for_assign"):
        encoders.SwAVConfig(nmb_crops=(1, 1), size_crops=(224, 96), crops_for_assign=(0, 2))
