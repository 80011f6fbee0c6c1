"""Confidence intervals for differences between students: the paired bootstrap over images and
the Student-t interval over seeds, against hand computations."""
import numpy as np
import pytest

from mggc_plugin.metrics import paired_bootstrap, seed_interval, t_interval


def test_bootstrap_of_two_images_by_hand():
    # Differences 0 and 1: a resampled mean is 0, 0.5 or 1 with probability 1/4, 1/2, 1/4, so the
    # 2.5 % and 97.5 % quantiles are 0 and 1, and the 40 %/60 % ones 0.5 and 0.5.
    result = paired_bootstrap([1.0, 3.0], [1.0, 2.0], n_boot=4000)
    assert result.mean_diff == 0.5 and result.interval == (0.0, 1.0)
    assert (result.level, result.n, result.method) == (0.95, 2, "paired bootstrap")
    assert paired_bootstrap([1.0, 3.0], [1.0, 2.0], n_boot=4000, ci=0.2).interval == (0.5, 0.5)


def test_paired_bootstrap_covers_a_known_difference_and_keeps_pairs_together():
    rng = np.random.default_rng(0)
    base = 10 * rng.standard_normal(100)  # images differ far more than the two students do
    b = base + 0.1 * rng.standard_normal(100)
    a = base + 0.5 + 0.1 * rng.standard_normal(100)
    result = paired_bootstrap(a, b, seed=1)
    low, high = result.interval
    assert low < 0.5 < high and result.excludes_zero()
    # Resampled in pairs, the image-to-image spread cancels: the interval is about
    # ±2·0.14/√100 wide, not ±2·10/√100.
    assert high - low < 0.1
    assert paired_bootstrap(a, b, seed=1) == result
    assert paired_bootstrap(a, b, seed=2).interval != result.interval


def test_bootstrap_of_two_students_alike_includes_zero():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal(200), rng.standard_normal(200)
    assert not paired_bootstrap(a, b).excludes_zero()


def test_t_interval_by_hand():
    # diffs 1, 2, 3, 6: mean 3, sd √(14/3), t(0.975, 3 dof) = 3.18245 from the table.
    result = seed_interval([1.0, 2.0, 3.0, 6.0])
    half = 3.182446305 * np.sqrt(14 / 3) / 2
    assert result.mean_diff == 3.0
    assert result.interval == pytest.approx((3 - half, 3 + half), rel=1e-9)
    assert (result.n, result.method, result.level) == (4, "student t", 0.95)
    # 90 %: t(0.95, 3 dof) = 2.35336.
    assert seed_interval([1.0, 2.0, 3.0, 6.0], ci=0.9).interval[1] == pytest.approx(
        3 + 2.353363435 * np.sqrt(14 / 3) / 2, rel=1e-9)
    assert t_interval([1.0, 2.0, 3.0, 6.0]) == result, "seed_interval is t_interval of the differences"


@pytest.mark.parametrize("call, message", [
    (lambda: seed_interval([0.3]), r"1 seed difference\(s\): a t-interval needs at least 2 seeds"),
    (lambda: seed_interval([0.3, 0.4], ci=95), r"ci=95: need a confidence level strictly between 0 and 1"),
    (lambda: seed_interval([[0.3, 0.4]]), r"diffs of shape \(1, 2\): need a 1-D array"),
    (lambda: t_interval([0.9]), r"1 value\(s\): a t-interval needs at least 2"),
    (lambda: paired_bootstrap([1.0, 2.0, 3.0], [1.0, 2.0]), "a has 3 values and b 2"),
    (lambda: paired_bootstrap([1.0], [2.0]), r"1 paired value\(s\): the bootstrap needs at least 2 images"),
    (lambda: paired_bootstrap([1.0, np.inf], [2.0, 3.0]), "a holds NaN or infinite values"),
    (lambda: paired_bootstrap([1.0, 2.0], [2.0, 3.0], n_boot=0), "n_boot=0: need at least 1"),
])
def test_bad_inputs_are_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
