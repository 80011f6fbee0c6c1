"""The options of MGGCConfig that repair the game's measured defects: each changes what it says
and leaves the paper's game unchanged when off."""
import copy
import dataclasses

import pytest
import torch

from mggc_plugin import networks
from mggc_plugin.diagnostics import real_fake_auc
from mggc_plugin.pruner import MGGCConfig, MGGCPruner, channel_costs


def _pruner(nets, **options):
    G, D, groups_G, groups_D = nets
    options = {"p": 0.25, "hidden": 16, **options}
    return MGGCPruner(G, D, torch.zeros(1, 3, 32, 32), MGGCConfig(**options), groups_G=groups_G, groups_D=groups_D)


def _batch(G, seed=1):
    gen = torch.Generator().manual_seed(seed)
    x, x_n = torch.randn(1, 3, 32, 32, generator=gen), torch.randn(1, 3, 32, 32, generator=gen)
    with torch.no_grad():
        return x, G(x), G(x_n), x_n


def test_real_fake_auc_ranks_and_ties():
    assert real_fake_auc(torch.tensor([2.0, 3.0]), torch.tensor([0.0, 1.0])) == 1.0
    assert real_fake_auc(torch.tensor([0.0, 1.0]), torch.tensor([2.0, 3.0])) == 0.0
    assert real_fake_auc(torch.ones(3), torch.ones(5)) == 0.5
    # 2 of the 4 pairs ordered, one tied: (2 + 0.5) / 4
    assert real_fake_auc(torch.tensor([1.0, 3.0]), torch.tensor([1.0, 2.0])) == pytest.approx(0.625)
    with pytest.raises(ValueError, match="at least one real and one fake"):
        real_fake_auc(torch.ones(0), torch.ones(2))


def test_the_baseline_reaches_its_budget_inside_the_game_with_its_own_learning_rate(nets):
    G = nets[0]
    batch = _batch(G)
    sampled = {}
    for lr in (1e-3, MGGCConfig.baseline_lr):
        pruner = _pruner(nets, ablation="baseline", baseline_lr=lr)
        logs = [pruner.step(*batch) for _ in range(300)]
        sampled[lr] = sum(h["kept_macs_G"] for h in logs[-50:]) / 50
    assert 0.8 * 0.25 <= sampled[MGGCConfig.baseline_lr] <= 1.05 * 0.25
    assert sampled[1e-3] > 1.05 * 0.25  # the agents' learning rate leaves the Baseline short of its budget


def test_lambda_rec_adds_teacher_fidelity_to_gen_G_only(nets):
    batch = _batch(nets[0])
    plain, rec = _pruner(nets), _pruner(nets, lambda_rec=10.0)
    logs_plain, logs_rec = plain.step(*batch), rec.step(*batch)
    assert logs_plain["rec"] == logs_rec["rec"] > 0  # the same gates were sampled: only the update differs
    differs = [not torch.equal(a, b) for a, b in zip(plain.gen_G.parameters(), rec.gen_G.parameters())]
    assert any(differs)
    assert all(torch.equal(a, b) for a, b in zip(plain.gen_D.parameters(), rec.gen_D.parameters()))


def test_min_keep_D_pushes_back_below_the_floor_and_finalize_keeps_it(nets):
    pruner = _pruner(nets, ablation="d_pruning", min_keep_D=0.5)
    L_low = torch.tensor(0.3, requires_grad=True)
    pruner.sparsity_D(L_low).backward()
    assert L_low.grad < 0  # minimising the penalty raises L towards the floor
    L_high = torch.tensor(0.7, requires_grad=True)
    pruner.sparsity_D(L_high).backward()
    assert L_high.grad == pytest.approx(0.1)  # λ2, as Eq. 6 above the floor
    with torch.no_grad():
        for theta in pruner.gen_D.theta:
            theta.fill_(10.0)  # drop every channel of D
    kept = torch.cat(pruner.finalize().v_D).float().mean()
    assert kept >= 0.5
    free = _pruner(nets, ablation="d_pruning")
    with torch.no_grad():
        for theta in free.gen_D.theta:
            theta.fill_(10.0)
    assert torch.cat(free.finalize().v_D).float().mean() < 0.5


def test_real_source_own_pairs_the_neighbour_with_its_own_source():
    torch.manual_seed(0)
    G = networks.define_G(3, 3, 8, "resnet_6blocks", norm="instance")
    D = networks.define_D(6, 8, "basic", norm="instance")
    x = torch.randn(1, 3, 32, 32)
    config = dict(p=0.3, gan_mode="hinge", conditional_D=True, hidden=16)
    seen = []
    D.register_forward_pre_hook(lambda module, args: seen.append(args[0][:, :3].clone()))
    x_i, y_i, y_j, x_j = _batch(G)
    real_sources = []
    for source in ("center", "own"):
        pruner = MGGCPruner(G, D, x, MGGCConfig(**config, real_source=source))
        seen.clear()
        pruner.step(x_i, y_i, y_j, x_j)
        real_sources.append(seen[0])  # a step runs D on the real pair, then on the fake one
    assert torch.equal(real_sources[0], x_i) and torch.equal(real_sources[1], x_j)
    own = pruner
    with pytest.raises(ValueError, match="pass x_neighbor"):
        own.step(x_i, y_i, y_j)


def test_final_window_averages_the_last_logits_and_survives_a_resume(nets, tmp_path):
    batch = _batch(nets[0])
    pruner = _pruner(nets, final_window=3)
    for _ in range(5):
        pruner.step(*batch)
    assert len(pruner.recent_o_G) == 3
    mean = [torch.stack(step).mean(0) for step in zip(*pruner.recent_o_G)]
    final = pruner.finalize()
    assert all(torch.allclose(-m, logit) for m, logit in zip(mean, final.logits_G))
    pruner.save(tmp_path / "game.pt")
    again = _pruner(nets, final_window=3)
    again.load(tmp_path / "game.pt")
    assert all(torch.equal(a, b) for a, b in zip(again.finalize().logits_G, final.logits_G))
    last_only = _pruner(nets)
    last_only.load_state_dict({**pruner.state_dict(), "config": {**pruner.state_dict()["config"], "final_window": 1}})
    assert not all(torch.equal(a, b) for a, b in zip(last_only.finalize().logits_G, final.logits_G))


def test_refill_lands_on_the_budget_within_one_channel(nets):
    batch = _batch(nets[0])
    pruner = _pruner(nets, p=0.3)
    for _ in range(150):
        pruner.step(*batch)
    plain = pruner.finalize()
    refilled = copy.deepcopy(pruner)
    refilled.config = dataclasses.replace(pruner.config, refill=True)  # the same game, finalised with refill
    filled = refilled.finalize()
    assert filled.kept_macs_G >= plain.kept_macs_G
    assert filled.kept_macs_G <= 0.3 + 1e-9
    budget = 0.3 * pruner.T_total
    kept = filled.kept_macs_G * pruner.T_total
    for i, mask in enumerate(filled.v_G):
        for c in (~mask).nonzero().flatten()[:1]:
            trial = [m.clone() for m in filled.v_G]
            trial[i][c] = True
            assert float(pruner.kept_macs(trial)) > budget  # no dropped channel fits any more
    assert kept <= budget


def test_old_saves_without_the_new_options_still_load(nets, tmp_path):
    pruner = _pruner(nets)
    pruner.step(*_batch(nets[0]))
    state = {**pruner.state_dict(), "version": 1}
    for name in ("baseline_lr", "lambda_rec", "min_keep_D", "real_source", "final_window", "refill"):
        del state["config"][name]
    del state["recent_o_G"], state["recent_o_D"]
    fresh = _pruner(nets)
    fresh.load_state_dict(state)
    assert fresh.step_count == 1
    with pytest.raises(ValueError, match="lambda_rec=0.0 \\(now 1.0\\)"):
        _pruner(nets, lambda_rec=1.0).load_state_dict(state)
    # A version-1 Baseline learnt at the agents' lr: resuming it under the new default would mix two games.
    with pytest.raises(ValueError, match="baseline_lr=0.001 \\(now 0.1\\)"):
        _pruner(nets, ablation="baseline").load_state_dict({**state, "config": {**state["config"],
                                                                                 "ablation": "baseline"}})


def _budget_only(cost_lr: bool, steps: int = 300):
    # gen_G trained on λ1·R alone (no D): where the budget term alone sends each group.
    torch.manual_seed(0)
    G = networks.define_G(3, 3, 8, "unet_128", norm="batch", use_dropout=True)
    D = networks.define_D(6, 8, "basic", norm="batch")
    p = MGGCPruner(G, D, torch.zeros(1, 3, 128, 128),
                   MGGCConfig(target_macs=0.1, conditional_D=True, hidden=16, cost_lr=cost_lr))
    for _ in range(steps):
        p.budget_step()
    o, _ = p.gen_G(p.h_D)
    kept = [float((g <= 0).float().mean()) for g in o]
    return kept, channel_costs(p.groups_G)


def test_cost_lr_cuts_costly_channels_first():
    plain, costs = _budget_only(cost_lr=False)
    aware, _ = _budget_only(cost_lr=True)
    cheapest, costliest = costs.index(min(costs)), costs.index(max(costs))
    assert costs[costliest] == 1.0 and 0 < costs[cheapest] < 0.05
    # AdamW steps every logit alike: the cheap innermost group is cut like the rest; weighted by
    # its cost, it stays (nearly) whole while the costly groups carry the budget.
    assert aware[cheapest] >= 0.9 and plain[cheapest] <= 0.5
    assert aware[costliest] <= plain[costliest] + 1e-9


def test_the_authors_gates_play_soft_gates_and_count_their_rounding(nets):
    G, D, groups_G, _ = nets
    batch = _batch(G)
    played = []
    original = groups_G.gated

    def spy(gates):
        played.append(torch.cat([g.detach() for g in gates]))
        return original(gates)

    groups_G.gated = spy
    try:
        pruner = _pruner(nets, gates="authors")
        logs = pruner.step(*batch)
    finally:
        del groups_G.gated
    v = played[0]
    assert not torch.all((v == 0) | (v == 1))  # G played with soft gates
    hard = [(g >= 0.5).float() for g in torch.split(v, groups_G.sizes)]
    assert logs["kept_macs_G"] == pytest.approx(float(pruner.kept_macs(hard)) / pruner.T_total)
    assert logs["kept_macs_G"] == pytest.approx(1.0)  # keep-side noise drops nothing at the start
    with pytest.raises(ValueError, match="gates='soft'"):
        MGGCConfig(p=0.5, gates="soft")


def test_the_authors_gates_reach_the_budget(nets):
    batch = _batch(nets[0])
    pruner = _pruner(nets, gates="authors", p=0.3)
    # Keep-side noise keeps a channel at o = 0 with probability 0.63 (drop side: 0.37), so the
    # logits travel further than with the paper's gates: ~400 steps here against ~350.
    logs = [pruner.step(*batch) for _ in range(450)]
    assert sum(h["kept_macs_G"] for h in logs[-50:]) / 50 <= 0.3 * 1.1
    assert pruner.finalize().kept_macs_G <= 0.3 + 1e-9
