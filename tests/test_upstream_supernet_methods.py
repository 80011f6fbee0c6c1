"""--mggc_method gan_compression|agd inside upstream's train.py/test.py (MGGC_UPSTREAM_DIR; run
against 2021, 2024 and 2025): the prune phase trains a supernet on upstream's batches, saves it at
upstream's save points and resumes it exactly; the finetune phase searches its widths under the
budget, extracts the student and trains it — with the supernet's D (GAN Compression) or without
any D (AGD) — and test.py runs the slim G."""
import json

import pytest
import torch

from mggc_plugin import count_macs, load_slim, networks

pytestmark = [pytest.mark.upstream, pytest.mark.slow]

COMMON = ["--num_threads", "0", "--batch_size", "1", "--print_freq", "1", "--display_freq", "2",
          "--save_epoch_freq", "1", "--n_epochs_decay", "0",
          # The step policy keeps the learning rate: 2021/2024 step the linear schedule before the
          # only epoch, which would train at learning rate 0 (see compat).
          "--lr_policy", "step"]

PIX2PIX = dict(model="pix2pix", data="aligned", size=128, target=0.3, G="G", D="D", conditional=True,
               arch=dict(netG="unet_128", ngf=8, ndf=8, norm="batch", no_dropout=False, direction="BtoA",
                         gan_mode="vanilla"),
               flags=["--netG", "unet_128", "--ngf", "8", "--ndf", "8", "--direction", "BtoA"])
CYCLE_GAN = dict(model="cycle_gan", data="unaligned", size=64, target=0.25, G="G_A", D="D_A", conditional=False,
                 arch=dict(netG="resnet_6blocks", ngf=8, ndf=8, norm="instance", no_dropout=True, direction="AtoB",
                           gan_mode="lsgan"),
                 flags=["--netG", "resnet_6blocks", "--ngf", "8", "--ndf", "8"])


def teacher_G(case):
    a = case["arch"]
    return networks.define_G(3, 3, a["ngf"], a["netG"], a["norm"], use_dropout=not a["no_dropout"])


def make_teacher(case, folder):
    """A randomly initialised teacher pair saved as upstream names it, with its train_opt.txt."""
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    a = case["arch"]
    torch.save(teacher_G(case).state_dict(), folder / f"latest_net_{case['G']}.pth")
    D = networks.define_D(6 if case["conditional"] else 3, a["ndf"], "basic", norm=a["norm"])
    torch.save(D.state_dict(), folder / f"latest_net_{case['D']}.pth")
    opt = dict(model=case["model"], **a, input_nc=3, output_nc=3, netD="basic", n_layers_D=3,
               crop_size=case["size"], n_epochs=1, n_epochs_decay=0)
    lines = "".join(f"{k:>25}: {str(v):<30}\n" for k, v in opt.items())
    (folder / "train_opt.txt").write_text(f"----------------- Options ---------------\n{lines}"
                                          f"----------------- End -------------------\n")


@pytest.fixture
def run(upstream_checkout, facades_subset, tmp_path):
    """``run(case, script, name, *args)``: upstream's train.py or test.py with ``--model
    mggc_<case>`` on the tiny facades subset, a tiny teacher made once per case."""
    ckpt = tmp_path / "checkpoints"

    def go(case, script, name, *args, check=True):
        if not (ckpt / "teacher").is_dir():
            make_teacher(case, ckpt / "teacher")
        size = case["size"]
        flags = ["--dataroot", str(facades_subset / case["data"]), "--checkpoints_dir", str(ckpt), "--name", name,
                 "--model", f"mggc_{case['model']}", *case["flags"], "--crop_size", str(size)]
        if script == "train":
            flags += ["--load_size", str(size + 8), *COMMON]
        else:
            flags += ["--load_size", str(size), "--results_dir", str(tmp_path / "results"), "--eval",
                      "--num_test", "1"]
        return upstream_checkout.run(script, *flags, *args, check=check, timeout=600)

    go.ckpt = ckpt
    return go


def prune_args(case, method):
    return ["--mggc_phase", "prune", "--mggc_method", method, "--teacher_name", "teacher", "--mggc_target_macs",
            str(case["target"]), "--mggc_round_to", "2"]


def check_student(case, folder, method, with_D):
    """The slim G is within the search's window of the budget, holds none of the supernet's
    distillation maps, and the report says how it was found."""
    shape = (1, 3, case["size"], case["size"])
    teacher = networks.load_state(teacher_G(case), folder.parent / "teacher" / f"latest_net_{case['G']}.pth")
    slim_G = load_slim(folder / "latest_slim_G.pt")
    full, small = count_macs(teacher, shape).total, count_macs(slim_G, shape).total
    assert 0.9 * case["target"] * full <= small <= case["target"] * full
    assert all(w % 2 == 0 for w in slim_G.mggc_slim["widths"]), "the candidates are multiples of --mggc_round_to"
    saved = torch.load(folder / "latest_net_G.pth", weights_only=True)
    assert set(saved) <= set(teacher.state_dict()), "the distillation maps are not part of the saved G"
    report = json.loads((folder / "mggc_report.json").read_text())
    assert report["method"] == method and report["slim"]["G"]["macs"] == small
    assert report["search"]["held_out_images"] == 1 and 1 <= report["search"]["candidates"] <= 6
    assert ("D" in report["slim"]) == with_D and report["supernet_steps"] > 0
    return small / full


def test_gan_compression_prunes_resumes_exactly_finetunes_and_tests(run):
    case = PIX2PIX
    out = run(case, "train", "straight", *prune_args(case, "gan_compression"), "--n_epochs", "2").stdout
    assert "MGGC prune (gan_compression)" in out and "against a copy of the teacher's D" in out
    assert "1 of 6 training images held out" in out
    folder = run.ckpt / "straight"
    for name in ("latest_mggc_supernet.pt", "1_mggc_supernet.pt", "latest_net_supernet_G.pth",
                 "latest_net_supernet_D.pth", "mggc_run.json"):
        assert (folder / name).is_file(), f"the prune phase did not write {name}"
    assert not (folder / "neighbors.pt").exists() and not (folder / "mggc_cache").exists()
    log = (folder / "loss_log.txt").read_text()
    assert all(f"{k}: " in log for k in ("sampled_macs", "D", "G_gan", "G_recon", "G_distill"))
    state = torch.load(folder / "latest_mggc_supernet.pt", weights_only=True)
    assert state["trainer"]["step_count"] == 10, "5 training images a epoch: the held-out one never trains"
    teacher = torch.load(run.ckpt / "teacher" / "latest_net_G.pth", weights_only=True)
    assert any(not torch.equal(v, teacher[k]) for k, v in state["trainer"]["G"].items() if v.is_floating_point())

    # Interrupted after epoch 1 and continued: the same supernet as the uninterrupted run.
    run(case, "train", "cut", *prune_args(case, "gan_compression"), "--n_epochs", "1")
    resumed = run(case, "train", "cut", *prune_args(case, "gan_compression"), "--n_epochs", "2", "--continue_train",
                  "--epoch_count", "2").stdout
    assert "resumed the supernet at step 5" in resumed
    record = (run.ckpt / "cut" / "mggc_run.json").read_text()
    other = run(case, "train", "cut", *prune_args(case, "gan_compression")[:-4], "--mggc_target_macs", "0.4",
                "--mggc_round_to", "2", "--n_epochs", "3", "--continue_train", "--epoch_count", "3", check=False)
    assert other.returncode != 0 and "was trained with other target_macs, space than this run's options" in other.stdout
    assert (run.ckpt / "cut" / "mggc_run.json").read_text() == record, "a refused run leaves the record alone"
    again = torch.load(run.ckpt / "cut" / "latest_mggc_supernet.pt", weights_only=True)["trainer"]
    for part in ("G", "D", "adapters"):
        assert all(torch.equal(again[part][k], v) for k, v in state["trainer"][part].items()), part

    out = run(case, "train", "straight", "--mggc_phase", "finetune", "--n_epochs", "1", "--mggc_search_candidates",
              "6").stdout
    assert "MGGC finetune: slimmed by" in out and "random search of" in out
    assert (folder / "latest_slim_D.pt").is_file() and "G_GAN: " in (folder / "loss_log.txt").read_text()
    kept = check_student(case, folder, "gan_compression", with_D=True)
    print(f"gan_compression: slim G at {kept:.1%} of the teacher's MACs (target {case['target']:.0%})")
    run(case, "test", "straight")
    assert (run.ckpt.parent / "results" / "straight" / "test_latest" / "index.html").is_file()


def test_agd_trains_without_any_discriminator(run):
    case = CYCLE_GAN
    out = run(case, "train", "agd", *prune_args(case, "agd"), "--n_epochs", "1").stdout
    assert "MGGC prune (agd)" in out and "without a discriminator" in out
    folder = run.ckpt / "agd"
    assert (folder / "latest_mggc_supernet.pt").is_file() and (folder / "latest_net_supernet_G.pth").is_file()
    assert not (folder / "latest_net_supernet_D.pth").exists()
    log = (folder / "loss_log.txt").read_text()
    assert "G_distill: " in log and "D: " not in log and "G_gan" not in log

    out = run(case, "train", "agd", "--mggc_phase", "finetune", "--n_epochs", "1", "--mggc_search_candidates",
              "6").stdout
    assert "D: none, --mggc_method agd trains G without a discriminator" in out
    finetune_lines = [line for line in (folder / "loss_log.txt").read_text().splitlines() if "G_content: " in line]
    assert finetune_lines and all("G_perceptual: " in line and "G_tv: " in line for line in finetune_lines)
    assert not any("D: " in line or "G_GAN" in line for line in finetune_lines)
    assert not any((folder / name).exists() for name in ("latest_slim_D.pt", "latest_net_D.pth"))
    check_student(case, folder, "agd", with_D=False)

    refused = run(case, "train", "agd", "--mggc_phase", "finetune", "--n_epochs", "2", "--continue_train",
                  "--epoch_count", "2", "--mggc_kd", check=False)
    assert refused.returncode != 0 and "leave --mggc_kd out" in refused.stdout
    resumed = run(case, "train", "agd", "--mggc_phase", "finetune", "--n_epochs", "2", "--continue_train",
                  "--epoch_count", "2").stdout
    assert "resumed the optimisers" in resumed and "slimmed by" not in resumed
    run(case, "test", "agd")
    assert (run.ckpt.parent / "results" / "agd" / "test_latest" / "index.html").is_file()
