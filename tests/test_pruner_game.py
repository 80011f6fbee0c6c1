"""The pruning game (Eq. 2) on small random nets: it reaches the budget, leaves the teacher
untouched, and every Table 2 row is one option value."""
import copy

import pytest
import torch
from torch import nn

from mggc_plugin import count_macs, networks, slim
from mggc_plugin.agents import ArchitectureAgent, LogitAgent, gumbel_sigmoid
from mggc_plugin.channels import ChannelGroups
from mggc_plugin.pruner import ABLATIONS, MGGCConfig, MGGCPruner, fixed_macs, prunable_fraction, teacher_mode


def _pruner(nets, **options):
    G, D, groups_G, groups_D = nets
    return MGGCPruner(G, D, torch.zeros(1, 3, 32, 32), MGGCConfig(**options), groups_G=groups_G, groups_D=groups_D)


def _batches(G, n=8, size=32, seed=1):
    gen = torch.Generator().manual_seed(seed)
    xs = [torch.randn(1, 3, size, size, generator=gen) for _ in range(n)]
    with torch.no_grad():
        ys = [G(x) for x in xs]
    # The neighbour of sample i is another teacher output, as Eq. 1 would pick.
    return [(xs[i], ys[i], ys[(i + 1) % n]) for i in range(n)]


def _state(net):
    return {k: v.clone() for k, v in net.state_dict().items()}


def test_300_steps_reach_the_budget_and_leave_G_and_D_unchanged(nets):
    G, D = nets[0], nets[1]
    before_G, before_D = _state(G), _state(D)
    pruner = _pruner(nets, p=0.25)
    batches = _batches(G)
    logs = [pruner.step(*batches[i % len(batches)]) for i in range(300)]

    assert logs[0]["kept_macs_G"] > 0.8
    with torch.no_grad():
        o_G, _ = pruner.gen_G(pruner.h_D)
        deterministic = float(pruner.kept_macs(gumbel_sigmoid(o_G, 0.4, deterministic=True))) / pruner.T_total
    # The agent itself found the budget (g = 0 keeps a little more than the sampled
    # architectures, whose Gumbel noise has mean 0.58): the final trim has little left to do.
    assert 0.2 <= deterministic <= 0.3
    final = pruner.finalize()
    assert 0.2 <= final.kept_macs_G <= 0.25
    assert final.trimmed_G <= 0.1 * sum(pruner.groups_G.sizes)
    sampled = sum(log["kept_macs_G"] for log in logs[-50:]) / 50
    assert 0.15 <= sampled <= 0.26
    assert all(log["R"] == 0.0 for log in logs[-50:] if log["kept_macs_G"] <= 0.25)
    assert logs[-1]["kept_channels_D"] == logs[-1]["L"] < 1.0

    for name, value in _state(G).items():
        assert torch.equal(value, before_G[name]), name
    for name, value in _state(D).items():
        assert torch.equal(value, before_D[name]), name
    assert all(p.grad is None for p in [*G.parameters(), *D.parameters()])


def test_teacher_mode_is_train_mode_and_restores_batchnorm_buffers():
    torch.manual_seed(0)
    G = networks.define_G(3, 3, 8, "resnet_6blocks", norm="batch", use_dropout=True).eval()
    D = networks.define_D(3, 8, "basic", norm="batch")
    before_G, before_D = _state(G), _state(D)
    x = torch.randn(2, 3, 32, 32)
    # Without dropout, the teacher-mode forward is exactly the train-mode (batch statistics) one.
    G_plain = networks.define_G(3, 3, 8, "resnet_6blocks", norm="batch").eval()
    reference = copy.deepcopy(G_plain)
    with teacher_mode(G_plain):
        inside = G_plain(x)
    assert torch.allclose(inside, copy.deepcopy(reference).train()(x), atol=1e-6)
    assert not torch.allclose(inside, reference.eval()(x), atol=1e-3)
    assert all(torch.equal(a, b) for a, b in zip(G_plain.state_dict().values(), reference.state_dict().values()))

    pruner = MGGCPruner(G, D, x, MGGCConfig(p=0.5, hidden=16))
    D.requires_grad_(False)
    with torch.no_grad():
        y = G(x)
    for _ in range(3):
        pruner.step(x, y, y.flip(0))
    for name, value in _state(G).items():
        assert torch.equal(value, before_G[name]), name
    for name, value in _state(D).items():
        assert torch.equal(value, before_D[name]), name
    assert not G.training and all(not m.training for m in G.modules())
    assert D.training
    assert all(p.requires_grad for p in G.parameters()) and not any(p.requires_grad for p in D.parameters())


@pytest.mark.parametrize("ablation", list(ABLATIONS))
def test_each_table2_row_is_one_option(nets, ablation):
    row = ABLATIONS[ablation]
    pruner = _pruner(nets, p=0.5, ablation=ablation, hidden=16)
    kind = ArchitectureAgent if row.agents else LogitAgent
    assert isinstance(pruner.gen_G, kind)
    assert (pruner.gen_D is not None) == row.prune_D
    if pruner.gen_D is not None:
        assert isinstance(pruner.gen_D, kind)
    if row.agents:
        assert pruner.gen_G.feedback == pruner.gen_D.feedback == row.feedback
    x, y, y_n = _batches(nets[0], n=2)[0]
    logs = pruner.step(x, y, y_n)
    assert set(logs) == {"loss_G", "loss_D", "R", "L", "kept_macs_G", "kept_macs_G_total", "kept_channels_D",
                         "d_auc", "rec"}
    if not row.prune_D:
        assert logs["L"] == logs["kept_channels_D"] == 1.0
        assert all(m.all() for m in pruner.finalize().v_D)


def test_manifold_row_trains_D_on_neighbours_and_k0_uses_y_center(nets):
    x, y, y_n = _batches(nets[0], n=2)[0]
    other = torch.rand_like(y_n) * 2 - 1
    with pytest.raises(ValueError, match="y_neighbor"):
        _pruner(nets, p=0.5, hidden=16).step(x, y)
    mggc = [_pruner(nets, p=0.5, hidden=16).step(x, y, n)["loss_D"] for n in (y_n, other)]
    assert mggc[0] != mggc[1]
    k0 = [_pruner(nets, p=0.5, hidden=16, ablation="feedback").step(x, y, n) for n in (y_n, other, None)]
    assert k0[0] == k0[1] == k0[2]


def test_conditional_D_reads_x_and_y_and_finalize_matches_slim():
    torch.manual_seed(0)
    G = networks.define_G(3, 3, 8, "unet_128", norm="batch", use_dropout=True)
    D = networks.define_D(6, 8, "basic", norm="batch")
    x = torch.randn(1, 3, 128, 128)
    pruner = MGGCPruner(G, D, x, MGGCConfig(target_macs=0.3, gan_mode="hinge", conditional_D=True, hidden=16))
    assert pruner.groups_D.input_shape == (1, 6, 128, 128)
    with torch.no_grad():
        y = G(x)
    logs = pruner.step(x, y, y.flip(-1))
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    final = pruner.finalize(round_to=4)
    small = slim(G, pruner.groups_G, final.v_G)
    assert count_macs(small, (1, 3, 128, 128)).total == pytest.approx(final.macs_G, rel=1e-9)
    assert final.kept_macs_G <= 0.3


def test_finalize_trims_lowest_logit_channels_to_the_budget(nets):
    pruner = _pruner(nets, p=0.25, hidden=16)
    # Untrained, the deterministic agent keeps everything: the whole way down is the trim's.
    final = pruner.finalize()
    assert final.kept_macs_G <= 0.25
    assert final.trimmed_G > 0
    assert all(m.sum() >= 1 for m in [*final.v_G, *final.v_D])
    with torch.no_grad():
        logits = [-o for o in pruner.gen_G(pruner.h_D)[0]]
    kept = torch.cat([lg[m] for lg, m in zip(logits, final.v_G) if m.sum() > 1])
    dropped = torch.cat([lg[~m] for lg, m in zip(logits, final.v_G)])
    assert dropped.max() <= kept.min()
    # The trim stops as soon as the budget is met: the last channel it dropped does not fit back.
    best = max(((i, j) for i, m in enumerate(final.v_G) for j in (~m).nonzero().flatten().tolist()),
               key=lambda ij: logits[ij[0]][ij[1]])
    back = [m.clone() for m in final.v_G]
    back[best[0]][best[1]] = True
    assert float(pruner.kept_macs(back)) / pruner.T_total > 0.25

    rounded = pruner.finalize(round_to=4)
    assert rounded.kept_macs_G <= 0.25
    for m, size in zip(rounded.v_G, pruner.groups_G.sizes):
        assert int(m.sum()) % 4 == 0 or int(m.sum()) == size

    with pytest.raises(ValueError, match="cannot be met"):
        _pruner(nets, p=1e-4, hidden=16).finalize(round_to=8)


class _SkipNet(nn.Module):
    """A prunable path plus a 3→3 conv from the image straight to the output, whose MACs no gate
    can remove."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 3, 3, padding=1)
        self.c = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return self.b(torch.relu(self.a(x))) + self.c(x)


def test_target_macs_converts_to_p_of_prunable_macs():
    groups = ChannelGroups.discover(_SkipNet(), torch.zeros(1, 3, 16, 16))
    fixed = (3 * 16 * 16) * 3 * 9                      # conv c: output elements × C_in × k²
    prunable = 2 * (8 * 16 * 16) * 3 * 9               # convs a and b
    assert fixed_macs(groups) == fixed and groups.full_macs == fixed + prunable
    assert prunable_fraction(groups, 0.5) == pytest.approx((0.5 * groups.full_macs - fixed) / prunable)
    with pytest.raises(ValueError, match="no channel gate"):
        prunable_fraction(groups, 0.9 * fixed / groups.full_macs)
    with pytest.raises(ValueError, match="exactly one"):
        MGGCConfig(p=0.2, target_macs=0.2)
