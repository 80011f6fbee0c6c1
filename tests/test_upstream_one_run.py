"""One command (``--mggc_phase all``, the default) inside upstream's train.py: the pruning game
for 10 % of the teacher's epochs, then the slim pair finetuned for the rest, saved and resumed at
any epoch as upstream does; a resumed run ends with the uninterrupted run's slim G, bit for bit
on the CPU (MGGC_UPSTREAM_DIR)."""
import pytest
import torch

from mggc_plugin import count_macs, load_slim, networks

pytestmark = [pytest.mark.upstream, pytest.mark.slow]

TARGET = 0.3


@pytest.fixture
def train(upstream_checkout, facades_subset, pix2pix_teacher, tmp_path):
    """``train(name, *args)``: upstream's train.py with --model mggc_pix2pix and no --mggc_phase,
    compressing a tiny pix2pix teacher, 4 epochs in all (the step policy keeps the learning rate,
    so that a run cut short is scheduled as the whole one); returns its output."""
    ckpt = tmp_path / "checkpoints"
    # The teacher was trained for 10 + 10 epochs: the game plays 10 % of them, 2 epochs.
    pix2pix_teacher(ckpt / "teacher", n_epochs=10, n_epochs_decay=10)

    def go(name: str, *args: str) -> str:
        flags = ["--dataroot", str(facades_subset / "aligned"), "--checkpoints_dir", str(ckpt), "--name", name,
                 "--model", "mggc_pix2pix", "--netG", "unet_128", "--ngf", "16", "--ndf", "8", "--direction", "BtoA",
                 "--crop_size", "128", "--load_size", "136", "--num_threads", "0", "--batch_size", "1",
                 "--teacher_name", "teacher", "--mggc_target_macs", str(TARGET), "--mggc_cache_dir",
                 str(tmp_path / "cache"), "--save_epoch_freq", "1", "--lr_policy", "step", "--n_epochs_decay", "0",
                 "--print_freq", "3", "--display_freq", "4"]
        return upstream_checkout.run("train", *flags, *args, timeout=600).stdout

    go.ckpt = ckpt
    return go


def test_one_command_prunes_then_finetunes_and_resumes_anywhere_to_the_same_slim_G(train):
    out = train("full", "--n_epochs", "4")
    assert "MGGC: one run: the pruning game in epochs 1-2 (10% of the teacher's 20 epochs), then G and D slimmed " \
           "and finetuned in epochs 3-4" in out
    assert "MGGC: epoch 3: the pruning game is over after 2 epochs" in out
    assert "encoder: inception" in out or "inception encoder, auto" in out, "the default encoder on 6 images"
    full = train.ckpt / "full"
    for name in ("2_mggc_pruner.pt", "2_net_gen_G.pth", "3_slim_G.pt", "latest_slim_G.pt", "latest_net_G.pth",
                 "mggc_report.json", "mggc_run.json", "neighbors.pt"):
        assert (full / name).is_file(), f"the one run did not write {name}"
    assert not (full / "3_mggc_pruner.pt").exists(), "epoch 3 is a finetune epoch"
    log = (full / "loss_log.txt").read_text()
    assert "(epoch: 1, " in log and "(epoch: 4, " in log and "G_GAN: " in log and "R: " in log

    teacher_G = networks.load_state(networks.define_G(3, 3, 16, "unet_128", "batch", use_dropout=True),
                                    train.ckpt / "teacher" / "latest_net_G.pth")
    slim_G = load_slim(full / "latest_slim_G.pt")
    shape = (1, 3, 128, 128)
    assert count_macs(slim_G, shape).total <= TARGET * count_macs(teacher_G, shape).total

    # Interrupted after a game epoch, and after a finetune epoch; each continued as upstream does.
    for name, stop in (("cut_in_game", 1), ("cut_in_finetune", 3)):
        out = train(name, "--n_epochs", str(stop))
        resumed = train(name, "--n_epochs", "4", "--continue_train", "--epoch_count", str(stop + 1))
        if stop == 1:
            assert "within the game: continue it with --continue_train --epoch_count 2" in out
            assert "resumed the pruning game at step 6" in resumed and "the pruning game is over" in resumed
        else:
            assert "resumed the optimisers" in resumed and "the pruning game is over" not in resumed
        again = torch.load(train.ckpt / name / "latest_slim_G.pt", weights_only=True)
        first = torch.load(full / "latest_slim_G.pt", weights_only=True)
        assert again["widths"] == first["widths"], name
        assert all(torch.equal(again["state_dict"][k], v) for k, v in first["state_dict"].items()), name
