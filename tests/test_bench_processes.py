"""``bench(..., processes=N)`` repeats each timing in fresh processes and reports their spread."""
import os
import statistics

import numpy as np
import pytest
import torch

from mggc_plugin import ChannelGroups, networks, slim
from mggc_plugin.deploy.bench import (
    TEACHER,
    bench,
    deployable,
    in_fresh_process,
    latency_fields,
    markdown,
    speedup_fields,
)
from mggc_plugin.errors import MGGCUserError
from mggc_plugin.metrics import LatencyComparison


def comparison(times_ms):
    """A LatencyComparison of two networks, ``teacher`` the reference, from their round times (ms)."""
    times = {name: [t / 1e3 for t in ts] for name, ts in times_ms.items()}
    ratios = [a / b for a, b in zip(times["teacher"], times["student"])]
    return LatencyComparison(input_shape=(1, 3, 8, 8), threads=1, rounds=3, warmup=0, device="cpu",
                             reference="teacher", runtime="test", times_s=times,
                             median_s={n: statistics.median(t) for n, t in times.items()},
                             iqr_s={n: (0.0, 0.0) for n in times},
                             speedup={"teacher": 1.0, "student": statistics.median(ratios)},
                             speedup_iqr={n: (0.0, 0.0) for n in times})


def test_in_fresh_process_runs_each_call_in_a_new_process():
    first, second = in_fresh_process(os.getpid), in_fresh_process(os.getpid)
    assert os.getpid() not in (first, second) and first != second


def test_repeats_give_the_median_of_the_medians_and_each_processs_figures():
    one = comparison({"teacher": [10.0, 11.0, 12.0], "student": [2.0, 2.0, 3.0]})
    two = comparison({"teacher": [20.0, 21.0, 22.0], "student": [5.0, 6.0, 7.0]})
    three = comparison({"teacher": [14.0, 15.0, 16.0], "student": [3.0, 3.0, 3.0]})
    fields = latency_fields([one, two, three], "teacher")
    assert fields["process_ms"] == pytest.approx([11.0, 21.0, 15.0])
    assert fields["median_ms"] == pytest.approx(15.0)
    q1, q3 = np.percentile([10, 11, 12, 20, 21, 22, 14, 15, 16], [25, 75])
    assert fields["iqr_ms"] == pytest.approx(q3 - q1), "the IQR is over all rounds"
    speed = speedup_fields([one, two, three], "student")
    assert speed["process_speedups"] == pytest.approx([5.0, 3.5, 5.0])  # medians of 5, 5.5, 4; 4, 3.5, 3.1; 4.7, 5, 5.3
    assert speed["speedup"] == pytest.approx(5.0)
    assert latency_fields([one], "teacher") == {"median_ms": pytest.approx(11.0), "iqr_ms": pytest.approx(1.0)}, \
        "one timing: no per-process fields"


def test_bench_repeats_each_timing_in_fresh_processes(tmp_path):
    torch.manual_seed(0)
    G = networks.define_G(3, 3, 8, "resnet_6blocks", norm="instance").eval()
    groups = ChannelGroups.discover(G, torch.zeros(1, 3, 32, 32))
    small = slim(G, groups, [torch.arange(n) % 2 == 0 for n in groups.sizes])
    models = [deployable(TEACHER, G, (1, 3, 32, 32)), deployable("small", small, (1, 3, 32, 32))]
    result = bench(models, (1, 3, 32, 32), tmp_path, ["eager"], batches=(1,), threads=(1,), runs=3, warmup=0,
                   warm_s=0.0, processes=2, log=lambda s: None)
    assert result["processes"] == 2
    for row in result["rows"]:
        assert len(row["process_ms"]) == 2 and len(row["process_speedups"]) == 2
        assert row["median_ms"] == pytest.approx(statistics.median(row["process_ms"]))
    table = markdown(result)
    assert "repeated in 2 fresh processes" in table
    small_ms = result["rows"][1]["process_ms"]
    assert f"{min(small_ms):.2f}–{max(small_ms):.2f})" in table


def test_bench_refuses_fewer_than_one_process(tmp_path):
    G = networks.define_G(3, 3, 8, "resnet_6blocks", norm="instance").eval()
    with pytest.raises(MGGCUserError, match="--processes 0"):
        bench([deployable(TEACHER, G, (1, 3, 32, 32))], (1, 3, 32, 32), tmp_path, ["eager"], processes=0)


def test_the_files_repeated_timings_load_are_written_before_the_first_process(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    from mggc_plugin.deploy import bench as bench_module

    G = networks.define_G(3, 3, 8, "resnet_6blocks", norm="instance").eval()
    models = [deployable(TEACHER, G, (1, 3, 32, 32))]
    found = []

    def in_this_process(call):
        found.append(sorted(p.name for p in tmp_path.iterdir()))
        return call()
    monkeypatch.setattr(bench_module, "in_fresh_process", in_this_process)
    bench(models, (1, 3, 32, 32), tmp_path, ["onnxruntime"], batches=(1,), threads=(1,), runs=1, warmup=0,
          warm_s=0.0, processes=2, log=lambda s: None)
    assert found[0] == ["teacher-b1.onnx", "teacher-b1.sha256"] and found[1] == found[0]
