"""The user's path inside an upstream checkout (MGGC_UPSTREAM_DIR; run against 2021, 2024 and
2025): register → upstream's train.py makes a tiny teacher → prune → finetune → test.py →
mggc export → the exported file runs without mggc_plugin → --undo leaves git clean."""
import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mggc_plugin import count_macs, load_slim, networks
from mggc_plugin.cli import main as mggc
from mggc_plugin.neighborhoods import Preprocess
from mggc_plugin.teacher import inference_copy
from mggc_plugin.upstream.register import unregister

pytestmark = [pytest.mark.upstream, pytest.mark.slow]

COMMON = ["--num_threads", "0", "--batch_size", "1"]
SHORT = ["--n_epochs", "1", "--n_epochs_decay", "0", "--save_epoch_freq", "1"]
# The step policy keeps the learning rate for 50 epochs: 2021/2024 step the linear schedule
# before the only epoch, which would train it at learning rate 0 (see compat).
CONSTANT_LR = ["--lr_policy", "step"]
LOGS = ["--print_freq", "1", "--display_freq", "2"]

PIX2PIX = dict(model="pix2pix", data="aligned", size=128, target=0.1,
               arch=["--netG", "unet_128", "--ngf", "8", "--ndf", "8", "--direction", "BtoA"],
               encoder=["--mggc_encoder", "swav", "--mggc_swav_arch", "resnet18", "--mggc_swav_epochs", "1",
                        "--mggc_swav_batch_size", "4", "--mggc_swav_crops", "64", "32", "--mggc_swav_prototypes", "8"],
               finetune=[], G="G", source="right", teacher=dict(netG="unet_128", norm="batch", use_dropout=True))
CYCLE_GAN = dict(model="cycle_gan", data="unaligned", size=64, target=0.2,
                 arch=["--netG", "resnet_6blocks", "--ngf", "8", "--ndf", "8"],
                 encoder=["--mggc_encoder", "inception"],
                 finetune=["--mggc_kd", "--mggc_kd_at", "norm", "--mggc_round_to", "2"],
                 G="G_A", source=None, teacher=dict(netG="resnet_6blocks", norm="instance", use_dropout=False))

SETUP_KEEPS_WEIGHTS = textwrap.dedent("""
    import sys, torch
    sys.argv = ["train.py"] + sys.argv[1:]
    from options.train_options import TrainOptions
    from models import create_model
    opt = TrainOptions().parse()
    opt.device = torch.device("cpu")  # what 2025's train.py sets; unused by 2021/2024
    model = create_model(opt)
    nets = {n: getattr(model, "net" + n) for n in model.model_names}
    before = {n: {k: v.clone() for k, v in net.state_dict().items()} for n, net in nets.items()}
    model.setup(opt)
    for n in model.model_names:
        after = getattr(model, "net" + n).state_dict()
        assert all(torch.equal(before[n][k], after[k]) for k in after), f"setup changed net{n}"
    print("setup kept", model.model_names)
""")


def digests(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def upstream_png_of(t: torch.Tensor) -> np.ndarray:
    """What upstream's tensor2im + save_image write for a 1×C×H×W image in [-1, 1]."""
    return ((t[0].permute(1, 2, 0).numpy() + 1) / 2.0 * 255.0).astype(np.uint8)


@pytest.mark.parametrize("case", [PIX2PIX, CYCLE_GAN], ids=["mggc_pix2pix", "mggc_cycle_gan"])
def test_teacher_prune_finetune_test_export(case, upstream_checkout, facades_subset, tmp_path):
    up = upstream_checkout
    ckpt, results = tmp_path / "checkpoints", tmp_path / "results"
    data = facades_subset / case["data"]
    size = case["size"]
    dirs = ["--dataroot", str(data), "--checkpoints_dir", str(ckpt)]
    arch = case["arch"] + ["--crop_size", str(size)]
    model = f"mggc_{case['model']}"

    up.run("train", *dirs, "--name", "teacher", "--model", case["model"], *arch, "--load_size", str(size + 8),
           *COMMON, *SHORT)
    teacher_files = digests(ckpt / "teacher")
    prune = [*dirs, "--name", "student", "--model", model, *arch, "--load_size", str(size + 8), *COMMON, *LOGS,
             "--mggc_phase", "prune", "--teacher_name", "teacher", "--mggc_target_macs", str(case["target"]),
             "--mggc_k", "3", *case["encoder"]]
    out = up.run("train", *prune, *SHORT).stdout
    run = ckpt / "student"
    for name in ("latest_net_gen_G.pth", "latest_net_gen_D.pth", "latest_mggc_pruner.pt", "mggc_run.json",
                 "neighbors.pt", "neighbors/index.html"):
        assert (run / name).is_file(), f"the prune phase did not write {name}"
    log = (run / "loss_log.txt").read_text()
    assert all(f"{k}: " in log for k in ("G", "D", "R", "L", "kept_macs")), "the game's losses reach upstream's log"
    assert "MGGC prune: teacher" in out

    resumed = up.run("train", *prune, "--continue_train", "--epoch_count", "2", "--n_epochs", "2",
                     "--n_epochs_decay", "0", "--save_epoch_freq", "1").stdout
    assert "resumed the pruning game at step 6" in resumed
    assert torch.load(run / "latest_mggc_pruner.pt", weights_only=True)["step_count"] == 12

    finetune = [*dirs, "--name", "student", "--model", model, *arch, "--load_size", str(size + 8), *COMMON, *LOGS,
                "--mggc_phase", "finetune", *case["finetune"]]
    for phase_args in (prune, finetune):
        assert "setup kept" in up.run("train", *phase_args, code=SETUP_KEEPS_WEIGHTS).stdout

    out = up.run("train", *finetune, *SHORT, *CONSTANT_LR).stdout
    assert "MGGC finetune: slimmed by" in out and "G MACs" in out
    resumed = up.run("train", *finetune, *CONSTANT_LR, "--continue_train", "--epoch_count", "2", "--n_epochs", "2",
                     "--n_epochs_decay", "0", "--save_epoch_freq", "1").stdout
    assert "resumed the optimisers" in resumed and "slimmed by" not in resumed
    for name in ("latest_net_G.pth", "latest_net_D.pth", "latest_slim_G.pt", "1_slim_G.pt", "latest_slim_D.pt",
                 "mggc_report.json"):
        assert (run / name).is_file(), f"the finetune phase did not write {name}"
    if "--mggc_kd" in case["finetune"]:
        assert (run / "latest_net_KD.pth").is_file() and "G_KD: " in (run / "loss_log.txt").read_text()

    # The slim G is within budget, and the report says what it is.
    shape = (1, 3, size, size)
    teacher_G = networks.load_state(networks.define_G(3, 3, 8, **case["teacher"]),
                                    ckpt / "teacher" / f"latest_net_{case['G']}.pth")
    slim_G = load_slim(run / "latest_slim_G.pt")
    full, small = count_macs(teacher_G, shape).total, count_macs(slim_G, shape).total
    assert small <= case["target"] * full
    print(f"{case['model']}: G {full / 1e6:.2f} M MACs -> slim {small / 1e6:.2f} M MACs ({small / full:.1%}, "
          f"target {case['target']:.0%}) at {size}x{size}")
    report = json.loads((run / "mggc_report.json").read_text())
    assert report["teacher"]["G"]["macs"] == full and report["slim"]["G"]["macs"] == small
    assert [w["slim"] for w in report["widths_G"]] == slim_G.mggc_slim["widths"]
    state = torch.load(run / "latest_net_G.pth", weights_only=True)
    assert all(torch.equal(state[k], v) for k, v in slim_G.state_dict().items()), "upstream's file is the slim G"

    # test.py writes upstream's result page with the slim G (--eval: deterministic, comparable).
    up.run("test", *dirs, "--results_dir", str(results), "--name", "student", "--model", model, *arch,
           "--load_size", str(size), "--eval", "--num_test", "2")
    page = results / "student" / "test_latest"
    assert (page / "index.html").is_file()
    first = sorted((data / ("test" if case["data"] == "aligned" else "testA")).iterdir())[0]
    image = Image.open(first).convert("RGB")
    if case["source"] == "right":
        image = image.crop((image.width // 2, 0, image.width, image.height))
    x = Preprocess(size).tensor(image, 3)[None]
    with torch.no_grad():
        expected = upstream_png_of(slim_G(x))
    written = np.asarray(Image.open(page / "images" / f"{first.stem}_fake_B.png").convert("RGB"))
    assert np.abs(written.astype(int) - expected.astype(int)).max() <= 1, "test.py ran another generator"

    # mggc export finds the slim G by the run folder; the file runs without mggc_plugin.
    assert mggc(["export", str(run)]) == 0
    torch.save(x, tmp_path / "x.pt")
    script = ("import sys, torch; m = torch.jit.load(sys.argv[1]); torch.save(m(torch.load(sys.argv[2])), sys.argv[3]);"
              " assert 'mggc_plugin' not in sys.modules")
    subprocess.run([sys.executable, "-c", script, str(run / "latest_slim_G.ts"), str(tmp_path / "x.pt"),
                    str(tmp_path / "y.pt")], check=True, cwd=tmp_path)
    reference = inference_copy(slim_G)  # export's default --norm_stats per_image: BatchNorm by each image's statistics
    with torch.no_grad():
        assert torch.allclose(torch.load(tmp_path / "y.pt"), reference(x), atol=1e-5)

    for script, args, seconds in up.timings:
        phase = next((a for a in args if a in ("prune", "finetune")), args[args.index("--model") + 1])
        print(f"{case['model']}: {script} {phase}{' --continue_train' if '--continue_train' in args else ''}: "
              f"{seconds:.1f} s")
    assert digests(ckpt / "teacher") == teacher_files, "the teacher's files changed"
    unregister(up.root)
    assert up.git_status() == "", "mggc register --undo left the checkout changed"



def test_l1_norm_baseline_prunes_without_a_game_then_finetunes_and_tests(upstream_checkout, facades_subset, tmp_path):
    """--mggc_method l1_norm: the prune phase writes masks at once (no neighbourhoods, no agents,
    one pass of upstream's loop), the unchanged finetune phase slims G within budget, D whole."""
    up = upstream_checkout
    ckpt = tmp_path / "checkpoints"
    size, target = 128, 0.25
    dirs = ["--dataroot", str(facades_subset / "aligned"), "--checkpoints_dir", str(ckpt)]
    arch = PIX2PIX["arch"] + ["--crop_size", str(size), "--load_size", str(size + 8)]
    up.run("train", *dirs, "--name", "teacher", "--model", "pix2pix", *arch, *COMMON, *SHORT)
    student = [*dirs, "--name", "student", "--model", "mggc_pix2pix", *arch, *COMMON, *LOGS]
    out = up.run("train", *student, "--mggc_phase", "prune", "--mggc_method", "l1_norm", "--teacher_name", "teacher",
                 "--mggc_target_macs", str(target), "--mggc_round_to", "2", "--n_epochs", "3", "--n_epochs_decay",
                 "3").stdout
    assert "MGGC prune (l1_norm)" in out and "End of epoch 1 / 1" in out, "upstream's loop is cut to one epoch"
    run = ckpt / "student"
    assert (run / "latest_mggc_masks.pt").is_file() and (run / "mggc_run.json").is_file()
    assert not any((run / name).exists() for name in ("neighbors.pt", "latest_mggc_pruner.pt", "mggc_cache"))
    assert "kept_macs: " in (run / "loss_log.txt").read_text()

    out = up.run("train", *student, "--mggc_phase", "finetune", *SHORT, *CONSTANT_LR).stdout
    assert "slimmed by" in out and "(l1_norm)" in out
    shape = (1, 3, size, size)
    teacher_G = networks.load_state(networks.define_G(3, 3, 8, **PIX2PIX["teacher"]), run.parent / "teacher" /
                                    "latest_net_G.pth")
    teacher_D = networks.load_state(networks.define_D(6, 8, "basic", norm="batch"), run.parent / "teacher" /
                                    "latest_net_D.pth")
    slim_G, slim_D = load_slim(run / "latest_slim_G.pt"), load_slim(run / "latest_slim_D.pt")
    full, small = count_macs(teacher_G, shape).total, count_macs(slim_G, shape).total
    assert 0.5 * target * full < small <= target * full
    assert all(w % 2 == 0 for w in slim_G.mggc_slim["widths"])
    assert sum(p.numel() for p in slim_D.parameters()) == sum(p.numel() for p in teacher_D.parameters())
    report = json.loads((run / "mggc_report.json").read_text())
    assert report["method"] == "l1_norm" and report["slim"]["G"]["macs"] == small and report["round_to"] == 2
    print(f"l1_norm: G {full / 1e6:.2f} M MACs -> slim {small / 1e6:.2f} M MACs ({small / full:.1%}, target "
          f"{target:.0%})")

    up.run("test", *dirs, "--results_dir", str(tmp_path / "results"), "--name", "student", "--model", "mggc_pix2pix",
           *PIX2PIX["arch"], "--crop_size", str(size), "--load_size", str(size), "--eval", "--num_test", "1")
    assert (tmp_path / "results" / "student" / "test_latest" / "index.html").is_file()
