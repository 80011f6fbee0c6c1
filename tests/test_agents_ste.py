"""Straight-through Gumbel-sigmoid (Eq. 3–4) and the agents' initial state."""
import torch

from mggc_plugin.agents import ArchitectureAgent, LogitAgent, gumbel_sigmoid, harden

SIZES = [8, 16, 32, 4]


def _agents():
    torch.manual_seed(0)
    return [LogitAgent(SIZES), ArchitectureAgent(SIZES, peer_dim=12, hidden=16, token_dim=8)]


def test_forward_is_exactly_binary():
    for agent in _agents():
        o, _ = agent(torch.randn(12))
        for deterministic in (False, True):
            v = gumbel_sigmoid([t * 4 for t in o], tau=0.4, generator=torch.Generator().manual_seed(1),
                               deterministic=deterministic)
            flat = torch.cat(v)
            assert [t.numel() for t in v] == SIZES
            assert torch.all((flat == 0.0) | (flat == 1.0))


def test_gradients_reach_every_agent_parameter_tensor():
    for agent in _agents():
        o, _ = agent(torch.randn(12))
        # Logits near the threshold, so the sigmoid's slope is far from zero.
        v = gumbel_sigmoid([t + agent.base for t in o], tau=0.4, generator=torch.Generator().manual_seed(2))
        weights = torch.randn(sum(SIZES), generator=torch.Generator().manual_seed(3))
        (torch.cat(v) * weights).sum().backward()
        for name, p in agent.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_gradient_is_the_sigmoid_gradient():
    o = torch.tensor([-0.3, 0.1, 0.5, -1.0], requires_grad=True)
    v = gumbel_sigmoid([o], tau=0.4, generator=torch.Generator().manual_seed(4))[0]
    v.sum().backward()
    # The same noise, drawn again from the same seed, through the soft relaxation.
    u = torch.rand(4, generator=torch.Generator().manual_seed(4))
    g = -torch.log(-torch.log(u))
    o2 = o.detach().clone().requires_grad_(True)
    torch.sigmoid(-(o2 + g) / 0.4).sum().backward()
    assert torch.allclose(o.grad, o2.grad)
    assert torch.equal(v, (-(o.detach() + g) >= 0).float())


def test_initialised_to_keep_everything():
    for agent in _agents():
        o, _ = agent(torch.zeros(12))
        v = torch.cat(gumbel_sigmoid(o, 0.4, deterministic=True))
        assert torch.all(v == 1)
        # Sampled: each channel is kept with probability exp(-e^{o}) ≈ 0.95 at o ≈ -3.
        kept = torch.stack([torch.cat(gumbel_sigmoid(o, 0.4, torch.Generator().manual_seed(s))) for s in range(50)])
        assert 0.9 < kept.mean().item() < 0.99


def test_the_authors_gates_put_the_noise_on_the_keep_side_and_stay_soft():
    for agent in _agents():
        o, _ = agent(torch.zeros(12))
        draws = [torch.cat(gumbel_sigmoid(o, 0.4, torch.Generator().manual_seed(s), keep_side=True, hard=False))
                 for s in range(50)]
        soft = torch.stack(draws)
        assert not torch.all((soft == 0.0) | (soft == 1.0))  # soft values reach the network
        # At o ≈ -3 a channel is dropped with probability exp(-e^3) ≈ 2e-9 (paper's side: ≈ 0.05).
        assert torch.all(harden(soft) == 1)
    o = torch.tensor([-0.3, 0.1, 0.5, -1.0], requires_grad=True)
    soft = gumbel_sigmoid([o], 0.4, torch.Generator().manual_seed(4), keep_side=True, hard=False)[0]
    u = torch.rand(4, generator=torch.Generator().manual_seed(4))
    g = -torch.log(-torch.log(u))
    assert torch.allclose(soft, torch.sigmoid((g - o.detach()) / 0.4))
    hard = harden(soft)
    assert torch.equal(hard, (soft.detach() >= 0.5).float())
    hard.sum().backward()  # straight-through: the soft gates' gradient
    o2 = o.detach().clone().requires_grad_(True)
    torch.sigmoid((g - o2) / 0.4).sum().backward()
    assert torch.allclose(o.grad, o2.grad)
