"""f_D / f_G (Eq. 2), R (Eq. 5) and L (Eq. 6)."""
import math

import pytest
import torch

from mggc_plugin.losses import GAN_MODES, L, R, f_D, f_G


def test_R_is_zero_at_and_below_budget():
    for t in (0.0, 10.0, 24.9, 25.0):
        T = torch.tensor(t, dtype=torch.float64, requires_grad=True)
        r = R(T, p=0.25, T_total=100.0)
        r.backward()
        assert r.item() == 0.0
        assert T.grad.item() == 0.0


def test_R_is_the_log_ratio_above_budget():
    T = torch.tensor(40.0, dtype=torch.float64, requires_grad=True)
    r = R(T, p=0.25, T_total=100.0)
    r.backward()
    assert r.item() == pytest.approx(math.log(40.0 / 25.0), rel=1e-12)
    assert T.grad.item() == pytest.approx(1 / 40.0, rel=1e-12)


def test_R_rejects_a_meaningless_budget():
    with pytest.raises(ValueError, match="fraction"):
        R(torch.tensor(1.0), p=0.0, T_total=10.0)


def test_L_is_the_kept_fraction_of_all_groups():
    v = [torch.tensor([1.0, 0.0, 1.0]), torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0])]
    assert L(v).item() == pytest.approx(4 / 8)


@pytest.mark.parametrize("mode,real,fake,d_loss,g_loss", [
    ("lsgan", 0.5, 0.25, 0.5 * (0.25 + 0.0625), 0.5625),
    ("hinge", 0.5, 0.25, 0.5 * (0.5 + 1.25), -0.25),
    ("vanilla", 0.5, 0.25, 0.5 * (math.log1p(math.exp(-0.5)) + math.log1p(math.exp(0.25))),
     math.log1p(math.exp(-0.25))),
])
def test_gan_losses_on_known_values(mode, real, fake, d_loss, g_loss):
    pred_real, pred_fake = torch.full((2, 1, 3, 3), real), torch.full((2, 1, 3, 3), fake)
    assert f_D(pred_real, pred_fake, mode).item() == pytest.approx(d_loss, rel=1e-6)
    assert f_G(pred_fake, mode).item() == pytest.approx(g_loss, rel=1e-6)


@pytest.mark.parametrize("mode", GAN_MODES)
def test_losses_point_the_right_way(mode):
    good, bad = torch.full((1, 1, 2, 2), 2.0), torch.full((1, 1, 2, 2), -2.0)
    assert f_D(good, bad, mode) < f_D(bad, good, mode)
    assert f_G(good, mode) < f_G(bad, mode)


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="gan_mode"):
        f_G(torch.zeros(1), "wgan")
