"""Save/resume: a resumed pruner takes exactly the step an uninterrupted one takes."""
import dataclasses

import pytest
import torch

from mggc_plugin import networks
from mggc_plugin.pruner import MGGCConfig, MGGCPruner

CONFIG = MGGCConfig(p=0.3, hidden=16, seed=7)


def _nets():
    torch.manual_seed(0)
    # Dropout in G draws from the global RNG, which the state must carry too.
    G = networks.define_G(3, 3, 8, "resnet_6blocks", norm="instance", use_dropout=True)
    D = networks.define_D(3, 8, "basic", norm="instance")
    return G, D


def _batches(G, n=5):
    gen = torch.Generator().manual_seed(1)
    xs = [torch.randn(1, 3, 32, 32, generator=gen) for _ in range(n)]
    with torch.no_grad():
        ys = [G.eval()(x) for x in xs]
    return [(xs[i], ys[i], ys[(i + 1) % n]) for i in range(n)]


def _agent_state(pruner):
    return [t.detach().clone() for t in [*pruner.gen_G.parameters(), *pruner.gen_D.parameters(),
                                          pruner.h_G, pruner.h_D]]


def test_resume_takes_the_identical_next_step(tmp_path):
    G, D = _nets()
    batches = _batches(G)
    x0 = batches[0][0]
    first = MGGCPruner(G, D, x0, CONFIG)
    for batch in batches[:3]:
        first.step(*batch)
    path = first.save(tmp_path / "pruner.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["pruner.pt"]
    expected_logs = first.step(*batches[3])
    expected = _agent_state(first)

    torch.manual_seed(12345)  # a fresh process: another global RNG state
    G2, D2 = _nets()
    resumed = MGGCPruner(G2, D2, x0, CONFIG)
    resumed.load(path)
    assert resumed.step_count == 3
    logs = resumed.step(*batches[3])
    assert logs == expected_logs
    for a, b in zip(_agent_state(resumed), expected):
        assert torch.equal(a, b)


def test_the_saved_noise_state_matters():
    G, D = _nets()
    batches = _batches(G)
    pruner = MGGCPruner(G, D, batches[0][0], CONFIG)
    pruner.step(*batches[0])
    state = pruner.state_dict()
    expected = pruner.step(*batches[1])
    pruner.load_state_dict(state)
    assert pruner.step(*batches[1]) == expected
    pruner.load_state_dict(state)
    pruner.generator.manual_seed(99)
    assert pruner.step(*batches[1]) != expected


def test_resume_refuses_other_options(tmp_path):
    G, D = _nets()
    pruner = MGGCPruner(G, D, torch.zeros(1, 3, 32, 32), CONFIG)
    path = pruner.save(tmp_path / "pruner.pt")
    other = MGGCPruner(G, D, torch.zeros(1, 3, 32, 32), dataclasses.replace(CONFIG, lambda1=1.0))
    with pytest.raises(ValueError, match="lambda1"):
        other.load(path)
    torch.save({"model": 1}, tmp_path / "weights.pt")
    with pytest.raises(ValueError, match="not an MGGC pruner state"):
        pruner.load(tmp_path / "weights.pt")
