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


def _timed(method, seed, budget, info, compress=1.0, finetune=60.0):
    return {**_unit(method, seed, 0.2), "budget": budget, "info": info,
            "seconds": {"compress": compress, "finetune": finetune}}


def test_costs_price_games_per_step_and_supernets_once_per_seed(benchmark_script):
    summary = benchmark_script("facades_summary")
    units = [
        # a game resumed at step 50 of 100: its 50 steps took 10 s, the other budget's 100 took 30 s
        _timed("mggc", 0, 0.1, {"steps": 100, "game_timing": {"steps": 50, "seconds": 10.0}}),
        _timed("mggc", 0, 0.05, {"steps": 100, "game_timing": {"steps": 100, "seconds": 30.0}}),
        _timed("mggc", 1, 0.1, {"steps": 100}),  # a unit from before the timings: no rate from it
        _timed("gan_compression", 0, 0.1, {"supernet_seconds": 600.0, "search_seconds": 20.0}),
        _timed("gan_compression", 0, 0.05, {"supernet_seconds": 600.0, "search_seconds": 40.0}),
        _timed("gan_compression", 1, 0.1, {"supernet_seconds": 900.0, "search_seconds": 30.0}),
        _timed("l1_norm", 0, 0.1, {}, compress=2.0, finetune=90.0),
    ]
    by_method = {r["method"]: r for r in summary.costs(units)}
    assert by_method["mggc"]["game_s_per_step"] == pytest.approx(40.0 / 150)
    assert by_method["mggc"]["game_s"] == pytest.approx(100 * 40.0 / 150)
    assert by_method["mggc"]["timed_steps"] == 150 and "make_s" not in by_method["mggc"]
    assert by_method["gan_compression"]["supernet_s"] == pytest.approx(750.0)  # seed 0 counted once
    assert by_method["gan_compression"]["search_s"] == pytest.approx(30.0)
    assert by_method["l1_norm"] == {"task": "pix2pix", "method": "l1_norm", "units": 1, "make_s": 2.0,
                                    "finetune_s": 90.0}
    slow = [_timed("l1_norm", seed, 0.1, {}, finetune=seconds) for seed, seconds in ((1, 100.0), (2, 5000.0))]
    with_slow = {r["method"]: r for r in summary.costs(units + slow)}
    assert with_slow["l1_norm"]["finetune_s"] == pytest.approx(100.0)  # the median per unit, not 1,730 s
    table = summary.costs_markdown("pix2pix", summary.costs(units))
    assert "| gan_compression | 3 | — | 12.5 | 0.5 | — | 1.0 |" in table


def test_no_worse_holds_only_when_the_unfavourable_end_is_within_the_teacher_spread(benchmark_script):
    summary = benchmark_script("facades_summary")
    teacher = {"task": "cycle_gan", "budget": 1.0, "method": "teacher", "seed": 0,
               "metrics": {"miou": 0.054, "kid": 0.160}}
    second = {**teacher, "metrics": {"miou": 0.050, "kid": 0.172}}
    spread = summary.teacher_spread([teacher], [second])
    assert spread["miou"]["spread"] == pytest.approx(0.004) and spread["kid"]["spread"] == pytest.approx(0.012)
    assert summary.teacher_spread([teacher], []) == {}
    # mIoU (higher is better): MGGC − L1-norm's interval reaches down to −0.003, within 0.004; to −0.005, not
    assert summary.no_worse({"ci95": [-0.003, 0.002]}, False, 0.004) is True
    assert summary.no_worse({"ci95": [-0.005, 0.002]}, False, 0.004) is False
    # KID (lower is better): the upper end counts
    assert summary.no_worse({"ci95": [-0.02, 0.011]}, True, 0.012) is True
    assert summary.no_worse({"ci95": [-0.02, 0.013]}, True, 0.012) is False
    assert summary.no_worse({"ci95": [math.nan, math.nan]}, True, 0.012) is None
    units = [{**_unit(m, s, k), "task": "cycle_gan", "budget": 0.25}
             for s in range(3) for m, k in (("mggc", 0.170 + 0.001 * s), ("l1_norm", 0.168))]
    table = summary.spread_markdown("cycle_gan", spread, summary.mggc_pairs(units))
    assert "| 25% | kid |" in table and table.rstrip().endswith("| yes |")


def test_the_summary_warns_when_the_teacher_labels_below_the_majority_floor(benchmark_script):
    summary = benchmark_script("facades_summary")
    floor = {"majority_pixel_acc": 0.336, "majority_miou": 0.028, "matched_pixel_acc": 0.21, "miou": 0.054}
    below = summary.label_floor_markdown([{"method": "teacher", "metrics": {**floor, "pixel_acc": 0.209}}])
    above = summary.label_floor_markdown([{"method": "teacher", "metrics": {**floor, "pixel_acc": 0.6}}])
    assert "0.209" in below and "cannot rank" in below
    assert "0.600" in above and "cannot rank" not in above
    assert summary.label_floor_markdown([{"method": "teacher", "metrics": {"kid": 0.1}}]) == ""
