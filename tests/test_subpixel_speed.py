"""The sub-pixel benchmark's table: each network as it is and as sub-pixel, the gain, and each
deployment's speed-up over the teacher deployed the same way against the MAC ratio."""


def test_each_network_is_compared_with_its_subpixel_form_and_to_the_teacher_deployed_alike(benchmark_script):
    subpixel_speed = benchmark_script("subpixel_speed")
    rows = [{"runtime": "openvino_default", "model": m, "median_ms": ms, "ideal_speedup": ideal}
            for m, ms, ideal in [("teacher", 90.0, 1.0), ("teacher_subpixel", 30.0, 1.0),
                                 ("fast0.5@0.1", 12.0, 10.0), ("fast0.5@0.1_subpixel", 5.0, 10.0)]]
    text = subpixel_speed.markdown({"machine": {"cpu": "cpu"}, "size": 256, "runs": 10, "rows": rows})
    assert "| openvino_default | teacher | 90.00 | 30.00 | **3.00×** | — | — | — | — |" in text
    # as it is: 90 / 12 = 7.5× of an ideal 10×; as sub-pixel: 30 / 5 = 6× of 10×
    assert "| openvino_default | fast0.5@0.1 | 12.00 | 5.00 | **2.40×** | 0.75 | 0.60 | — | — |" in text
    rows.append({"runtime": "openvino_default", "model": "fast0.5@0.1_subpixel_d2s", "median_ms": 6.0,
                 "ideal_speedup": 10.0})
    text = subpixel_speed.markdown({"machine": {"cpu": "cpu"}, "size": 256, "runs": 10, "warm_s": 0.2, "rows": rows})
    assert "| fast0.5@0.1 | 12.00 | 5.00 | **2.40×** | 0.75 | 0.60 | 6.00 | 1.20× |" in text
    assert "back to back for 0.2 s" in text
