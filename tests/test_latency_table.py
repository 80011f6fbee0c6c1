"""The latency model of a latency budget (mggc_plugin.latency_table): interpolation, a MAC-shaped
table reproducing the MAC model, a measured table, and the game with ``target_latency_ms``."""
from typing import Set

import pytest
import torch

from mggc_plugin import networks
from mggc_plugin.channels import ChannelGroups
from mggc_plugin.latency_table import LatencyTable, LayerLatency, measure
from mggc_plugin.macs import count_macs
from mggc_plugin.pruner import MGGCConfig, MGGCPruner, latency_fraction

SCALE = 1e-6  # ms per MAC of the synthetic tables


def mac_table(groups: ChannelGroups, slow: Set[str] = frozenset(), factor: float = 1.0) -> LatencyTable:
    """A table whose every layer costs SCALE ms per MAC (the layers ``slow``: ``factor`` times more):
    bilinear in the widths, so the interpolation represents it exactly."""
    profile = count_macs(groups.model, groups.input_shape).by_name()
    layers = []
    for layer in groups.layers:
        per_pair = profile[layer.name].macs / (layer.out_channels * (1 if layer.depthwise else layer.in_channels))
        cost = SCALE * per_pair * (factor if layer.name in slow else 1.0)
        ins = (0,) if layer.depthwise else tuple(sorted({1, layer.in_channels}))
        if not layer.depthwise and layer.fixed_in == layer.in_channels:
            ins = (layer.in_channels,)
        outs = (layer.out_channels,) if layer.fixed_out == layer.out_channels else (1, layer.out_channels)
        ms = tuple(tuple(cost * (1 if layer.depthwise else i) * o for o in outs) for i in ins)
        layers.append(LayerLatency(layer.name, ins, outs, ms))
    full = SCALE * groups.full_macs
    return LatencyTable(tuple(groups.input_shape), "synthetic", 1, tuple(groups.sizes), (0.0,) * len(groups),
                        tuple(layers), 0.0, 0.0, ({"fraction": 1.0, "measured_ms": full, "estimated_ms": full},), {})


def test_interpolation_is_exact_for_bilinear_costs_and_extrapolates_linearly():
    def f(a, b):
        return 0.5 + 0.01 * a + 0.02 * b + 0.001 * a * b

    grid_in, grid_out = (2, 4, 8), (3, 6, 12, 24)
    layer = LayerLatency("conv", grid_in, grid_out, tuple(tuple(f(a, b) for b in grid_out) for a in grid_in))
    for a, b in ((2.0, 3.0), (5.5, 7.25), (8.0, 24.0), (1.0, 30.0)):  # the last one beyond the grid
        a_t = torch.tensor(a, dtype=torch.float64, requires_grad=True)
        b_t = torch.tensor(b, dtype=torch.float64, requires_grad=True)
        value = layer(a_t, b_t)
        assert float(value.detach()) == pytest.approx(f(a, b))
        value.backward()
        assert float(a_t.grad) == pytest.approx(0.01 + 0.001 * b)
        assert float(b_t.grad) == pytest.approx(0.02 + 0.001 * a)
    assert float(layer(torch.tensor(0.0, dtype=torch.float64), torch.tensor(-1000.0, dtype=torch.float64))) == 0.0


def test_a_mac_shaped_table_is_the_mac_model(nets):
    groups = nets[2]
    table = mac_table(groups)
    table.check(groups)
    gen = torch.Generator().manual_seed(0)
    for soft in (False, True):
        gates = [torch.rand(n, generator=gen) for n in groups.sizes]
        gates = [g if soft else (g > 0.5).float() for g in gates]
        a = [g.clone().requires_grad_(True) for g in gates]
        b = [g.clone().requires_grad_(True) for g in gates]
        ms, macs = table(groups, a), groups.macs(b)
        assert float(ms.detach()) == pytest.approx(SCALE * float(macs.detach()), rel=1e-9)
        ms.backward()
        macs.backward()
        for x, y in zip(a, b):
            assert torch.allclose(x.grad, SCALE * y.grad, rtol=1e-6, atol=1e-12)


def test_a_measured_table_matches_its_network_and_round_trips(nets, tmp_path):
    G, _, groups, _ = nets
    table = measure(G, groups, fractions=(0.5,), runs=2, warmup=1, progress=False)
    table.check(groups)
    assert [row["fraction"] for row in table.fit] == [0.5, 1.0]
    assert all(row["measured_ms"] > 0 for row in table.fit)
    full = float(table(groups, [torch.ones(n) for n in groups.sizes]))
    # The estimate includes the fitted rest, so it lands near the whole network's measured time.
    assert 0.5 * table.full_ms < full < 2.0 * table.full_ms
    assert table.per_element_ms >= 0
    again = LatencyTable.load(table.save(tmp_path / "table.json"))
    assert again == table
    other_G = networks.define_G(3, 3, 16, "resnet_6blocks", norm="instance")
    other = ChannelGroups.discover(other_G, torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="measured for another network or input"):
        table.check(other)


def _latency_pruner(nets, table, target_ms, **options):
    G, D, groups_G, groups_D = nets
    config = MGGCConfig(target_latency_ms=target_ms, hidden=16, **options)
    return MGGCPruner(G, D, torch.zeros(1, 3, 32, 32), config, groups_G=groups_G, groups_D=groups_D, latency=table)


def _batch(G):
    gen = torch.Generator().manual_seed(1)
    x, x_n = torch.randn(1, 3, 32, 32, generator=gen), torch.randn(1, 3, 32, 32, generator=gen)
    with torch.no_grad():
        return x, G(x), G(x_n)


def test_the_game_meets_a_latency_budget_and_resumes_only_on_its_table(nets, tmp_path):
    groups = nets[2]
    table = mac_table(groups)
    full = SCALE * groups.full_macs
    target = 0.3 * full
    assert latency_fraction(table, groups, target) == pytest.approx(0.3)  # no fixed MACs in this G
    with pytest.raises(ValueError, match="give a target between them"):
        latency_fraction(table, groups, 2 * full)
    with pytest.raises(ValueError, match="needs G's latency table"):
        _latency_pruner(nets, None, target)
    pruner = _latency_pruner(nets, table, target, refill=True)
    batch = _batch(nets[0])
    logs = [pruner.step(*batch) for _ in range(450)]  # as a MAC budget of 0.3: ~350 steps
    assert sum(h["latency_ms_G"] for h in logs[-50:]) / 50 <= 1.1 * target
    final = pruner.finalize()
    assert final.latency_ms_G is not None and final.latency_ms_G <= target + 1e-12
    assert final.latency_ms_G == pytest.approx(SCALE * final.macs_G)
    pruner.save(tmp_path / "game.pt")
    _latency_pruner(nets, table, target, refill=True).load(tmp_path / "game.pt")
    slower = mac_table(groups, slow={groups.layers[1].name}, factor=3.0)
    with pytest.raises(ValueError, match="another latency table"):
        _latency_pruner(nets, slower, target, refill=True).load(tmp_path / "game.pt")


def test_a_slow_group_is_cut_more_under_a_latency_budget_than_under_its_macs(nets):
    # gen_G trained on λ1·R alone: where the budget term alone sends the groups. Group 3 is the
    # inner width of the first residual block, read and written by its two convolutions only;
    # the second table makes those two layers 20× slower than their MACs.
    G, D, groups, groups_D = nets
    slow = {groups[3].root, *groups[3].consumers}
    kept = {}
    for name, table in (("macs", mac_table(groups)), ("latency", mac_table(groups, slow=slow, factor=20.0))):
        target = 0.4 * float(table(groups, [torch.ones(n) for n in groups.sizes]))
        p = _latency_pruner((G, D, groups, groups_D), table, target)
        for _ in range(300):
            p.budget_step()
        o, _ = p.gen_G(p.h_D)
        kept[name] = [float((g <= 0).float().mean()) for g in o]
    assert kept["latency"][3] < kept["macs"][3]
    assert kept["latency"][3] < kept["latency"][4]  # its twin block, equally costly in MACs


def test_the_cli_measures_a_table_for_the_architecture_it_names(tmp_path, capsys):
    from mggc_plugin.cli import main

    out = tmp_path / "table.json"
    argv = ["latency-table", "--netG", "resnet_6blocks", "--ngf", "4", "--size", "32", "--fractions", "0.5",
            "--runs", "1", "--warmup", "0", "--out", str(out)]
    assert main(argv) == 0
    G = networks.define_G(3, 3, 4, "resnet_6blocks", norm="instance", use_dropout=True)
    LatencyTable.load(out).check(ChannelGroups.discover(G, torch.zeros(1, 3, 32, 32)))
    assert "uniform 0.500: measured" in capsys.readouterr().out
    assert main([*argv[:4], "0", *argv[5:]]) == 2
    assert "--ngf 0: give values of at least 1" in capsys.readouterr().err


def test_measured_latencies_never_fall_as_a_layer_widens():
    from mggc_plugin.latency_table import _monotone

    noisy = [[1.0, 0.8, 2.0], [0.9, 3.0, 2.5]]
    assert _monotone(noisy) == ((1.0, 1.0, 2.0), (1.0, 3.0, 3.0))


def test_the_rest_is_fitted_non_negative():
    from mggc_plugin.latency_table import _fit_rest

    assert _fit_rest([2.0, 4.0], [1.0, 2.0]) == pytest.approx((2.0, 0.0))  # exact through the origin
    assert _fit_rest([3.0, 5.0], [1.0, 2.0]) == pytest.approx((2.0, 1.0))  # a free fit within the bounds
    kappa, c0 = _fit_rest([-60.0, 5.0], [0.1, 0.2])  # noise: the free fit's intercept is -125
    assert kappa >= 0 and c0 >= 0
    assert _fit_rest([3.0, 1.0], [1.0, 2.0]) == pytest.approx((0.0, 2.0))  # falling: flat


def test_a_subpixel_table_times_no_transposed_convolution_and_says_so(tmp_path, monkeypatch):
    from mggc_plugin import latency_table

    timed = []
    monkeypatch.setattr(latency_table, "latency", lambda module, shape, runs, warmup: timed.append(module) or 1e-3)
    G = networks.define_G(3, 3, 4, "unet_128", norm="batch").eval()
    groups = ChannelGroups.discover(G, torch.zeros(1, 3, 128, 128))
    table = measure(G, groups, fractions=(0.5,), runs=1, warmup=0, progress=False, subpixel=True)
    assert table.subpixel and LatencyTable.load(table.save(tmp_path / "t.json")).subpixel
    assert timed and not any(isinstance(m, torch.nn.ConvTranspose2d) for module in timed for m in module.modules())
    timed.clear()
    assert not measure(G, groups, fractions=(0.5,), runs=1, warmup=0, progress=False).subpixel
    assert any(isinstance(m, torch.nn.ConvTranspose2d) for module in timed for m in module.modules())
    # a table saved before the field existed reads as timed as trained
    d = table.to_dict()
    del d["subpixel"]
    assert not LatencyTable.from_dict(d).subpixel


def test_openvino_times_a_layer_alone_by_its_nodes_without_the_reorders(tmp_path, monkeypatch):
    pytest.importorskip("openvino")
    from mggc_plugin import latency_table
    from mggc_plugin.deploy.openvino import NodeTime

    profiled = []

    def fake_profile(irs, x, runs, threads=1, exact=True, warm_s=0.0, require_macs=True):
        profiled.append((tuple(x.shape), exact, warm_s, require_macs))
        return {"layer": [NodeTime("in", "reorder", 5.0, 0), NodeTime("conv", "conv", 1.0, 8),
                          NodeTime("interleave", "other", 0.25, 0), NodeTime("out", "reorder", 7.0, 0)]}

    monkeypatch.setattr(latency_table, "profile", fake_profile)
    monkeypatch.setattr(latency_table, "latency", lambda *a, **k: pytest.fail("a layer alone was wall-timed"))
    timer = latency_table._Timer("openvino_default", 1, 3, 1, tmp_path)
    assert timer.layer(torch.nn.Conv2d(4, 8, 3, padding=1), (1, 4, 16, 16)) == 1.25
    assert profiled == [((1, 4, 16, 16), False, latency_table.LAYER_WARM_S, False)]
    assert latency_table.layer_timing("openvino") == latency_table.layer_timing("openvino_default") == "node counters"


def test_other_runtimes_wall_time_a_layer_and_the_table_says_how(nets, tmp_path):
    from mggc_plugin import latency_table

    G, _, groups, _ = nets
    assert latency_table.layer_timing("eager") == latency_table.layer_timing("onnxruntime") == "wall"
    table = measure(G, groups, fractions=(0.5,), runs=1, warmup=0, progress=False)
    assert table.layer_timing == "wall" and LatencyTable.load(table.save(tmp_path / "t.json")).layer_timing == "wall"
    d = table.to_dict()
    d["layer_timing"] = "node counters"
    assert LatencyTable.from_dict(d).layer_timing == "node counters"
    del d["layer_timing"]  # a table saved before the field existed was wall-timed
    assert LatencyTable.from_dict(d).layer_timing == "wall"


def test_node_counters_are_refused_where_there_are_none(nets):
    G, _, groups, _ = nets
    with pytest.raises(ValueError, match="on eager layers are timed 'wall' or 'wall'"):
        measure(G, groups, fractions=(0.5,), runs=1, warmup=0, progress=False, timing="node counters")
