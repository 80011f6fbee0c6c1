"""The interleaved latency comparison: a network with half the channels is faster where the
convolutions dominate, and timing leaves the caller's settings as they were."""
import itertools
import statistics
import time

import pytest
import torch
from torch import nn

from mggc_plugin.metrics import HostProbe, compare_latency


def conv_net(width: int) -> nn.Module:
    """A small fully convolutional net whose work scales with ``width``²."""
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1),
                         nn.ReLU(), nn.Conv2d(width, 3, 3, padding=1))


def test_half_the_channels_is_faster_at_256_on_one_thread():
    torch.manual_seed(0)
    full, half = conv_net(32), conv_net(16)
    result = compare_latency({"full": full, "half": half}, (1, 3, 256, 256), rounds=5, warmup=1, threads=1)
    assert result.threads == 1 and result.rounds == 5 and result.input_shape == (1, 3, 256, 256)
    assert all(len(t) == 5 for t in result.times_s.values())
    assert result.speedup["full"] == 1.0
    assert result.speedup["half"] >= 1.0 and result.faster("half")
    assert result.median_s["half"] < result.median_s["full"]
    assert result.speedup_over("half", "full") == result.speedup["half"]  # full is the reference
    assert result.speedup_over("full", "half") == pytest.approx(statistics.median(
        h / f for h, f in zip(result.times_s["half"], result.times_s["full"])))
    q1, q3 = result.iqr_s["full"]
    assert min(result.times_s["full"]) <= q1 <= result.median_s["full"] <= q3 <= max(result.times_s["full"])


def test_threads_and_modes_are_restored_and_bad_arguments_named():
    net = conv_net(4).train()
    before = torch.get_num_threads()
    result = compare_latency({"a": net, "b": conv_net(4)}, (1, 3, 16, 16), rounds=2, warmup=0, threads=1,
                             reference="b")
    assert torch.get_num_threads() == before and net.training
    assert result.reference == "b" and result.speedup["b"] == 1.0 and "PyTorch" in result.runtime
    with pytest.raises(ValueError, match="reference 'c'"):
        compare_latency({"a": net}, (1, 3, 8, 8), reference="c")
    with pytest.raises(ValueError, match="rounds=0"):
        compare_latency({"a": net}, (1, 3, 8, 8), rounds=0)
    with pytest.raises(ValueError, match="no models"):
        compare_latency({}, (1, 3, 8, 8))


class Sleeper(nn.Module):
    """Sleeps ``seconds`` per pass and appends its name to a shared log of calls."""

    def __init__(self, name: str, log: list, seconds: float = 0.004):
        super().__init__()
        self.name, self.log, self.seconds = name, log, seconds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.log.append(self.name)
        time.sleep(self.seconds)
        return x


def runs_of(calls: list) -> list:
    """Lengths of the runs of consecutive equal entries."""
    return [len(list(group)) for _, group in itertools.groupby(calls)]


def test_warm_s_times_each_model_after_its_own_passes():
    calls: list = []
    nets = {"a": Sleeper("a", calls), "b": Sleeper("b", calls)}
    cold = compare_latency(nets, (1, 3, 4, 4), rounds=3, warmup=0, threads=1)
    assert cold.warm_s == 0.0 and calls == ["a", "b", "b", "a", "a", "b"]  # one pass each per round, rotated
    calls.clear()
    warm = compare_latency(nets, (1, 3, 4, 4), rounds=3, warmup=0, threads=1, warm_s=0.02)
    assert warm.warm_s == 0.02 and len(warm.times_s["a"]) == 3
    # each turn: untimed passes for 20 ms (about five of 4 ms) then the timed one, back to back; the
    # rotation puts the same model's turns of two rounds side by side, hence four runs for six turns
    assert len(runs_of(calls)) == 4 and all(n >= 4 for n in runs_of(calls))
    assert calls.count("a") >= 3 * 4 and calls.count("b") >= 3 * 4
    with pytest.raises(ValueError, match="warm_s=-1"):
        compare_latency(nets, (1, 3, 4, 4), warm_s=-1)


def test_run_for_runs_nothing_for_zero_seconds_and_at_least_once_otherwise():
    from mggc_plugin.metrics.timing import run_for

    calls: list = []
    run_for(lambda: calls.append(1), 0.0)
    assert calls == []
    run_for(lambda: calls.append(1), 1e-9)
    assert calls == [1]
    run_for(lambda: (calls.append(1), time.sleep(0.002)), 0.02)
    assert len(calls) >= 1 + 5  # about ten passes of 2 ms in 20 ms


def test_the_host_probe_returns_its_input_and_its_time_grows_with_its_work():
    x = torch.randn(1, 3, 4, 4)
    small, large = HostProbe(ops=20), HostProbe(ops=400)
    assert small(x) is x
    result = compare_latency({"small": small, "large": large}, (1, 3, 4, 4), rounds=5, warmup=1, threads=1)
    assert result.median_s["large"] > 5 * result.median_s["small"]
    with pytest.raises(ValueError, match="ops=0"):
        HostProbe(ops=0)
