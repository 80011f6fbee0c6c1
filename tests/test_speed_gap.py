"""The speed-gap benchmark's bound with ideal convolutions and its rounding table."""
import pytest


def test_the_bound_scales_convolutions_by_the_mac_ratio_and_keeps_the_rest():
    from mggc_plugin.deploy.openvino import ideal_conv_bound as bound

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


def test_allocations_differ_from_uniform_at_the_same_macs(benchmark_script):
    import torch

    from mggc_plugin import networks
    from mggc_plugin.baselines import keep_masks, uniform_widths
    from mggc_plugin.channels import ChannelGroups

    speed_gap = benchmark_script("speed_gap")
    torch.manual_seed(0)
    net = networks.define_G(3, 3, 16, "resnet_6blocks", norm="instance").eval()
    groups = ChannelGroups.discover(net, torch.zeros(1, 3, 32, 32))
    uniform = uniform_widths(groups, 0.25, 1)
    found = speed_gap.allocations(groups, uniform.macs, 1, count=4, seed=3)
    assert len(found) == 4 and len({tuple(w) for w in found}) == 4
    for w in found:
        macs = float(groups.macs(keep_masks(groups, w, "uniform")))
        assert 0.99 * uniform.macs <= macs <= uniform.macs
        assert w != list(uniform.widths)
    assert speed_gap.allocations(groups, uniform.macs, 1, count=4, seed=3) == found
    # MAC counts are whole numbers: none lies in [macs - 0.5, macs - 0.5]
    with pytest.raises(ValueError, match="0 of 2 allocations landed"):
        speed_gap.allocations(groups, uniform.macs - 0.5, 1, count=2, tolerance=0.0)
    # below the narrowest widths (one channel per group) nothing fits
    with pytest.raises(ValueError, match="even the narrowest widths"):
        speed_gap.allocations(groups, 1.0, 1, count=2)


def test_the_allocation_table_compares_uniform_with_the_others(benchmark_script):
    speed_gap = benchmark_script("speed_gap")
    rows = [{"model": "teacher", "speedup": 1.0, "ideal_speedup": 1.0},
            {"model": "uniform", "speedup": 3.0, "ideal_speedup": 4.0},
            {"model": "alloc0", "speedup": 2.0, "ideal_speedup": 4.0},
            {"model": "alloc1", "speedup": 3.6, "ideal_speedup": 4.0},
            {"model": "alloc2", "speedup": 2.4, "ideal_speedup": 4.0}]
    again = [rows[0], dict(rows[1], speedup=3.2), dict(rows[3], speedup=3.4)]
    widths = {"uniform": [8, 8], "alloc0": [4, 16], "alloc1": [16, 4], "alloc2": [12, 4]}
    allocated = {"keep25": {"widths": widths, "rows": rows, "again": again, "best": "alloc1"}}
    text = "\n".join(speed_gap._allocation_markdown(allocated, "openvino"))
    assert "| keep25 | 0.75 | 0.50 | 0.60 | 0.90 | 0.80 | 0.85 | [16, 4] |" in text
