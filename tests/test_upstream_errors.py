"""Mistakes a user can make with the MGGC models inside upstream's train.py/test.py end in one
clear error that names the bad value and the fix, before any work is done (MGGC_UPSTREAM_DIR)."""
from pathlib import Path

import pytest

pytestmark = pytest.mark.upstream



@pytest.fixture
def run(upstream_checkout, facades_subset, pix2pix_teacher, tmp_path):
    """Runs train.py/test.py with a pix2pix teacher ``teacher`` (unet_128, ngf 16, saved as
    upstream saves it) in a fresh checkpoints folder; returns (exit code, output, checkpoints)."""
    ckpt = tmp_path / "checkpoints"
    pix2pix_teacher(ckpt / "teacher")

    def go(script: str, *args: str):
        base = ["--dataroot", str(facades_subset / "aligned"), "--checkpoints_dir", str(ckpt),
                "--model", "mggc_pix2pix", "--netG", "unet_128", "--ndf", "8", "--direction", "BtoA",
                "--crop_size", "128", "--num_threads", "0"]
        proc = upstream_checkout.run(script, *base, *args, check=False, timeout=300)
        return proc.returncode, proc.stdout, ckpt

    return go


PRUNE = ["--name", "student", "--mggc_phase", "prune", "--mggc_target_macs", "0.1", "--mggc_encoder", "inception"]


def nothing_built(ckpt: Path) -> bool:
    run = ckpt / "student"
    return not (run / "mggc_cache").exists() and not (run / "neighbors.pt").exists()


def test_missing_teacher_epoch(run):
    code, out, ckpt = run("train", *PRUNE, "--ngf", "16", "--teacher_name", "teacher", "--teacher_epoch", "7")
    assert code != 0
    assert "7_net_G.pth does not exist (saved epochs: latest): pass --teacher_epoch" in out
    assert nothing_built(ckpt)


def test_missing_teacher_folder(run):
    code, out, _ = run("train", *PRUNE, "--ngf", "16", "--teacher_name", "nobody")
    assert code != 0 and "teacher folder" in out and "nobody does not exist" in out


def test_teacher_trained_with_other_architecture(run):
    code, out, ckpt = run("train", *PRUNE, "--ngf", "8", "--teacher_name", "teacher")
    assert code != 0
    assert "trained with other options than this run (--ngf 8)" in out and "Pass the teacher's options: --ngf 16" in out
    assert nothing_built(ckpt)


def test_never_writes_into_the_teachers_folder(run, tmp_path):
    teacher = tmp_path / "checkpoints" / "teacher"
    before = {p.name: p.read_bytes() for p in teacher.iterdir()}
    code, out, _ = run("train", *PRUNE[2:], "--name", "teacher", "--ngf", "16", "--teacher_name", "teacher")
    assert code != 0 and "is the teacher's folder: MGGC never writes there" in out
    code, out, _ = run("train", "--name", "teacher", "--mggc_phase", "finetune", "--ngf", "16")
    assert code != 0 and "holds another experiment's networks" in out
    assert {p.name: p.read_bytes() for p in teacher.iterdir()} == before, "upstream's train_opt.txt was rewritten"


def test_prune_needs_a_teacher_and_a_budget(run):
    code, out, _ = run("train", "--name", "student", "--mggc_phase", "prune", "--ngf", "16",
                       "--mggc_target_macs", "0.1", "--mggc_encoder", "inception")
    assert code != 0 and "pass --teacher_name" in out
    code, out, _ = run("train", "--name", "student", "--mggc_phase", "prune", "--ngf", "16",
                       "--teacher_name", "teacher", "--mggc_encoder", "inception", "--dataset_mode", "aligned")
    assert code != 0 and "--mggc_target_macs None: give the fraction" in out


def test_finetune_before_prune(run):
    code, out, _ = run("train", "--name", "student", "--mggc_phase", "finetune", "--ngf", "16")
    assert code != 0 and "mggc_run.json does not exist: run --mggc_phase prune with the same --name first" in out


def test_test_before_finetune(run):
    code, out, _ = run("test", "--name", "student", "--ngf", "16")
    assert code != 0 and "latest_slim_G.pt does not exist: finetune first" in out


def test_a_pix2pix_model_for_a_cycle_gan_teacher(run):
    code, out, ckpt = run("train", *PRUNE, "--ngf", "16", "--teacher_name", "teacher", "--model", "mggc_cycle_gan",
                          "--dataset_mode", "neighborhood", "--mggc_base_mode", "aligned")
    assert code != 0 and "was trained with --model pix2pix" in out and "use --model mggc_pix2pix" in out


def one_line_error(code: int, out: str) -> str:
    """A user error inside upstream: exit status 2, no traceback, one ``error:`` line; returns it."""
    assert code == 2, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, out[-3000:]
    return errors[0]


@pytest.mark.parametrize("budget", ["0", "1.5", "-1", None, "1e-6"])
def test_budgets_are_refused_before_any_work(run, budget):
    """Before the neighbourhoods, the encoder and the embeddings are built: upstream's train.py
    builds the dataset first, and the dataset checks the whole run."""
    flags = [] if budget is None else ["--mggc_target_macs", budget]
    code, out, ckpt = run("train", "--name", "student", "--mggc_phase", "prune", "--mggc_encoder", "inception",
                          "--ngf", "16", "--teacher_name", "teacher", *flags)
    line = one_line_error(code, out)
    if budget == "1e-6":  # every channel group keeps one channel: the floor of unet_128 at ngf 16
        assert "--mggc_target_macs 1e-06 is below what G (unet_128, ngf 16) can be pruned to" in line
        assert "give --mggc_target_macs 0.0" in line
    else:
        assert f"--mggc_target_macs {budget}: give the fraction of the teacher's MACs to keep, in (0, 1]" in line
    assert nothing_built(ckpt)


def test_k_zero_and_a_damaged_teacher_are_refused_before_any_work(run, tmp_path):
    code, out, ckpt = run("train", *PRUNE, "--ngf", "16", "--teacher_name", "teacher", "--mggc_k", "0")
    assert "--mggc_k 0: need at least one neighbour" in one_line_error(code, out) and nothing_built(ckpt)
    G = tmp_path / "checkpoints" / "teacher" / "latest_net_G.pth"
    G.write_bytes(G.read_bytes()[:4096])
    code, out, ckpt = run("train", *PRUNE, "--ngf", "16", "--teacher_name", "teacher")
    line = one_line_error(code, out)
    assert f"{G} cannot be read as an upstream checkpoint (truncated, corrupt or another format" in line
    assert "copy the file again" in line
    assert nothing_built(ckpt)


def test_a_second_prune_does_not_leave_the_first_runs_slim_G_in_use(run, tmp_path):
    """prune at 0.3, finetune, prune the same --name at 0.1: refused (exit 2), naming --name and
    the fix; with --mggc_restart the old products move aside and test.py no longer finds a slim G."""
    base = ["--name", "student", "--ngf", "16", "--num_threads", "0", "--batch_size", "1", "--load_size", "128"]
    prune = [*base, "--mggc_phase", "prune", "--mggc_method", "l1_norm", "--teacher_name", "teacher"]
    code, out, _ = run("train", *prune, "--mggc_target_macs", "0.3")
    assert code == 0, out[-3000:]
    code, out, _ = run("train", *base, "--mggc_phase", "finetune", "--n_epochs", "1", "--n_epochs_decay", "0",
                       "--save_epoch_freq", "1", "--lr_policy", "step")
    assert code == 0, out[-3000:]
    student = tmp_path / "checkpoints" / "student"
    slim_G = (student / "latest_slim_G.pt").read_bytes()

    code, out, _ = run("train", *prune, "--mggc_target_macs", "0.1")
    line = one_line_error(code, out)
    assert "--name student holds the slim networks of an earlier finetune phase (1_slim_G.pt, latest_slim_G.pt" in line
    assert "give this run another --name, or pass --mggc_restart" in line
    assert (student / "latest_slim_G.pt").read_bytes() == slim_G
    assert '"target_macs": 0.3' in (student / "mggc_run.json").read_text(), "the record was not rewritten"

    code, out, _ = run("train", *prune, "--mggc_target_macs", "0.1", "--mggc_restart")
    assert code == 0 and "--mggc_restart: moved" in out, out[-3000:]
    aside = next(student.glob("superseded_*"))
    assert (aside / "latest_slim_G.pt").read_bytes() == slim_G and (aside / "mggc_report.json").is_file()
    assert not (student / "latest_slim_G.pt").exists() and not (student / "mggc_report.json").exists()
    assert '"target_macs": 0.1' in (student / "mggc_run.json").read_text()
    code, out, _ = run("test", "--name", "student", "--ngf", "16")
    assert "latest_slim_G.pt does not exist: finetune first" in one_line_error(code, out)
