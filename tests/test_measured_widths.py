"""measured_widths keeps an exchange of channels between groups only when timing says it is faster,
and never leaves the MAC band or the floors."""
import math
import random

import pytest
import torch

from mggc_plugin import networks
from mggc_plugin.baselines import measured_widths, uniform_widths
from mggc_plugin.channels import ChannelGroups

SIZE = 32
RATE = 0.25


@pytest.fixture(scope="module")
def groups():
    torch.manual_seed(0)
    G = networks.define_G(3, 3, 16, "resnet_6blocks", "instance").eval()
    return ChannelGroups.discover(G, torch.zeros(1, 3, SIZE, SIZE))


def macs(groups, widths):
    return float(groups.macs([torch.arange(n) < w for n, w in zip(groups.sizes, widths)]))


def runtime(groups):
    """A deterministic "runtime": MACs plus a cost per channel that is highest for the
    full-resolution groups (the first and the last), as on real CPUs; also counts the calls."""
    per_channel = [8.0 if i in (0, len(groups.sizes) - 1) else 1.0 for i in range(len(groups.sizes))]
    calls = []

    def ms(widths):
        return macs(groups, widths) / 1e6 + sum(c * w for c, w in zip(per_channel, widths)) / 10

    def time_widths(batch):
        calls.append([list(w) for w in batch])
        return [ms(w) for w in batch]

    return ms, time_widths, calls


def test_kept_exchanges_are_faster_within_the_band_and_the_floor(groups):
    ms, time_widths, calls = runtime(groups)
    start = uniform_widths(groups, RATE, 4).widths
    found = measured_widths(groups, start, RATE, time_widths, round_to=4, floor=0.5, steps=8, min_gain=0.0)
    budget = RATE * groups.full_macs
    assert ms(found.widths) < ms(start) and found.macs == macs(groups, found.widths) <= budget
    lowest = [max(4, math.ceil(0.5 * w / 4) * 4) for w in start]
    assert all(w >= low and w % 4 == 0 for w, low in zip(found.widths, lowest))
    assert found.widths[0] < start[0] or found.widths[-1] < start[-1]  # the costly full-resolution groups gave
    for step, batch in zip(found.steps, calls):
        assert step["widths"] == batch and batch[0] != batch[1]  # the incumbent timed first, with each candidate
        for w in batch[1:]:
            assert (1 - 0.025) * budget <= macs(groups, w) <= budget
        kept = step["kept"]
        assert kept == 0 or step["ms"][kept] == min(step["ms"]) < step["ms"][0]
    widths = [w for batch in calls for w in batch[1:]]
    assert len(widths) == len({tuple(w) for w in widths})  # no candidate timed twice


def test_noise_below_min_gain_keeps_the_start(groups):
    start = uniform_widths(groups, RATE, 4).widths
    rng = random.Random(0)
    found = measured_widths(groups, start, RATE, lambda batch: [10 + rng.uniform(-0.04, 0.04) for _ in batch],
                            round_to=4, steps=4, min_gain=0.01)
    assert found.widths == start and len(found.steps) == 4 and all(s["kept"] == 0 for s in found.steps)


def test_estimate_picks_half_of_the_candidates(groups):
    ms, time_widths, calls = runtime(groups)
    start = uniform_widths(groups, RATE, 4).widths
    measured_widths(groups, start, RATE, time_widths, round_to=4, steps=1, candidates=4, estimate=ms)
    best_two = sorted(calls[0][1:], key=ms)[:2]
    # the estimate here is the runtime itself, so the two it chose are the fastest of all exchanges
    others = measured_widths(groups, start, RATE, lambda b: [1.0] * len(b), round_to=4, steps=1, candidates=200)
    assert sorted(ms(w) for w in best_two) == sorted(ms(w) for w in others.steps[0]["widths"][1:])[:2]


def test_refuses_a_start_over_the_budget_or_under_the_floor(groups):
    _, time_widths, _ = runtime(groups)
    with pytest.raises(ValueError, match="start widths"):
        measured_widths(groups, groups.sizes, RATE, time_widths, round_to=4)
    narrow = [4] * len(groups.sizes)
    with pytest.raises(ValueError, match="at least the floor"):
        measured_widths(groups, narrow, RATE, time_widths, round_to=4, floor=0.75)
