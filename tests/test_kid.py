"""KID: the unbiased MMD² estimator against a direct computation, its bias, the subset size, the
``mggc eval kid`` command (end to end with the Inception network of the ``eval`` extra)."""
import re
import sys

import numpy as np
import pytest

from mggc_plugin import metrics
from mggc_plugin.cli import main
from mggc_plugin.metrics import KID, kid

D = metrics.FID_FEATURE_DIM


def _k(x, y):
    return (x @ y / D + 1) ** 3


def _direct_unbiased_mmd2(x, y):
    """The unbiased MMD² written out pair by pair (Gretton et al. 2012, Eq. 3)."""
    m = len(x)
    xx = sum(_k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(_k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(_k(x[i], y[j]) for i in range(m) for j in range(m)) / m ** 2
    return xx + yy - 2 * xy


def test_kid_is_the_unbiased_mmd2_of_a_direct_computation():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((6, D)), 0.5 + rng.standard_normal((6, D))
    # With subset_size = n every subset is a permutation of the whole set, and MMD² does not
    # depend on the order: every subset gives the direct value.
    result = kid(x, y, subsets=3, subset_size=6)
    assert result.mean == pytest.approx(_direct_unbiased_mmd2(x, y), rel=1e-9)
    assert result.std == pytest.approx(0, abs=1e-9)
    assert (result.subset_size, result.subsets, result.n_real, result.n_fake) == (6, 3, 6, 6)


def test_kid_of_a_set_with_itself_is_the_closed_form_and_near_zero():
    # Inception-like features: a large common mean, small spread.
    rng = np.random.default_rng(1)
    x = 1 + 0.1 * rng.standard_normal((40, D))
    gram = _k(x, x.T)
    m = len(x)
    off_diagonal = (gram.sum() - np.trace(gram)) / (m * (m - 1))
    # Within a side the diagonal k(x_i, x_i) is dropped, across sides it is not.
    expected = 2 * (off_diagonal - np.trace(gram) / m) / m
    assert kid(x, x, subsets=1, subset_size=m).mean == pytest.approx(expected, rel=1e-9)
    shifted = kid(x, x + 0.1, subsets=1, subset_size=m).mean
    assert shifted > 0.1 and abs(expected) < 0.05 * shifted


def test_kid_is_unbiased_for_two_samples_of_one_distribution():
    rng = np.random.default_rng(2)
    m, repeats = 20, 200
    values, biased = [], []
    for _ in range(repeats):
        x, y = rng.standard_normal((m, D)), rng.standard_normal((m, D))
        values.append(kid(x, y, subsets=1).mean)
        biased.append(_k(x, x.T).mean() + _k(y, y.T).mean() - 2 * _k(x, y.T).mean())
    se = np.std(values, ddof=1) / np.sqrt(repeats)
    assert abs(np.mean(values)) < 4 * se
    # The biased (V-statistic) estimate of the same pairs is far from 0: the check can tell.
    assert np.mean(biased) > 20 * se


def test_subset_size_adapts_to_small_sets_and_draws_are_seeded():
    rng = np.random.default_rng(3)
    real, fake = rng.standard_normal((30, D)), 0.2 + rng.standard_normal((12, D))
    a = kid(real, fake, subsets=10)
    assert (a.subset_size, a.n_real, a.n_fake, a.subsets) == (12, 30, 12, 10)
    assert a.std > 0  # the real subsets differ
    assert kid(real, fake, subsets=10) == a
    assert kid(real, fake, subsets=10, seed=1).mean != a.mean
    assert kid(real, fake, subsets=4, subset_size=5).subset_size == 5


@pytest.mark.parametrize("kwargs, message", [
    ({"subset_size": 13}, r"subset_size=13 with 30 real and 12 fake images: need 2 <= subset_size <= 12"),
    ({"subset_size": 1}, r"subset_size=1 .* need 2 <= subset_size"),
    ({"subsets": 0}, r"subsets=0: need at least 1"),
])
def test_bad_arguments_are_clear_errors(kwargs, message):
    rng = np.random.default_rng(4)
    with pytest.raises(ValueError, match=message):
        kid(rng.standard_normal((30, D)), rng.standard_normal((12, D)), **kwargs)


def test_features_of_the_wrong_width_and_empty_folders_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=r"features of shape \(5, 64\): need \(N, 2048\)"):
        kid(np.zeros((5, 64)), np.zeros((5, 64)))
    with pytest.raises(ValueError, match=r"no images in .*it is empty"):
        kid(tmp_path, np.zeros((5, D)))


def test_a_folder_of_one_image_is_a_clear_error(tmp_path):
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "only.png")
    with pytest.raises(ValueError, match=r"subset_size=1 with 1 real and 5 fake images"):
        kid(tmp_path, np.zeros((5, D)))


def test_kid_prints_as_mean_plus_minus_std():
    assert str(KID(0.0123451, 0.0012341, 106, 100, 506, 106)) == "KID 0.012345 ± 0.001234"


def test_missing_torchmetrics_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchmetrics.image.kid", None)  # makes the import fail
    with pytest.raises(ValueError, match=r"KID needs torchmetrics.*pip install 'mggc-plugin\[eval\]'"):
        kid(np.zeros((4, D)), np.ones((4, D)))


def test_cli_reports_a_bad_subset_size(tmp_path, capsys):
    from PIL import Image

    for name in ("real", "fake"):
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(tmp_path / name / f"{i}.png")
    argv = ["eval", "kid", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"),
            "--subset_size", "4"]
    assert main(argv) == 2
    assert "subset_size=4 with 3 real and 3 fake images" in capsys.readouterr().err


@pytest.mark.fid_wheel
def test_cli_prints_kid_of_two_tiny_folders(tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(5)
    for name, offset in (("real", 0), ("fake", 120)):
        (tmp_path / name).mkdir()
        for i in range(3):
            pixels = np.clip(rng.normal(60 + offset, 30, (64, 64, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / name / f"{i}.png")
    argv = ["eval", "kid", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"),
            "--subsets", "5", "--device", "cpu"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "5 subsets of 3" in lines[0]
    match = re.fullmatch(r"KID (-?\d+\.\d{6}) ± (\d+\.\d{6})", lines[-1])
    assert match, lines[-1]
    assert float(match.group(1)) > 0  # dark noise against bright noise
