"""The facades benchmark's registry (benchmarks/compressors.py) maps its context onto the package:
L1-norm filter pruning meets the budget with the largest filters and keeps D whole; every
student is filled to just below its budget; the from-scratch baseline has uniform widths and new
weights; the game methods play and resume through play."""
from dataclasses import replace

import pytest
import torch

from mggc_plugin import networks
from mggc_plugin.baselines import filter_l1_scores
from mggc_plugin.channels import ChannelGroups
from mggc_plugin.macs import count_macs

SIZE = 32


@pytest.fixture
def compressors(benchmark_script):
    return benchmark_script("compressors")


def context(compressors, G, D, conditional=True, round_to=4):
    x = torch.randn(2, 3, SIZE, SIZE)
    game = compressors.GameData(x, torch.rand(2, 3, SIZE, SIZE) * 2 - 1, torch.tensor([[1], [0]]))
    return compressors.Context(G, D, dict(input_nc=3, output_nc=3, ngf=16, netG="resnet_6blocks", norm="batch"),
                               dict(input_nc=6, ndf=8, netD="basic", norm="batch"), "hinge", conditional, game,
                               prune_steps=2, batch_size=1, device="cpu", round_to=round_to, seed=0)


@pytest.fixture
def pair():
    torch.manual_seed(0)
    return networks.define_G(3, 3, 16, "resnet_6blocks", "batch"), networks.define_D(6, 8, "basic", norm="batch")


def test_l1_norm_meets_the_budget_and_keeps_the_largest_filters(compressors, pair):
    G, D = pair
    full = count_macs(G, (1, 3, SIZE, SIZE)).total
    student = compressors.METHODS["l1_norm"].make(context(compressors, G, D), 0.25)
    small = count_macs(student.G, (1, 3, SIZE, SIZE)).total
    assert 0.95 * 0.25 * full <= small <= 0.25 * full  # filled to the budget
    unfilled = compressors.METHODS["l1_norm"].make(replace(context(compressors, G, D), fill=False), 0.25)
    assert count_macs(unfilled.G, (1, 3, SIZE, SIZE)).total < small
    assert all(w % 4 == 0 for w in student.G.mggc_slim["widths"])
    # the first group's kept filters are its largest-L1 ones
    kept = student.G.mggc_slim["widths"][0]
    root = student.G.mggc_slim["groups"][0]
    expected = filter_l1_scores(ChannelGroups.discover(G, torch.zeros(1, 3, SIZE, SIZE)))[0].topk(kept).values
    got = dict(student.G.named_modules())[root].weight.detach().abs().flatten(1).sum(1)
    assert torch.allclose(got.sort().values, expected.sort().values)
    assert 0 < student.info["rate"] < 1
    assert sum(p.numel() for p in student.D.parameters()) == sum(p.numel() for p in D.parameters())


def test_scratch_has_uniform_widths_at_the_budget_and_new_weights(compressors, pair):
    G, D = pair
    student = compressors.METHODS["scratch"].make(context(compressors, G, D), 0.25)
    shape = (1, 3, SIZE, SIZE)
    full = count_macs(G, shape).total
    assert 0.95 * 0.25 * full <= count_macs(student.G, shape).total <= 0.25 * full
    widths = student.G.mggc_slim["widths"]
    assert max(widths) / min(widths) < 8  # uniform, not one group kept whole
    first = student.G.mggc_slim["groups"][0]
    new = dict(student.G.named_modules())[first].weight
    old = dict(G.named_modules())[first].weight[:new.shape[0]]
    assert not torch.allclose(new, old)
    again = compressors.METHODS["scratch"].make(context(compressors, G, D), 0.25)
    assert torch.equal(dict(again.G.named_modules())[first].weight, new)  # seeded


def test_unknown_methods_are_named(compressors):
    with pytest.raises(ValueError, match="magnitude"):
        compressors.check_methods(["mggc", "magnitude"])


def test_a_game_method_resumes_from_the_context_checkpoint(compressors, pair, tmp_path):
    ctx = context(compressors, *pair)
    whole = compressors.METHODS["mggc"].make(replace(ctx, prune_steps=3), 0.3)
    first = replace(ctx, prune_steps=2, checkpoint=tmp_path / "game.pt", save_every=1)
    compressors.METHODS["mggc"].make(first, 0.3)
    resumed = compressors.METHODS["mggc"].make(replace(first, prune_steps=3), 0.3)
    assert resumed.info["steps"] == 3 and len(resumed.history) == 3
    assert [h["loss_G"] for h in resumed.history] == [h["loss_G"] for h in whole.history]


def test_neighbor_samples_plays_on_the_stochastic_d_prime_y(compressors, pair):
    ctx = context(compressors, *pair)
    asked = []

    def stochastic(samples):
        asked.append(samples)
        x = ctx.game.x.repeat_interleave(samples, dim=0)
        return compressors.GameData(x, torch.rand(len(x), 3, SIZE, SIZE) * 2 - 1, torch.tensor([[1], [0], [3], [2]]))

    student = compressors.METHODS["mggc"].make(
        replace(ctx, game_options={"neighbor_samples": 2}, stochastic=stochastic), 0.3)
    assert asked == [2] and student.info["game_options"]["neighbor_samples"] == 2
    with pytest.raises(ValueError, match="neighbor_samples > 1 needs Context.stochastic"):
        compressors.METHODS["mggc"].make(replace(ctx, game_options={"neighbor_samples": 2}), 0.3)


def test_a_latency_budget_game_lands_on_its_share_of_the_teachers_latency(compressors, pair, monkeypatch):
    from mggc_plugin import latency_table

    G, D = pair
    ctx = replace(context(compressors, G, D), game_options=compressors.METHODS["mggc_latency"].game_options)
    with pytest.raises(ValueError, match="Context.latency"):
        compressors.METHODS["mggc_latency"].make(ctx, 0.5)
    # a deterministic "runtime": one millisecond per million MACs
    monkeypatch.setattr(latency_table._Timer, "__call__", lambda self, module, shape: count_macs(module, shape).total
                        / 1e6)
    groups = ChannelGroups.discover(G, ctx.example_x())
    table = latency_table.measure(G, groups, "eager", 1, progress=False)
    student = compressors.METHODS["mggc_latency"].make(replace(ctx, latency=lambda runtime: table), 0.5)
    info = student.info
    assert info["target_latency_ms"] == pytest.approx(0.5 * table.full_ms)
    assert 0.9 * info["target_latency_ms"] <= info["latency_ms_estimate"] <= info["target_latency_ms"] + 1e-9
    widths = student.G.mggc_slim["widths"]
    estimate = float(table(groups, [(torch.arange(n) < w).float() for n, w in zip(groups.sizes, widths)]))
    assert estimate == pytest.approx(info["latency_ms_estimate"], rel=1e-6)
    assert count_macs(student.G, (1, 3, SIZE, SIZE)).total / 1e6 == pytest.approx(estimate, rel=0.02)


def test_build_makes_a_student_depend_on_the_seed_alone(compressors, pair):
    def make(ctx, target):  # a method that draws from the global RNG, as weight inits and dropout do
        return compressors.Student(torch.nn.Linear(4, 4), torch.nn.Identity())

    method = compressors.Method("draws", make)
    ctx = context(compressors, *pair)
    weights = []
    for earlier_draws in (0, 5):
        torch.rand(earlier_draws)  # what the process made before this student
        weights.append(method.build(ctx, 0.25).G.weight)
    assert torch.equal(weights[0], weights[1])
    assert not torch.equal(method.build(replace(ctx, seed=1), 0.25).G.weight, weights[0])


def _cost_per_activation(monkeypatch):
    import math

    from mggc_plugin import latency_table

    # layers also pay for the activations they read: the full-resolution ones cost most per MAC
    monkeypatch.setattr(latency_table._Timer, "__call__", lambda self, module, shape:
                        count_macs(module, shape).total / 1e6 + math.prod(shape) / 1e4)
    return latency_table


def test_l1_norm_fast_spends_the_macs_where_the_openvino_table_says_time_is_cheapest(compressors, pair,
                                                                                       monkeypatch):
    G, D = pair
    ctx = context(compressors, G, D)
    with pytest.raises(ValueError, match="Context.latency"):
        compressors.METHODS["l1_norm_fast"].make(ctx, 0.25)
    groups = ChannelGroups.discover(G, ctx.example_x())
    table = _cost_per_activation(monkeypatch).measure(G, groups, "eager", 1, progress=False)
    asked = []
    student = compressors.METHODS["l1_norm_fast"].make(
        replace(ctx, latency=lambda runtime: asked.append(runtime) or table), 0.25)
    assert asked == ["openvino"]
    widths = student.G.mggc_slim["widths"]
    macs = count_macs(student.G, (1, 3, SIZE, SIZE)).total
    assert 0.23 * groups.full_macs <= macs <= 0.25 * groups.full_macs
    l1 = compressors.METHODS["l1_norm"].make(ctx, 0.25).G.mggc_slim["widths"]
    assert widths[0] < l1[0] and widths[-1] < l1[-1]
    estimate = float(table(groups, [(torch.arange(n) < w).double() for n, w in zip(groups.sizes, widths)]))
    assert student.info["latency_ms_estimate"] == pytest.approx(estimate)
    assert student.info["latency_runtime"] == "eager"  # the table's own runtime, whatever was asked


def test_mggc_fast_cuts_the_games_channels_at_the_fastest_widths(compressors, pair, monkeypatch, tmp_path):
    from mggc_plugin.baselines import fastest_widths

    G, D = pair
    ctx = replace(context(compressors, G, D), fill=False, checkpoint=tmp_path / "game.pt",
                  game_options=compressors.DEFAULT_GAME)
    with pytest.raises(ValueError, match="Context.latency"):
        compressors.METHODS["mggc_fast"].make(ctx, 0.3)
    groups = ChannelGroups.discover(G, ctx.example_x())
    table = _cost_per_activation(monkeypatch).measure(G, groups, "eager", 1, progress=False)
    ctx = replace(ctx, latency=lambda runtime: table)
    game = compressors.METHODS["mggc"].make(ctx, 0.3)
    fast = compressors.METHODS["mggc_fast"].make(ctx, 0.3)  # resumes the finished game
    assert fast.info["steps"] == game.info["steps"]
    assert fast.G.mggc_slim["widths"] == fastest_widths(groups, table, 0.3, ctx.round_to)
    floored = compressors.METHODS["mggc_fast50"].make(ctx, 0.3)
    assert floored.G.mggc_slim["widths"] == fastest_widths(groups, table, 0.3, ctx.round_to, floor=0.5)
    assert floored.G.mggc_slim["widths"] != fast.G.mggc_slim["widths"]
    assert fast.G.mggc_slim["widths"] != game.G.mggc_slim["widths"]
    assert fast.info["macs_before_fill"] == pytest.approx(count_macs(fast.G, (1, 3, SIZE, SIZE)).total
                                                          / groups.full_macs)  # not filled here
