"""The table-timing benchmark puts each way of timing layers beside the times it predicts."""


def test_each_timing_is_set_against_the_network_times_it_measured(benchmark_script):
    latency_table_timing = benchmark_script("latency_table_timing")
    fit = {"node counters": [{"fraction": 0.5, "measured_ms": 10.0, "estimated_ms": 11.0}],
           "wall": [{"fraction": 0.5, "measured_ms": 12.0, "estimated_ms": 36.0}]}
    record = {"machine": {"cpu": "cpu"}, "size": 256, "runtime": "openvino", "archs": {"unet_256": fit}}
    text = latency_table_timing.markdown(record)
    assert "| arch | fraction | measured (node counters) | est. | / measured | measured (wall) | est. | / measured |" \
        in text
    assert "| unet_256 | 0.5 | 10.00 | 11.00 | **1.10** | 12.00 | 36.00 | **3.00** |" in text
