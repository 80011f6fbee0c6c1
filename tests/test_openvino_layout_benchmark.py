"""The layout benchmark's figures: each network's NHWC speed-up and the student's share of the MAC
ratio in each layout, from rounds timed together, paired per process."""
import pytest


def test_each_figure_is_a_median_of_per_round_ratios_paired_per_process(benchmark_script):
    pytest.importorskip("scipy")
    bench = benchmark_script("openvino_layout")
    processes = [{"teacher/nchw": [10.0, 10.0, 12.0], "teacher/nhwc": [9.8, 9.8, 12.0],
                  "s/nchw": [1.25, 1.25, 1.5], "s/nhwc": [1.2, 1.2, 1.5]},
                 {"teacher/nchw": [11.0, 11.0, 11.0], "teacher/nhwc": [11.0, 11.0, 11.0],
                  "s/nchw": [1.25, 1.25, 1.25], "s/nhwc": [1.25, 1.25, 1.25]}]
    got = bench.summary(processes, "s", ideal=10.0)
    assert got["s nhwc speed-up"] == pytest.approx([1.25 / 1.2, 1.0])
    assert got["teacher nhwc speed-up"] == pytest.approx([10 / 9.8, 1.0])
    assert got["/ ideal nchw"] == pytest.approx([0.8, 0.88])
    assert got["/ ideal nhwc"] == pytest.approx([9.8 / 1.2 / 10, 0.88])
    assert got["/ ideal nhwc - nchw"] == pytest.approx([9.8 / 1.2 / 10 - 0.8, 0.0])
    record = {"machine": {"cpu": "cpu"}, "size": 256, "arch": "unet_256", "student": "s", "rate": 0.1,
              "widths": [8], "widths_from": "w.json", "ideal": 10.0, "runs": 3, "warm_s": 0.2, "processes": 2,
              "summary": {"openvino_default": got}}
    text = bench.markdown(record)
    assert "| openvino_default | / ideal nchw | 0.800, 0.880 | 0.840 [0.332, 1.348] |" in text
