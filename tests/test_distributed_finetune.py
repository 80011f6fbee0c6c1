"""Two processes (gloo, on the CPU) finetune the slim pair as one process does on the whole batch:
G, D and the KD adapters through DDP / averaged gradients, the same weights on every rank."""
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mggc_plugin import ChannelGroups, networks, slim
from mggc_plugin.finetune import FinetuneConfig, Finetuner, fit

CONFIG = FinetuneConfig(gan_mode="lsgan", lambda_kd=1.0)


def _setup():
    # Instance norm, no dropout: a sample's output does not depend on the rest of its batch.
    torch.manual_seed(0)
    teacher = networks.define_G(3, 3, 8, "resnet_6blocks", norm="instance")
    groups = ChannelGroups.discover(teacher, torch.zeros(1, 3, 32, 32))
    G = slim(teacher, groups, [torch.arange(n) < n // 2 for n in groups.sizes])
    D = networks.define_D(6, 8, "basic", norm="instance")
    gen = torch.Generator().manual_seed(2)
    batches = [(x, torch.tanh(x.flip(1)), torch.tanh(x.flip(1)))
               for x in (torch.randn(4, 3, 32, 32, generator=gen) for _ in range(2))]
    tuner = Finetuner(G, D, CONFIG, teacher=teacher.eval(), kd_layers=[g.root for g in groups])
    return tuner, lambda epoch: batches


def _weights(tuner):
    return [t.detach().clone() for t in [*tuner.G.parameters(), *tuner.D.parameters(), *tuner.adapters.parameters()]]


PROBE = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(9))


def _functions(tuner):
    """What the pair computes on a probe, and the adapters' weights. Compared instead of G's and
    D's weights: the bias of a convolution followed by instance norm has no effect, its
    gradient is float noise, which Adam scales to a full step of either sign."""
    with torch.no_grad():
        y = tuner.G.eval()(PROBE)
        d = tuner.D.eval()(torch.cat([PROBE, y], 1))
    return [y, d, *[t.detach().clone() for t in tuner.adapters.parameters()]]


def _worker(rank: int, world: int, folder: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=world)
    torch.set_num_threads(1)
    torch.manual_seed(100 + rank)  # the ranks' own initialisations must not matter: rank 0's win
    tuner, batches = _setup()
    result = fit(tuner, batches, epochs=2, ema_decay=0.9, progress=False)
    torch.save({"weights": _weights(tuner), "functions": _functions(tuner), "epochs": result.epochs,
                "ema": result.ema_G.eval()(PROBE).detach()}, f"{folder}/rank{rank}.pt")
    dist.destroy_process_group()


def test_two_processes_finetune_as_one_on_the_whole_batch(tmp_path):
    tuner, batches = _setup()
    result = fit(tuner, batches, epochs=2, ema_decay=0.9, progress=False)
    expected = _functions(tuner)

    mp.spawn(_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    for r in ranks:
        assert len(r["functions"]) == len(expected)
        for a, b in zip(r["functions"], expected):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(r["ema"], result.ema_G.eval()(PROBE).detach(), rtol=1e-4, atol=1e-5)
        for mine, theirs in zip(r["epochs"], result.epochs):
            for key in ("G_L1", "G_GAN", "D", "G_KD"):
                assert abs(mine[key] - theirs[key]) < 1e-4 * max(1.0, abs(theirs[key]))
    for a, b in zip(ranks[0]["weights"], ranks[1]["weights"]):
        assert torch.equal(a, b)


def _no_kd_worker(rank: int, world: int, folder: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=world)
    tuner, batches = _setup()
    plain = Finetuner(tuner.G, tuner.D, FinetuneConfig(gan_mode="lsgan"))  # no KD: no adapters to average
    plain.step(*batches(0)[0])
    dist.destroy_process_group()


def test_without_kd_adapters_the_step_runs(tmp_path):
    mp.spawn(_no_kd_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
