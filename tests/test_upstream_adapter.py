"""The parts of ``mggc_plugin.upstream`` that need no upstream checkout: finding a teacher and
checking a run's options against it, the prune phase's run record, the run-folder guard and the
version-compatibility helpers. Teacher files here are placeholders: these functions only look at
their names and bytes."""
import argparse
import json
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from mggc_plugin import MGGCConfig
from mggc_plugin.errors import MGGCUserError
from mggc_plugin.upstream import compat
from mggc_plugin.upstream.options import RUN_RECORD, check_run_folder
from mggc_plugin.upstream.record import RunRecord
from mggc_plugin.upstream.specs import TEACHER_KINDS
from mggc_plugin.upstream.teacher import find_teacher

PIX2PIX = dict(model="pix2pix", netG="unet_128", ngf=32, ndf=64, norm="batch", no_dropout=False, direction="BtoA",
               input_nc=3, output_nc=3, netD="basic", n_layers_D=3)
SHARED_UPSTREAM = Path(__file__).resolve().parents[2] / "shared" / "upstream"


def write_train_opt(folder: Path, options: dict) -> None:
    """``train_opt.txt`` as upstream's BaseOptions.print_options writes it, which appends
    ``[default: ...]`` to the options that differ from their defaults (ngf here)."""
    lines = ""
    for k, v in options.items():
        comment = "\t[default: 64]" if k == "ngf" else ""
        lines += f"{k:>25}: {str(v):<30}{comment}\n"
    (folder / "train_opt.txt").write_text(f"----------------- Options ---------------\n{lines}"
                                          f"----------------- End -------------------\n")


def make_teacher(checkpoints: Path, name: str = "teacher", files=("latest_net_G.pth", "latest_net_D.pth"),
                 options=PIX2PIX) -> Path:
    folder = checkpoints / name
    folder.mkdir(parents=True)
    for f in files:
        (folder / f).write_bytes(f"weights of {f}".encode())
    if options is not None:
        write_train_opt(folder, options)
    return folder


def run_options(**changes) -> argparse.Namespace:
    """What upstream's parser gives a prune run of --model mggc_pix2pix with the teacher's options."""
    values = {**PIX2PIX, "model": "mggc_pix2pix", "name": "student", "teacher_name": "teacher",
              "mggc_norm_stats": "per_image", "mggc_method": "mggc", **changes}
    return argparse.Namespace(**values)


# Teacher.check_options

def test_check_options_accepts_the_teachers_options(tmp_path):
    make_teacher(tmp_path)
    find_teacher(str(tmp_path), "teacher", "latest").check_options(run_options())


def test_check_options_names_every_difference_and_the_fix(tmp_path):
    make_teacher(tmp_path)
    teacher = find_teacher(str(tmp_path), "teacher", "latest")
    with pytest.raises(ValueError) as err:
        teacher.check_options(run_options(ngf=64, netG="unet_256", no_dropout=True))
    msg = str(err.value)
    assert "--netG unet_256, --ngf 64, --no_dropout True" in msg
    assert "Pass the teacher's options: --netG unet_128 --ngf 32 (no --no_dropout)" in msg


def test_check_options_reads_n_layers_D_only_for_netD_n_layers(tmp_path):
    make_teacher(tmp_path / "a")
    find_teacher(str(tmp_path / "a"), "teacher", "latest").check_options(run_options(n_layers_D=5))
    make_teacher(tmp_path / "b", options={**PIX2PIX, "netD": "n_layers", "n_layers_D": 4})
    teacher = find_teacher(str(tmp_path / "b"), "teacher", "latest")
    with pytest.raises(ValueError, match="--n_layers_D 4"):
        teacher.check_options(run_options(netD="n_layers", n_layers_D=5))


def test_check_options_without_train_opt_checks_nothing(tmp_path):
    make_teacher(tmp_path, options=None)
    teacher = find_teacher(str(tmp_path), "teacher", "latest", TEACHER_KINDS["pix2pix"])
    assert teacher.train_opt == {}
    teacher.check_options(run_options(ngf=64))


# find_teacher

def test_find_teacher_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(f"teacher folder {tmp_path / 'nobody'} does not exist")):
        find_teacher(str(tmp_path), "nobody", "latest")


def test_find_teacher_missing_epoch_names_the_file_and_the_saved_epochs(tmp_path):
    folder = make_teacher(tmp_path, files=("latest_net_G.pth", "latest_net_D.pth", "5_net_G.pth", "5_net_D.pth"))
    with pytest.raises(FileNotFoundError) as err:
        find_teacher(str(tmp_path), "teacher", "7")
    assert f"{folder / '7_net_G.pth'} does not exist (saved epochs: 5, latest)" in str(err.value)


def test_find_teacher_missing_discriminator(tmp_path):
    folder = make_teacher(tmp_path, files=("latest_net_G.pth",))
    with pytest.raises(FileNotFoundError,
                       match=re.escape(f"{folder / 'latest_net_D.pth'} does not exist (no *_net_D.pth at all)")):
        find_teacher(str(tmp_path), "teacher", "latest")


def test_find_teacher_kind_from_train_opt_or_files(tmp_path):
    # train_opt.txt decides, even where the files of another kind are there too.
    make_teacher(tmp_path / "opt", files=("latest_net_G.pth", "latest_net_D.pth", "latest_net_G_A.pth",
                                          "latest_net_D_A.pth"), options={**PIX2PIX, "model": "cycle_gan"})
    teacher = find_teacher(str(tmp_path / "opt"), "teacher", "latest")
    assert teacher.kind.model == "cycle_gan" and teacher.G_path.name == "latest_net_G_A.pth"
    assert teacher.D_path.name == "latest_net_D_A.pth" and teacher.train_opt["ngf"] == "32"

    make_teacher(tmp_path / "files", files=("latest_net_G_A.pth", "latest_net_D_A.pth"), options=None)
    assert find_teacher(str(tmp_path / "files"), "teacher", "latest").kind.model == "cycle_gan"


def test_find_teacher_without_a_generator(tmp_path):
    make_teacher(tmp_path, files=("latest_net_D.pth",), options=None)
    with pytest.raises(FileNotFoundError, match="holds no upstream pix2pix"):
        find_teacher(str(tmp_path), "teacher", "latest")


def test_find_teacher_of_another_kind(tmp_path):
    make_teacher(tmp_path, files=("latest_net_G_A.pth", "latest_net_D_A.pth"),
                 options={**PIX2PIX, "model": "cycle_gan"})
    with pytest.raises(ValueError, match="trained with --model cycle_gan.*use --model mggc_cycle_gan"):
        find_teacher(str(tmp_path), "teacher", "latest", TEACHER_KINDS["pix2pix"])


def test_find_teacher_refuses_the_teachers_folder_as_run_folder(tmp_path):
    folder = make_teacher(tmp_path)
    with pytest.raises(ValueError, match="--name teacher is the teacher's folder"):
        find_teacher(str(tmp_path), "teacher", "latest", run_dir=folder)
    assert find_teacher(str(tmp_path), "teacher", "latest", run_dir=tmp_path / "student").folder == folder


# RunRecord

@pytest.fixture
def recorded(tmp_path):
    """A prune run's record of the pix2pix teacher, written and read back: (record, teacher, run)."""
    make_teacher(tmp_path)
    teacher = find_teacher(str(tmp_path), "teacher", "latest")
    run = tmp_path / "student"
    run.mkdir()
    config = MGGCConfig(target_macs=0.1, gan_mode="hinge", conditional_D=True)
    RunRecord.of_prune_run(run_options(), teacher, config).write(run)
    return RunRecord.read(run), teacher, run


def test_run_record_round_trip(recorded):
    record, teacher, run = recorded
    assert record.config() == MGGCConfig(target_macs=0.1, gan_mode="hinge", conditional_D=True)
    assert record.arch_G["ngf"] == 32 and record.arch_D["input_nc"] == 6  # conditional D reads cat(x, y)
    assert record.teacher["G_sha256"] != record.teacher["D_sha256"]
    record.check(run_options(), teacher)


def test_run_record_check_other_model(recorded):
    record, teacher, _ = recorded
    with pytest.raises(ValueError, match="ran --model mggc_pix2pix; continue with --model mggc_pix2pix"):
        record.check(run_options(model="mggc_cycle_gan"), teacher)


def test_run_record_check_other_architecture(recorded):
    record, teacher, _ = recorded
    with pytest.raises(ValueError, match=r"built G with ngf=32 \(now 16\)"):
        record.check(run_options(ngf=16), teacher)
    with pytest.raises(ValueError, match=r"built D with ndf=64 \(now 8\)"):
        record.check(run_options(ndf=8), teacher)


def test_run_record_check_changed_teacher(recorded):
    record, teacher, _ = recorded
    teacher.D_path.write_bytes(b"retrained")
    with pytest.raises(ValueError, match=re.escape(f"the teacher file {teacher.D_path} changed since")):
        record.check(run_options(), teacher)


def test_run_record_read_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(f"{tmp_path / RUN_RECORD} does not exist")):
        RunRecord.read(tmp_path)
    (tmp_path / RUN_RECORD).write_text(json.dumps({"format": "mggc-upstream-run", "version": 99}))
    with pytest.raises(ValueError, match="version 99"):
        RunRecord.read(tmp_path)


# check_run_folder

def folder_options(checkpoints: Path, name: str, teacher_name="teacher") -> argparse.Namespace:
    return argparse.Namespace(checkpoints_dir=str(checkpoints), name=name, teacher_name=teacher_name)


def test_check_run_folder_refuses_the_teachers_folder(tmp_path):
    make_teacher(tmp_path)
    with pytest.raises(ValueError, match="--name teacher is the teacher's folder"):
        check_run_folder(folder_options(tmp_path, "teacher"))


def test_check_run_folder_refuses_another_experiment(tmp_path):
    other = make_teacher(tmp_path, name="someone_elses")
    with pytest.raises(ValueError, match=re.escape(f"{other} holds another experiment's networks")):
        check_run_folder(folder_options(tmp_path, "someone_elses"))


def test_check_run_folder_accepts_a_new_or_mggc_folder(tmp_path):
    check_run_folder(folder_options(tmp_path, "new"))
    check_run_folder(folder_options(tmp_path, "new", teacher_name=None))
    run = make_teacher(tmp_path, name="student")  # networks saved by an earlier MGGC phase
    (run / RUN_RECORD).write_text("{}")
    check_run_folder(folder_options(tmp_path, "student"))


# compat

def test_unwrap():
    net = nn.Conv2d(3, 4, 1)
    assert compat.unwrap(nn.DataParallel(nn.DataParallel(net))) is net
    assert compat.unwrap(torch.compile(net)) is net  # compiles lazily: nothing runs here
    assert compat.unwrap(net) is net


class FakeModel:
    """What weights_kept_through_setup reads of an upstream model: model_names and net<name>."""

    def __init__(self):
        self.model_names = ["G"]
        self.netG = nn.DataParallel(nn.Linear(2, 2))


@pytest.mark.parametrize("restore", [True, False])
def test_weights_kept_through_setup(restore):
    model = FakeModel()
    before = {k: v.clone() for k, v in model.netG.state_dict().items()}
    with compat.weights_kept_through_setup(model, restore), torch.no_grad():
        model.netG.module.weight.fill_(7.0)  # what 2025's setup() does: init_net
    kept = all(torch.equal(before[k], v) for k, v in model.netG.state_dict().items())
    assert kept is restore


def test_several_gpu_ids_in_one_process_are_refused_with_the_fix():
    compat.check_processes(argparse.Namespace(gpu_ids=[0]))
    compat.check_processes(argparse.Namespace())  # 2025: no --gpu_ids
    with pytest.raises(MGGCUserError, match=r"--gpu_ids 0,1: .*pass --gpu_ids 0.*torchrun --nproc_per_node 2"):
        compat.check_processes(argparse.Namespace(gpu_ids=[0, 1]))


def test_the_wrappers_of_setup_are_undone():
    model = FakeModel()
    plain = model.netG.module
    compat.unwrap_all(model)
    assert model.netG is plain


def fake_checkout(root: Path, gpu_ids: bool, visdom: bool) -> Path:
    (root / "options").mkdir(parents=True)
    base = "parser.add_argument('--gpu_ids', type=str, default='0')\n" if gpu_ids else ""
    train = 'parser.add_argument("--display_id", type=int, default=1)\n' if visdom else ""
    (root / "options" / "base_options.py").write_text(base + "parser.add_argument('--name')\n")
    (root / "options" / "train_options.py").write_text(train + "parser.add_argument('--lr')\n")
    return root


def test_cpu_flags(tmp_path):
    old = fake_checkout(tmp_path / "old", gpu_ids=True, visdom=True)
    assert compat.cpu_flags(old, "train") == ["--gpu_ids", "-1", "--display_id", "0"]
    assert compat.cpu_flags(old, "test") == ["--gpu_ids", "-1"]
    assert compat.cpu_flags(fake_checkout(tmp_path / "new", gpu_ids=False, visdom=False), "train") == []
    with pytest.raises(ValueError, match="script 'eval': train or test"):
        compat.cpu_flags(old, "eval")


@pytest.mark.parametrize("version,train", [("2021", ["--gpu_ids", "-1", "--display_id", "0"]),
                                           ("2024", ["--gpu_ids", "-1", "--display_id", "0"]),
                                           ("2025", [])])
def test_cpu_flags_of_the_checked_versions(version, train):
    """The shared upstream checkouts beside the clone (read only), where present."""
    root = SHARED_UPSTREAM / version
    if not (root / "options").is_dir():
        pytest.skip(f"no upstream checkout at {root}")
    assert compat.cpu_flags(root, "train") == train
    assert compat.cpu_flags(root, "test") == train[:2]


def test_the_neighbourhood_stage_runs_on_upstreams_device():
    from mggc_plugin.upstream.compat import device_of

    assert device_of(argparse.Namespace(gpu_ids=[])) == "cpu"
    assert device_of(argparse.Namespace(gpu_ids=[1, 0])) == "cuda:1"
    assert device_of(argparse.Namespace(gpu_ids="-1")) == "cpu"
    assert device_of(argparse.Namespace(device=torch.device("cuda:0"), gpu_ids=[])) == "cuda:0"


def test_the_supernet_methods_refuse_several_processes(monkeypatch):
    from mggc_plugin import distributed
    from mggc_plugin.upstream import phases

    phases._one_process("--mggc_method agd")  # one process: nothing to refuse
    monkeypatch.setattr(distributed, "active", lambda: True)
    with pytest.raises(MGGCUserError, match="--mggc_method agd runs in one process: launch train.py with python"):
        phases._one_process("--mggc_method agd")
