"""The allocation benchmark: uniform and floored fastest widths at a rate, one row per timing."""
import math

import pytest
import torch

from mggc_plugin import latency_table, networks
from mggc_plugin.baselines import fastest_widths, uniform_widths
from mggc_plugin.channels import ChannelGroups
from mggc_plugin.macs import count_macs


@pytest.fixture
def net_table(monkeypatch):
    """A small ResNet generator, its groups, and its latency table on a deterministic "runtime"
    that charges for MACs and for the activations a layer reads."""
    torch.manual_seed(0)
    G = networks.define_G(3, 3, 16, "resnet_6blocks", "instance").eval()
    groups = ChannelGroups.discover(G, torch.zeros(1, 3, 32, 32))
    monkeypatch.setattr(latency_table._Timer, "__call__", lambda self, module, shape:
                        count_macs(module, shape).total / 1e6 + math.prod(shape) / 1e4)
    return G, groups, latency_table.measure(G, groups, "eager", 1, progress=False)


def test_allocation_widths_are_uniform_then_each_distinct_floor(benchmark_script, net_table):
    speed_allocation = benchmark_script("speed_allocation")
    _, groups, table = net_table
    widths = speed_allocation.allocation_widths(groups, table, 0.25, 4, [0.0, 0.5, 0.75, 1.0])
    assert widths["uniform"] == uniform_widths(groups, 0.25, 4).widths
    assert widths["fast0"] == fastest_widths(groups, table, 0.25, 4)
    assert widths["fast0.5"] == fastest_widths(groups, table, 0.25, 4, 0.5)
    # on this table floors of ¾ and 1 find the uniform widths: not timed twice
    assert list(widths) == ["uniform", "fast0", "fast0.5"]


def test_the_table_has_a_row_per_student_and_runtime_and_one_on_each_ones_best_runtime(benchmark_script):
    speed_allocation = benchmark_script("speed_allocation")
    rows = [{"model": "teacher", "runtime": "openvino", "median_ms": 38.0, "speedup": 1.0, "ideal_speedup": 1.0},
            {"model": "teacher", "runtime": "openvino_default", "median_ms": 15.0, "speedup": 1.0,
             "ideal_speedup": 1.0},
            {"model": "fast0", "runtime": "openvino", "median_ms": 10.0, "speedup": 3.8, "ideal_speedup": 4.0},
            {"model": "fast0", "runtime": "openvino_default", "median_ms": 5.0, "speedup": 3.0,
             "ideal_speedup": 4.0}]
    record = {"machine": {"cpu": "cpu"}, "size": 256, "runs": 8, "runtime": "openvino",
              "units": [{"arch": "unet_256", "rate": 0.25, "widths": {"fast0": [8, 16]},
                         "table_speedup": {"fast0": 4.4}, "rows": rows}]}
    text = speed_allocation.markdown(record)
    assert "| unet_256 | 25% | fast0 | openvino | 25.0% | 3.80× | 4.00× | **0.95** | 1.10 | [8, 16] |" in text
    assert "| unet_256 | 25% | fast0 | openvino_default | 25.0% | 3.00× | 4.00× | **0.75** |  | [8, 16] |" in text
    assert "| teacher |" not in text
    # each on its fastest runtime: the teacher's 15 ms over the student's 5 ms, against the ideal 4×
    assert "| unet_256 | 25% | fast0 | openvino_default | openvino_default | 3.00× | 4.00× | **0.75** |" in text


def test_repeated_processes_give_the_best_runtime_ratio_an_interval_over_processes(benchmark_script):
    speed_allocation = benchmark_script("speed_allocation")
    rows = [{"model": "teacher", "runtime": "openvino", "median_ms": 40.0, "process_ms": [40.0, 36.0, 44.0],
             "speedup": 1.0, "ideal_speedup": 1.0},
            {"model": "fast0", "runtime": "openvino", "median_ms": 10.0, "process_ms": [10.0, 10.0, 10.0],
             "process_speedups": [4.0, 3.6, 4.4], "speedup": 4.0, "ideal_speedup": 4.0}]
    record = {"machine": {"cpu": "cpu"}, "size": 256, "runs": 8, "runtime": "openvino", "processes": 3,
              "units": [{"arch": "unet_256", "rate": 0.25, "widths": {"fast0": [8, 16]},
                         "table_speedup": {"fast0": 4.4}, "rows": rows}]}
    text = speed_allocation.markdown(record)
    assert "Repeated in 3 fresh processes" in text and "| / ideal | 95 % interval over processes |" in text
    # per-process ratios 1.0, 0.9, 1.1: mean 1, sd 0.1, t(0.975, 2 dof) = 4.303
    half = 4.302652730 * 0.1 / math.sqrt(3)
    assert (f"| unet_256 | 25% | fast0 | openvino | openvino | 4.00× | 4.00× | **1.00** | "
            f"[{1 - half:.2f}, {1 + half:.2f}] |") in text
    # and the same-runtime table shows each process's ratio
    assert "| **1.00** | 1.00, 0.90, 1.10 | 1.10 | [8, 16] |" in text


def test_node_times_give_each_models_milliseconds_by_kind_on_each_openvino_runtime(benchmark_script, tmp_path):
    pytest.importorskip("openvino")
    speed_allocation = benchmark_script("speed_allocation")
    from mggc_plugin.deploy.bench import deployable

    torch.manual_seed(0)
    G = networks.define_G(3, 3, 4, "unet_128", "batch").eval()
    x = torch.zeros(1, 3, 128, 128)
    models = [deployable("teacher", G, tuple(x.shape))]
    nodes = speed_allocation.node_times(models, x, tmp_path, ["eager", "openvino", "openvino_default"], runs=2)
    assert list(nodes) == ["openvino", "openvino_default"]
    kinds = nodes["openvino"]["teacher"]
    assert kinds["conv"] > 0 and kinds["conv_transpose"] > 0
    record = {"machine": {"cpu": "cpu"}, "size": 32, "runs": 2, "runtime": "openvino",
              "units": [{"arch": "unet_128", "rate": 0.25, "widths": {}, "table_speedup": {},
                         "rows": [{"model": "teacher", "runtime": "openvino", "median_ms": 1.0, "speedup": 1.0,
                                   "ideal_speedup": 1.0}],
                         "nodes": {"openvino": {"teacher": {"conv": 1.5, "pad": 0.25}}}}]}
    record["units"][0]["rows"].append({"model": "fast0", "runtime": "openvino", "median_ms": 0.5, "speedup": 2.0,
                                       "ideal_speedup": 5.0})
    record["units"][0]["nodes"]["openvino"]["fast0"] = {"conv": 0.3, "pad": 0.2}
    record["units"][0].update(widths={"fast0": [2]}, table_speedup={"fast0": 2.5})
    text = speed_allocation.markdown(record)
    assert "| arch | rate | runtime | model | conv | pad | total | ideal convs |" in text
    assert "| unet_128 | 25% | openvino | teacher | 1.50 | 0.25 | 1.75 |  |" in text
    # convolutions 1.5 / 5 = 0.3 ms and the pad's 0.2 ms: 1.75 / 0.5 = 3.5×, 0.70 of the MAC ratio
    assert "| unet_128 | 25% | openvino | fast0 | 0.30 | 0.20 | 0.50 | 0.70 |" in text


def test_searched_widths_time_candidates_from_each_fast_floor_and_the_header_says_so(benchmark_script, net_table,
                                                                                       tmp_path):
    import argparse

    speed_allocation = benchmark_script("speed_allocation")
    G, groups, table = net_table
    widths = speed_allocation.allocation_widths(groups, table, 0.25, 4, [0.5])
    # floor 1 finds the uniform widths, which allocation_widths leaves out: nothing to search from
    args = argparse.Namespace(search="eager", runs=1, warm_s=0.0, round_to=4, search_candidates=2, search_steps=1,
                              subpixel=False, floors=[0.5, 1.0], layout="nchw")
    found = speed_allocation.searched_widths(G, groups, table, 0.25, widths, args, tmp_path)
    assert list(found) == ["search0.5"] and found["search0.5"]["start"] == "fast0.5"
    (step,) = found["search0.5"]["steps"]
    assert step["widths"][0] == widths["fast0.5"] and len(step["widths"]) == 3 and len(step["ms"]) == 3
    assert float(groups.macs([torch.arange(n) < w for n, w in zip(groups.sizes, found["search0.5"]["widths"])])) \
        <= 0.25 * groups.full_macs
    record = {"machine": {"cpu": "cpu"}, "size": 32, "runs": 1, "runtime": "eager", "warm_s": 0.2, "search": "eager",
              "search_steps": 1, "search_candidates": 2, "units": []}
    text = speed_allocation.markdown(record)
    assert "each network run back to back for 0.2 s" in text and "improved by timing on `eager` (1 steps" in text


def test_recorded_widths_are_an_earlier_runs_students_at_that_arch_and_rate(benchmark_script):
    speed_allocation = benchmark_script("speed_allocation")
    record = {"units": [{"arch": "unet_256", "rate": 0.1, "widths": {"uniform": [8], "search0.5": [16]}}]}
    assert speed_allocation.recorded_widths(record, "unet_256", 0.1) == {"uniform": [8], "search0.5": [16]}
    with pytest.raises(SystemExit, match="no unet_256 unit at rate 0.25"):
        speed_allocation.recorded_widths(record, "unet_256", 0.25)
    text = speed_allocation.markdown({"machine": {"cpu": "cpu"}, "size": 32, "runs": 1, "runtime": "eager",
                                      "widths_from": "/x/speed_allocation_search.json", "units": []})
    assert "Students' widths from `speed_allocation_search.json`." in text


def test_a_stored_table_whose_layers_were_timed_otherwise_is_measured_again(benchmark_script, net_table, tmp_path,
                                                                             monkeypatch):
    import dataclasses

    speed_allocation = benchmark_script("speed_allocation")
    G, groups, table = net_table
    path = tmp_path / "resnet_6blocks-32-eager-t1.json"
    table.save(path)
    monkeypatch.setattr(latency_table, "measure", lambda *a, **k: pytest.fail("measured again"))
    assert speed_allocation.teacher_table("resnet_6blocks", G, groups, "eager", tmp_path) == table
    dataclasses.replace(table, layer_timing="node counters").save(path)
    monkeypatch.setattr(latency_table, "measure", lambda *a, **k: table)
    assert speed_allocation.teacher_table("resnet_6blocks", G, groups, "eager", tmp_path) is table
    assert latency_table.LatencyTable.load(path) == table, "the table measured again replaces the stale one"


def test_a_table_for_sub_pixel_networks_times_their_layers_so(benchmark_script, net_table, tmp_path, monkeypatch):
    speed_allocation = benchmark_script("speed_allocation")
    G, groups, table = net_table  # its fixture makes the timer deterministic
    torch.manual_seed(0)
    unet = networks.define_G(3, 3, 4, "unet_128", "batch").eval()
    unet_groups = ChannelGroups.discover(unet, torch.zeros(1, 3, 128, 128))
    asked, real = [], latency_table.measure

    def measure(*args, **kwargs):
        asked.append(kwargs["subpixel"])
        return real(*args, progress=False, **kwargs)
    monkeypatch.setattr(latency_table, "measure", measure)

    def unet_table(subpixel):
        return speed_allocation.teacher_table("unet_128", unet, unet_groups, "eager", tmp_path, subpixel)
    plain, sub = unet_table(False), unet_table(True)
    assert asked == [False, True] and sub.subpixel and not plain.subpixel
    assert unet_table(True) == sub and unet_table(False) == plain and asked == [False, True], "each stored once"
    path = tmp_path / "unet_128-128-eager-t1.json"  # the plain table, asked for sub-pixel layers: measured again
    assert latency_table.load_or_measure(path, unet, unet_groups, "eager", subpixel=True).subpixel
    assert asked == [False, True, True]
    # a ResNet has no transposed convolution to rewrite: its plain table is the one either way
    table.save(tmp_path / "resnet_6blocks-32-eager-t1.json")
    assert speed_allocation.teacher_table("resnet_6blocks", G, groups, "eager", tmp_path, subpixel=True) == table
    assert latency_table.load_or_measure(tmp_path / "resnet_6blocks-32-eager-t1.json", G, groups, "eager",
                                         subpixel=True) == table
    assert asked == [False, True, True]
