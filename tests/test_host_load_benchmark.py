"""The host-load benchmark's figures: blocks of consecutive rounds, and how the student's share of
the MAC ratio splits by the host probe's time."""
import math

import pytest


def test_blocks_take_medians_of_consecutive_rounds_and_drop_a_short_rest(benchmark_script):
    bench = benchmark_script("host_load")
    times = {"teacher": [0.030, 0.032, 0.031, 0.040, 0.041],
             "s": [0.003, 0.004, 0.0031, 0.005, 0.005],
             "probe": [0.001, 0.001, 0.001, 0.002, 0.002]}
    got = bench.blocks(times, "s", ideal=10.0, block=2)
    assert len(got) == 2  # the fifth round has no partner
    assert got[0]["teacher_ms"] == pytest.approx(31.0)
    assert got[0]["student_ms"] == pytest.approx(3.5)
    assert got[0]["per_ideal"] == pytest.approx((1.0 + 0.8) / 2)  # median of per-round ratios, / ideal
    assert got[1]["probe_ms"] == pytest.approx(1.5)
    assert got[1]["per_ideal"] == pytest.approx((0.031 / 0.0031 + 0.040 / 0.005) / 2 / 10)


def test_the_summary_splits_blocks_into_thirds_by_probe_time(benchmark_script):
    pytest.importorskip("scipy")
    bench = benchmark_script("host_load")
    # the figure falls as the probe slows: r is -1, the fastest third holds the best figures
    rows = [{"teacher_ms": 30.0 + i, "student_ms": 3.0 + i / 10, "probe_ms": 1.0 + i / 10, "per_ideal": 1.0 - i / 100}
            for i in range(9)]
    got = bench.summary([rows[:5], rows[5:]])
    assert got["blocks"] == 9
    assert got["pearson_r"] == pytest.approx(-1.0)
    assert got["probe_ms"] == pytest.approx([1.0, 1.8])
    assert [t["blocks"] for t in got["thirds"].values()] == [3, 3, 3]
    assert got["thirds"]["fastest"]["per_ideal_mean"] == pytest.approx(0.99)
    assert got["thirds"]["slowest"]["per_ideal_range"] == pytest.approx([0.92, 0.94])
    assert got["thirds"]["middle"]["probe_ms"] == pytest.approx([1.3, 1.5])
    assert got["per_ideal_median"] == pytest.approx(0.96)
    assert got["per_process"] == pytest.approx([0.98, 0.935])
    flat = bench.summary([[dict(r, probe_ms=1.0) for r in rows]])
    assert math.isnan(flat["pearson_r"])  # a flat probe says nothing
    with pytest.raises(ValueError, match="2 blocks"):
        bench.summary([rows[:2]])
    record = {"machine": {"cpu": "cpu"}, "size": 256, "arch": "unet_256", "student": "s", "rate": 0.1,
              "widths": [8], "widths_from": "w.json", "ideal": 10.0, "runtime": "openvino_default", "layout": "nhwc",
              "probe_ops": 200, "warm_s": 0.2, "rounds": 45, "processes": 2, "block": 5, "summary": got}
    text = bench.markdown(record)
    assert "Pearson's r between a block's probe time and its figure: -1.00" in text
    assert "Per process (median of its blocks): 0.980, 0.935; mean 0.958 [" in text
    assert "| fastest third | 3 | 1.000–1.200 | 31.00 | 3.100 | 0.990 | 0.980–1.000 |" in text
