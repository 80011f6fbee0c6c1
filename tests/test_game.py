"""play() runs the pruning game with saves: an interrupted game resumes from its save to the same
steps and the same student as an uninterrupted one; batches depend on the step index alone."""
import pytest
import torch

from mggc_plugin import networks
from mggc_plugin.device import RNGStream
from mggc_plugin.game import history_path, neighbor_batches, play, save_game
from mggc_plugin.pruner import MGGCConfig, MGGCPruner

SIZE = 32
CONFIG = MGGCConfig(target_macs=0.3, gan_mode="hinge", conditional_D=True, hidden=16, seed=3)


def _pruner():
    torch.manual_seed(0)
    G = networks.define_G(3, 3, 8, "resnet_6blocks", "batch", use_dropout=True)  # dropout draws from the global RNG
    D = networks.define_D(6, 8, "basic", norm="batch")
    return MGGCPruner(G, D, torch.zeros(1, 3, SIZE, SIZE), CONFIG)


@pytest.fixture(scope="module")
def batches():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 3, SIZE, SIZE, generator=g)
    y = torch.rand(4, 3, SIZE, SIZE, generator=g) * 2 - 1
    return neighbor_batches(x, y, torch.tensor([[1, 2], [0, 3], [3, 0], [2, 1]]), batch_size=2, seed=5)


def test_batches_depend_on_the_step_alone(batches):
    first = batches(7)
    batches(0)
    again = batches(7)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(batches(8)[0], first[0])
    assert [t.shape for t in first] == [(2, 3, SIZE, SIZE)] * 4


def test_batches_pair_each_neighbour_with_its_own_source():
    x = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 3, SIZE, SIZE)
    y = -x  # y'_i = -x_i, so a neighbour's source is readable from the neighbour itself
    draw = neighbor_batches(x, y, torch.tensor([[1, 2], [0, 3], [3, 0], [2, 1]]), batch_size=8, seed=2)
    x_i, y_i, y_j, x_j = draw(0)
    assert torch.equal(y_i, -x_i) and torch.equal(y_j, -x_j)
    assert not torch.equal(x_i, x_j)  # the neighbours are other samples


def test_an_interrupted_game_resumes_to_the_same_steps_and_student(batches, tmp_path, monkeypatch):
    whole = _pruner()
    expected = play(whole, batches, steps=5, progress=False)
    assert len(expected) == 5 and whole.step_count == 5

    checkpoint = tmp_path / "game.pt"
    play(_pruner(), batches, steps=3, save_every=2, checkpoint=checkpoint, progress=False)
    assert torch.load(checkpoint, weights_only=True)["step_count"] == 3  # saved at the end, not only every 2
    torch.manual_seed(999)  # a fresh process: another global RNG state, which the save restores
    resumed = _pruner()
    steps = []
    real_step = MGGCPruner.step
    monkeypatch.setattr(MGGCPruner, "step", lambda self, *a: steps.append(self.step_count) or real_step(self, *a))
    history = play(resumed, batches, steps=5, save_every=2, checkpoint=checkpoint, progress=False)
    assert steps == [3, 4]  # it went on from the save, not from scratch
    assert history == expected
    assert all(torch.equal(a, b) for a, b in zip(resumed.finalize().v_G, whole.finalize().v_G))


def test_a_game_depends_on_its_seed_not_on_the_callers_rng(batches):
    played = []
    for caller_seed in (1, 2):  # G's dropout must not draw what the process drew before
        pruner = _pruner()
        torch.manual_seed(caller_seed)
        caller_next = torch.rand(4)
        torch.manual_seed(caller_seed)
        played.append(play(pruner, batches, steps=3, progress=False))
        assert torch.equal(torch.rand(4), caller_next)  # and leaves the caller's RNG where it was
    assert played[0] == played[1]
    other = _pruner()
    other.dropout_rng = RNGStream(4, other.device)
    assert play(other, batches, steps=3, progress=False) != played[0]  # G's dropout draws from that stream


def test_logs_saved_ahead_of_the_state_are_cut_to_it(batches, tmp_path):
    checkpoint = tmp_path / "game.pt"
    pruner = _pruner()
    history = play(pruner, batches, steps=2, checkpoint=checkpoint, progress=False)
    # An interruption between the two writes of a later save: the logs of step 3 exist, the state is at 2.
    torch.save(history + [history[-1]], history_path(checkpoint))
    resumed = _pruner()
    assert len(play(resumed, batches, steps=2, checkpoint=checkpoint, progress=False)) == 2
    save_game(resumed, history, checkpoint)
    with pytest.raises(ValueError, match="beyond steps=1"):
        play(_pruner(), batches, steps=1, checkpoint=checkpoint, progress=False)
