"""The facades benchmark's non-MGGC methods (benchmarks/compressors.py): L1-norm filter pruning
ranks filters as Li et al. and meets the budget; the from-scratch baseline's ngf fits it."""
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from mggc_plugin import networks
from mggc_plugin.macs import count_macs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import compressors  # noqa: E402

SIZE = 32


def test_filter_l1_reads_output_channels_of_each_layer_kind():
    conv, deconv, linear = nn.Conv2d(2, 3, 3), nn.ConvTranspose2d(2, 3, 4), nn.Linear(2, 3)
    for layer in (conv, deconv, linear):
        with torch.no_grad():
            layer.weight.fill_(0.0)
            # output channel 1 alone gets weight: it must be the only non-zero score
            (layer.weight[:, 1] if isinstance(layer, nn.ConvTranspose2d) else layer.weight[1]).fill_(-2.0)
        score = compressors.filter_l1(layer)
        assert score.shape == (3,)
        assert score[1] > 0 and score[0] == 0 and score[2] == 0


def context(G, D, conditional=True, round_to=4):
    x = torch.randn(2, 3, SIZE, SIZE)
    game = compressors.GameData(x, torch.rand(2, 3, SIZE, SIZE) * 2 - 1, torch.tensor([[1], [0]]))
    return compressors.Context(G, D, dict(input_nc=3, output_nc=3, ngf=16, netG="resnet_6blocks", norm="batch"),
                               dict(input_nc=6, ndf=8, netD="basic", norm="batch"), "hinge", conditional, game,
                               prune_steps=2, batch_size=1, device="cpu", round_to=round_to, seed=0)


@pytest.fixture
def pair():
    torch.manual_seed(0)
    return networks.define_G(3, 3, 16, "resnet_6blocks", "batch"), networks.define_D(6, 8, "basic", norm="batch")


def test_l1_norm_meets_the_budget_and_keeps_the_largest_filters(pair):
    G, D = pair
    full = count_macs(G, (1, 3, SIZE, SIZE)).total
    student = compressors.METHODS["l1_norm"].make(context(G, D), 0.25)
    small = count_macs(student.G, (1, 3, SIZE, SIZE)).total
    assert 0.15 * full < small <= 0.25 * full
    assert all(w % 4 == 0 for w in student.G.mggc_slim["widths"])
    # the first layer's kept filters are its largest-L1 ones
    kept = student.G.mggc_slim["widths"][0]
    first = dict(G.named_modules())[student.G.mggc_slim["groups"][0]]
    expected = compressors.filter_l1(first).topk(kept).values.sort().values
    got = compressors.filter_l1(dict(student.G.named_modules())[student.G.mggc_slim["groups"][0]]).sort().values
    assert torch.allclose(got, expected)
    assert sum(p.numel() for p in student.D.parameters()) == sum(p.numel() for p in D.parameters())


def test_scratch_takes_the_largest_ngf_within_the_budget(pair):
    arch = dict(input_nc=3, output_nc=3, ngf=16, netG="resnet_6blocks", norm="batch")
    shape = (1, 3, SIZE, SIZE)
    full = count_macs(networks.define_G(**arch), shape).total
    ngf = compressors.ngf_for_budget(arch, shape, 0.25 * full)
    assert count_macs(networks.define_G(**{**arch, "ngf": ngf}), shape).total <= 0.25 * full
    assert count_macs(networks.define_G(**{**arch, "ngf": ngf + 1}), shape).total > 0.25 * full


def test_unknown_methods_are_named():
    with pytest.raises(ValueError, match="magnitude"):
        compressors.check_methods(["mggc", "magnitude"])


def test_an_interrupted_game_resumes_to_the_same_student(pair, tmp_path, monkeypatch):
    ctx = context(*pair)
    whole = compressors.METHODS["mggc"].make(
        replace(ctx, prune_steps=4, checkpoint=tmp_path / "a" / "game.pt", save_every=1), 0.3)
    first = replace(ctx, prune_steps=2, checkpoint=tmp_path / "b" / "game.pt", save_every=1)
    compressors.METHODS["mggc"].make(first, 0.3)
    steps = []
    real_step = compressors.MGGCPruner.step
    monkeypatch.setattr(compressors.MGGCPruner, "step", lambda self, *a: steps.append(1) or real_step(self, *a))
    resumed = compressors.METHODS["mggc"].make(replace(first, prune_steps=4), 0.3)
    assert len(steps) == 2  # it went on from step 2, not from scratch
    assert [h["loss_G"] for h in resumed.history] == [h["loss_G"] for h in whole.history]
    assert resumed.G.mggc_slim["widths"] == whole.G.mggc_slim["widths"]
