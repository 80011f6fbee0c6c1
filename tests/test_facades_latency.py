"""The facades latency table: speed-up beside the ideal the MAC ratio promises."""


def test_the_table_divides_the_speed_up_by_the_mac_ratio_ideal(benchmark_script):
    facades_latency = benchmark_script("facades_latency")
    row = {"method": "mggc", "budget": 0.25, "seed": 0, "macs_ratio": 0.25, "ms": 2.0, "speedup": 3.6,
           "estimate_ms": None, "kid": 0.2}
    record = {"task": "pix2pix", "machine": {"cpu": "cpu"}, "runs": 3, "runtime": "openvino", "teacher_ms": 7.2,
              "rows": [row, dict(row, seed=1, speedup=3.2)]}
    text = facades_latency.markdown(record)
    assert text.startswith("# Facades pix2pix") and "OpenVINO float32, 1 thread" in text
    assert "each pass timed cold" in text  # a record from before --warm_s
    warm = facades_latency.markdown(dict(record, warm_s=0.2))
    assert "each network run back to back for 0.2 s before each timed pass" in warm
    assert "| mggc | 0.25 | 0 | 25.0% | 2.00 | 3.60× | 0.90 | — | 0.2000 |" in text
    assert "| mggc | 0.25 | 2 | 25.0% | 3.40× | 0.85 | 0.2000 |" in text
    deployed = facades_latency.markdown(dict(record, runtime="openvino_default", subpixel=True))
    assert "bfloat16 on AMX), transposed convolutions as sub-pixel convolutions, 1 thread" in deployed
