"""The speed-gap benchmark's bound with ideal convolutions and its rounding table."""
import pytest


def test_the_bound_scales_convolutions_by_the_mac_ratio_and_keeps_the_rest(benchmark_script):
    bound = benchmark_script("speed_gap").ideal_conv_bound
    teacher = {"conv": 0.7, "conv_transpose": 0.1, "norm": 0.2}
    # convolutions 0.8 s / 8 = 0.1 s, the student's norm 0.1 s as measured: 1 s / 0.2 s
    assert bound(teacher, {"conv": 0.5, "norm": 0.1}, 8.0) == pytest.approx(5.0)
    # no other layers in the student: the bound is the MAC ratio itself
    assert bound(teacher, {"conv": 0.5}, 8.0) == pytest.approx(8.0 / 0.8)


def test_the_rounding_table_has_a_column_per_swept_multiple(benchmark_script):
    speed_gap = benchmark_script("speed_gap")
    rows = [{"model": "teacher", "runtime": "eager", "median_ms": 10.0, "speedup": 1.0, "ideal_speedup": 1.0},
            {"model": "keep25", "runtime": "eager", "median_ms": 3.0, "speedup": 3.3, "ideal_speedup": 4.0}]
    layers = {"teacher": {"seconds": {"conv": 0.009, "norm": 0.001}, "macs": {"conv": 1.0}},
              "keep25": {"seconds": {"conv": 0.0025, "norm": 0.0005}, "macs": {"conv": 0.25}}}
    rounding = {"keep25": [{"model": f"round_to{k}", "runtime": "openvino", "speedup": s, "ideal_speedup": 4.0}
                           for k, s in ((8, 3.6), (32, 2.0))]}
    text = "\n".join(speed_gap._markdown("net", {"rows": rows}, layers, rounding, [8, 32]))
    assert "| rate | runtime | round_to 8 | round_to 32 |" in text
    assert "| keep25 | openvino | 0.90 (4.0× ideal) | 0.50 (4.0× ideal) |" in text
    assert "- keep25: 3.64× for an ideal 4.00× (0.91)" in text


def _node(name, ms, macs=0):
    from mggc_plugin.deploy.openvino import NodeTime
    return NodeTime(name, "conv" if macs else "norm", ms, macs)


def test_node_bounds_separate_the_layer_rates_from_the_other_nodes(benchmark_script):
    speed_gap = benchmark_script("speed_gap")
    # teacher: two convolutions at 1 and 2 MMAC/ms, 1 ms of other nodes: 10 ms in all
    teacher = [_node("a", 4.0, 4_000_000), _node("b", 5.0, 10_000_000), _node("n", 1.0)]
    # student at 1/8 of the MACs: a keeps its teacher's rate, b runs at half of it
    student = [_node("a", 0.5, 500_000), _node("b", 1.25, 1_250_000), _node("n", 0.25)]
    bounds = speed_gap.node_bounds(teacher, student, ideal=8.0)
    assert bounds["measured"] == pytest.approx(10 / 2.0 / 8)
    assert bounds["teacher_rate"] == pytest.approx(10 / (0.5 + 0.625 + 0.25) / 8)
    assert bounds["ideal_convs"] == pytest.approx(10 / (9 / 8 + 0.25) / 8)
    slow = speed_gap.slow_layers(teacher, student, top=1)
    assert [(r["layer"], r["lost_ms"]) for r in slow] == [("b", pytest.approx(0.625))]
    with pytest.raises(ValueError, match="different architectures"):
        speed_gap.node_bounds(teacher, student[1:], 8.0)
