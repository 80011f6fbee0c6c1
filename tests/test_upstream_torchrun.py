"""Upstream 2025's train.py under torchrun with two processes: one command plays the game with the
agents' gradients averaged, slims, finetunes through DDP, rank 0 writes, and ``--continue_train``
under torchrun resumes (MGGC_UPSTREAM_DIR at upstream 2025).

Upstream 2025's launcher is GPU-only (``init_ddp`` joins NCCL and picks ``cuda:<LOCAL_RANK>``;
``setup`` wraps nets in DDP with ``device_ids=[device.index]``). On the CPU, :data:`CPU_LAUNCH`
stands in for the GPUs: gloo instead of NCCL, the CPU as the device, ``device_ids=None``; the
rest is upstream's own code (its ``DistributedSampler``, its DDP wrapping, its rank-0 logging)
and ours."""
import os
import subprocess
import sys

import pytest
import torch

from mggc_plugin import count_macs, load_slim
from mggc_plugin.upstream.compat import cpu_flags

pytestmark = [pytest.mark.upstream, pytest.mark.slow]

CPU_LAUNCH = """
import os, runpy, sys
import torch, torch.distributed as dist
sys.path.insert(0, os.getcwd())
import util.util

def init_ddp():
    dist.init_process_group("gloo")
    return torch.device("cpu")

class CpuDDP(torch.nn.parallel.DistributedDataParallel):
    def __init__(self, module, device_ids=None, **kw):
        super().__init__(module, device_ids=None if device_ids == [None] else device_ids, **kw)

util.util.init_ddp = init_ddp
torch.nn.parallel.DistributedDataParallel = CpuDDP
sys.argv[0] = "train.py"
runpy.run_path("train.py", run_name="__main__")
"""

TARGET = 0.3


def test_two_processes_under_torchrun_prune_finetune_and_resume(upstream_checkout, facades_subset, pix2pix_teacher,
                                                                 tmp_path):
    root = upstream_checkout.root
    if "def init_ddp" not in (root / "util" / "util.py").read_text():
        pytest.skip("upstream before 2025 has no torchrun launch (2021/2024 run one process)")
    ckpt = tmp_path / "checkpoints"
    teacher_G = pix2pix_teacher(ckpt / "teacher", n_epochs=10, n_epochs_decay=10)
    launcher = tmp_path / "cpu_train.py"
    launcher.write_text(CPU_LAUNCH)

    def torchrun(*args: str, name: str = "ddp") -> str:
        flags = ["--dataroot", str(facades_subset / "aligned"), "--checkpoints_dir", str(ckpt), "--name", name,
                 "--model", "mggc_pix2pix", "--netG", "unet_128", "--ngf", "16", "--ndf", "8", "--direction", "BtoA",
                 "--crop_size", "128", "--load_size", "136", "--num_threads", "0", "--batch_size", "1",
                 "--teacher_name", "teacher", "--mggc_target_macs", str(TARGET), "--mggc_cache_dir",
                 str(tmp_path / "cache"), "--save_epoch_freq", "1", "--lr_policy", "step", "--n_epochs_decay", "0",
                 "--print_freq", "1", "--display_freq", "100"]
        env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"}
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(launcher),
               *cpu_flags(root, "train"), *flags, *args]
        proc = subprocess.run(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=900)
        if proc.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} exited with {proc.returncode}:\n{proc.stdout[-6000:]}")
        return proc.stdout

    out = torchrun("--n_epochs", "1")
    assert "within the game: continue it with --continue_train --epoch_count 2" in out
    # 6 training pairs shared by 2 ranks: 3 game steps per epoch on each.
    assert out.count("[Rank 0] (epoch: 1, iters: 3,") == 1 and out.count("[Rank 1] (epoch: 1, iters: 3,") == 1
    run = ckpt / "ddp"
    state = torch.load(run / "1_mggc_pruner.pt", weights_only=True)
    assert state["step_count"] == 3 and len(state["rank_rngs"]) == 2
    assert len(torch.load(run / "1_mggc_rng.pt", weights_only=True)["ranks"]) == 2

    out = torchrun("--n_epochs", "4", "--continue_train", "--epoch_count", "2")
    assert "resumed the pruning game at step 3" in out and "the pruning game is over after 2 epochs" in out
    for name in ("2_mggc_pruner.pt", "latest_slim_G.pt", "latest_net_G.pth", "mggc_report.json", "neighbors.pt"):
        assert (run / name).is_file(), f"the torchrun run did not write {name}"
    log = (run / "loss_log.txt").read_text()
    assert "[Rank 0] (epoch: 4, " in log and "[Rank 1]" not in log, "rank 0 alone writes the log"
    slim_G = load_slim(run / "latest_slim_G.pt")
    shape = (1, 3, 128, 128)
    assert count_macs(slim_G, shape).total <= TARGET * count_macs(teacher_G, shape).total

    # The two phases as separate runs: the finetune phase builds its DDP pair before upstream's setup.
    torchrun("--mggc_phase", "prune", "--n_epochs", "1", name="phases")
    out = torchrun("--mggc_phase", "finetune", "--n_epochs", "2", name="phases")
    assert out.count("[Rank 1] (epoch: 2, iters: 3,") == 1
    assert (ckpt / "phases" / "latest_slim_G.pt").is_file()
