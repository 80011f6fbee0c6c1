"""Two processes (gloo, on the CPU) play the game one process plays on the whole batch: the same
agents, the same architecture vectors, rank 0 alone writes, and a resumed two-process game takes
the same next step."""
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mggc_plugin import distributed, networks
from mggc_plugin.errors import MGGCUserError
from mggc_plugin.game import neighbor_batches, play
from mggc_plugin.pruner import MGGCConfig, MGGCPruner

CONFIG = MGGCConfig(p=0.3, hidden=16, seed=3, conditional_D=False)
BATCH, STEPS = 4, 4


def _setup():
    # Instance norm and no dropout: each sample's output is independent of the rest of its batch,
    # so a shared batch computes what the whole one does.
    torch.manual_seed(0)
    G = networks.define_G(3, 3, 8, "resnet_6blocks", norm="instance", use_dropout=False)
    D = networks.define_D(3, 8, "basic", norm="instance")
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(6, 3, 32, 32, generator=gen)
    with torch.no_grad():
        y = G.eval()(x)
    neighbors = torch.tensor([[(i + 1) % 6, (i + 2) % 6] for i in range(6)])
    return G, D, x, neighbor_batches(x, y, neighbors, BATCH, seed=5)


def _state(p: MGGCPruner):
    arch = p.finalize()
    return {"gen_G": [t.detach().clone() for t in p.gen_G.parameters()],
            "gen_D": [t.detach().clone() for t in p.gen_D.parameters()],
            "h_G": p.h_G.clone(), "v_G": arch.v_G, "v_D": arch.v_D}


def _worker(rank: int, world: int, folder: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=world)
    torch.set_num_threads(1)
    writes = []
    if rank != 0:  # every write of the game ends in os.replace (fileio.atomic_write): count rank 1's
        real_replace = os.replace
        os.replace = lambda a, b: writes.append(str(b)) or real_replace(a, b)
    G, D, x, batches = _setup()
    whole = MGGCPruner(G, D, x, CONFIG)
    logs = play(whole, batches, STEPS, progress=False)

    checkpoint = f"{folder}/game.pt"
    first = MGGCPruner(G, D, x, CONFIG)
    play(first, batches, STEPS - 1, save_every=1, checkpoint=checkpoint, progress=False)
    dist.barrier()
    torch.manual_seed(1000 + rank)  # a fresh start: other global RNG states
    resumed = MGGCPruner(G, D, x, CONFIG)
    play(resumed, batches, STEPS, checkpoint=checkpoint, progress=False)
    torch.save({"whole": _state(whole), "resumed": _state(resumed), "logs": logs, "writes": writes},
               f"{folder}/rank{rank}.pt")
    dist.destroy_process_group()


def test_two_processes_play_the_game_of_one_on_the_whole_batch(tmp_path):
    G, D, x, batches = _setup()
    single = MGGCPruner(G, D, x, CONFIG)
    single_logs = play(single, batches, STEPS, progress=False)
    expected = _state(single)

    mp.spawn(_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]

    for r in ranks:
        for run in ("whole", "resumed"):
            got = r[run]
            for a, b in zip(got["gen_G"] + got["gen_D"], expected["gen_G"] + expected["gen_D"]):
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(got["h_G"], expected["h_G"], rtol=1e-4, atol=1e-5)
            assert all(torch.equal(a, b) for a, b in zip(got["v_G"] + got["v_D"], expected["v_G"] + expected["v_D"]))
        # Every step sampled the same sub-network: the same kept MACs; the losses are the whole
        # batch's means.
        for mine, theirs in zip(r["logs"], single_logs):
            assert mine["kept_macs_G"] == theirs["kept_macs_G"]
            assert abs(mine["loss_D"] - theirs["loss_D"]) < 1e-4 and abs(mine["loss_G"] - theirs["loss_G"]) < 1e-4
    # The ranks hold the very same agents.
    for a, b in zip(ranks[0]["whole"]["gen_G"], ranks[1]["whole"]["gen_G"]):
        assert torch.equal(a, b)
    assert ranks[1]["writes"] == []
    assert sorted(p.name for p in tmp_path.glob("game*")) == ["game.history.pt", "game.pt"]
    assert len(torch.load(tmp_path / "game.history.pt", weights_only=True)) == STEPS
    assert len(torch.load(tmp_path / "game.pt", weights_only=True)["rank_rngs"]) == 2


def test_a_batch_the_ranks_cannot_share_is_refused(monkeypatch):
    monkeypatch.setattr(distributed, "world", lambda: (1, 3))
    with pytest.raises(MGGCUserError, match="batch of 4 cannot be shared by 3 processes"):
        distributed.shard(torch.zeros(4, 1))
    assert distributed.shard(torch.arange(6)).tolist() == [2, 3]
