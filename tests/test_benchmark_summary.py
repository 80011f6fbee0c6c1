"""The facades benchmark's summary: per-seed paired differences to L1-norm pruning with a
Student-t interval once two seeds are paired."""
import math

import pytest


def _unit(method, seed, kid):
    return {"task": "pix2pix", "budget": 0.1, "method": method, "seed": seed, "metrics": {"kid": kid}}


def test_two_paired_seeds_give_a_t_interval_and_one_seed_none(benchmark_script):
    summarize = benchmark_script("facades_summary").summarize
    units = [_unit("l1_norm", 0, 0.30), _unit("l1_norm", 1, 0.32), _unit("mggc", 0, 0.25), _unit("mggc", 1, 0.28)]
    record = next(r for r in summarize(units) if r["method"] == "mggc" and r["metric"] == "kid")
    assert record["vs_l1_norm"]["mean_diff"] == pytest.approx(-0.045)
    lo, hi = record["vs_l1_norm"]["ci95"]
    assert lo < -0.045 < hi and math.isfinite(lo) and math.isfinite(hi)
    single = next(r for r in summarize(units[:3]) if r["method"] == "mggc")
    assert all(math.isnan(v) for v in single["vs_l1_norm"]["ci95"])


def test_mggc_is_paired_with_every_other_method_at_its_budget(benchmark_script):
    summary = benchmark_script("facades_summary")
    units = [_unit("mggc", s, 0.20 + 0.01 * s) for s in range(3)] + [_unit("baseline", s, 0.30 + 0.012 * s)
                                                                     for s in range(3)]
    units.append({**_unit("l1_norm", 0, 0.1), "budget": 0.05})  # another budget: no pair
    pairs = summary.mggc_pairs(units)
    assert [(p["method"], p["metric"]) for p in pairs] == [("baseline", "kid")]
    diff = pairs[0]["mggc_minus_method"]
    assert diff["mean_diff"] == pytest.approx(-0.102) and diff["seeds"] == [0, 1, 2]
    assert diff["ci95"][1] < 0
    assert "better" in summary.pairs_markdown("pix2pix", pairs)
