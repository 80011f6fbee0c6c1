"""``--mggc_phase all`` (the default) without upstream: how many epochs the game plays, and which
option combinations a one-command run refuses."""
import argparse

import pytest

from mggc_plugin.upstream import options
from mggc_plugin.upstream.checks import prune_epochs
from mggc_plugin.upstream.specs import SPECS

SPEC = SPECS["mggc_pix2pix"]


def teacher(tmp_path, **train_opt):
    folder = tmp_path / "teacher"
    folder.mkdir()
    for f in ("latest_net_G.pth", "latest_net_D.pth"):
        (folder / f).write_bytes(b"weights")
    lines = "".join(f"{k:>25}: {v}\n" for k, v in {"model": "pix2pix", **train_opt}.items())
    (folder / "train_opt.txt").write_text(f"----------------- Options ---------------\n{lines}"
                                          f"----------------- End -------------------\n")


def one_run(tmp_path, **changes) -> argparse.Namespace:
    values = dict(checkpoints_dir=str(tmp_path), name="student", teacher_name="teacher", teacher_epoch="latest",
                  mggc_prune_epochs=None, mggc_phase="all", continue_train=False, mggc_restart=False)
    return argparse.Namespace(**{**values, **changes})


@pytest.mark.parametrize("n_epochs,decay,expected", [(100, 100, 20), (40, 40, 8), (2, 1, 1), (0, 0, 1)])
def test_the_game_plays_ten_percent_of_the_teachers_epochs_at_least_one(tmp_path, n_epochs, decay, expected):
    teacher(tmp_path, n_epochs=n_epochs, n_epochs_decay=decay)
    epochs, why = prune_epochs(one_run(tmp_path), SPEC, tmp_path / "student")
    assert epochs == expected and why == f"10% of the teacher's {n_epochs + decay} epochs"
    given = prune_epochs(one_run(tmp_path, mggc_prune_epochs=3), SPEC, tmp_path / "student")
    assert given == (3, "--mggc_prune_epochs")


def test_a_teacher_without_its_epochs_needs_the_flag(tmp_path):
    teacher(tmp_path)
    with pytest.raises(ValueError, match="has no train_opt.txt with n_epochs and n_epochs_decay.*pass "
                                         "--mggc_prune_epochs"):
        prune_epochs(one_run(tmp_path), SPEC, tmp_path / "student")


def train_options(**changes) -> argparse.Namespace:
    values = dict(isTrain=True, netG="unet_128", ngf=64, crop_size=256, norm="batch", netD="basic", gan_mode="hinge",
                  mggc_phase="all", teacher_name="teacher", mggc_target_macs=0.25, mggc_target_latency_ms=None,
                  mggc_latency_table=None, dataset_mode="neighborhood", mggc_method="mggc", mggc_round_to=1,
                  mggc_widths="game", mggc_width_floor=0.75,
                  lambda_L1=100.0, mggc_lambda_kd=1.0, checkpoints_dir="checkpoints", mggc_prune_epochs=None)
    return argparse.Namespace(**{**values, **changes})


def test_one_run_plays_the_game_and_refuses_baselines_and_zero_epochs():
    options.check_train_options(train_options())
    assert options.plays_game(train_options())
    with pytest.raises(ValueError, match="--mggc_method l1_norm prunes at once.*run --mggc_phase prune, then "
                                         "--mggc_phase finetune"):
        options.check_train_options(train_options(mggc_method="l1_norm", dataset_mode="aligned"))
    with pytest.raises(ValueError, match="--mggc_prune_epochs 0: the game needs at least 1 epoch"):
        options.check_train_options(train_options(mggc_prune_epochs=0))
    with pytest.raises(ValueError, match="--mggc_phase all needs the teacher: pass --teacher_name"):
        options.check_train_options(train_options(teacher_name=None))


def test_a_new_one_run_over_an_earlier_run_is_refused_a_continued_one_is_not(tmp_path):
    run = tmp_path / "student"
    run.mkdir()
    (run / "latest_slim_G.pt").write_text("slim")
    with pytest.raises(ValueError, match="--name student holds the slim networks of an earlier finetune phase"):
        options.check_earlier_run(one_run(tmp_path))
    options.check_earlier_run(one_run(tmp_path, continue_train=True))


def test_the_game_and_finetuning_use_the_teachers_gan_loss_by_default(tmp_path):
    spec = SPEC
    opt = argparse.Namespace(checkpoints_dir=str(tmp_path), teacher_name="teacher")
    assert options.teacher_gan_mode(opt, spec) == "hinge"  # no train_opt.txt: the paper's choice
    (tmp_path / "teacher").mkdir()
    (tmp_path / "teacher" / "train_opt.txt").write_text(
        "----------------- Options ---------------\n"
        "                 gan_mode: vanilla                       \t[default: lsgan]\n"
        "----------------- End -------------------\n")
    assert options.teacher_gan_mode(opt, spec) == "vanilla"
    assert options.teacher_gan_mode(argparse.Namespace(checkpoints_dir=str(tmp_path), teacher_name=None), spec) \
        == "hinge"


def _parse_train_options(tmp_path, monkeypatch, *argv: str) -> argparse.Namespace:
    """The options ``--model mggc_pix2pix`` adds, on a parser holding upstream's base flags it reads."""
    parser = argparse.ArgumentParser()
    for flag, default in (("--checkpoints_dir", str(tmp_path)), ("--name", "student"), ("--gan_mode", "vanilla"),
                          ("--dataset_mode", "aligned"), ("--lr", 2e-4), ("--beta1", 0.5), ("--ngf", 64)):
        parser.add_argument(flag, default=default, type=type(default))
    parser.add_argument("--continue_train", action="store_true")
    argv = ("--mggc_target_macs", "0.1", *argv)
    monkeypatch.setattr("sys.argv", ["train.py", *argv])
    return options.add_model_options(parser, True, SPEC).parse_args(argv)


def test_the_plugin_plays_the_repaired_game_by_default_and_the_papers_on_request(tmp_path, monkeypatch):
    config = options.pruner_config(_parse_train_options(tmp_path, monkeypatch), SPEC)
    assert (config.lambda_rec, config.refill) == (10.0, True)
    paper = _parse_train_options(tmp_path, monkeypatch, "--mggc_lambda_rec", "0", "--mggc_no_refill")
    assert (options.pruner_config(paper, SPEC).lambda_rec, options.pruner_config(paper, SPEC).refill) == (0.0, False)
    assert config.gates == "paper"
    authors = _parse_train_options(tmp_path, monkeypatch, "--mggc_gates", "authors")
    assert options.pruner_config(authors, SPEC).gates == "authors"


@pytest.mark.parametrize("argv,round_to", [((), 8), (("--ngf", "32"), 8), (("--ngf", "16"), 1),
                                           (("--mggc_round_to", "4"), 4), (("--ngf", "8", "--mggc_round_to", "2"), 2)])
def test_widths_round_to_eight_by_default_on_generators_wide_enough(tmp_path, monkeypatch, argv, round_to):
    assert _parse_train_options(tmp_path, monkeypatch, *argv).mggc_round_to == round_to


def test_kd_taps_the_root_by_default_and_the_norm_on_request(tmp_path, monkeypatch):
    root = options.finetune_config(_parse_train_options(tmp_path, monkeypatch, "--mggc_kd"), SPEC)
    assert (root.kd_at, root.lambda_kd) == ("root", 1.0)
    norm = options.finetune_config(_parse_train_options(tmp_path, monkeypatch, "--mggc_kd", "--mggc_kd_at", "norm"),
                                   SPEC)
    assert norm.kd_at == "norm"
    with pytest.raises(SystemExit):
        _parse_train_options(tmp_path, monkeypatch, "--mggc_kd_at", "block")


def test_a_latency_budget_replaces_the_macs_budget_of_the_game(tmp_path, monkeypatch):
    table = tmp_path / "table.json"
    table.write_text("{}")
    latency = dict(mggc_target_macs=None, mggc_target_latency_ms=5.0, mggc_latency_table=str(table), ngf=8,
                   crop_size=128)
    options.check_train_options(train_options(**latency))
    with pytest.raises(ValueError, match="--mggc_target_macs 0.25 and --mggc_target_latency_ms 5: give one budget"):
        options.check_train_options(train_options(**{**latency, "mggc_target_macs": 0.25}))
    with pytest.raises(ValueError, match="--mggc_method l1_norm takes --mggc_target_macs"):
        options.check_train_options(train_options(**{**latency, "mggc_method": "l1_norm", "mggc_phase": "prune",
                                                     "dataset_mode": "aligned"}))
    with pytest.raises(ValueError, match="no such file; measure the teacher G's table on the target device with "
                                         "`mggc latency-table --netG unet_128 --ngf 8 --norm batch --size 128`"):
        options.check_train_options(train_options(**{**latency, "mggc_latency_table": str(tmp_path / "none.json")}))
    parsed = _parse_train_options(tmp_path, monkeypatch, "--mggc_target_latency_ms", "5",
                                  "--mggc_latency_table", str(table))
    parsed.mggc_target_macs = None  # _parse_train_options always passes a MACs budget
    config = options.pruner_config(parsed, SPEC)
    assert (config.target_latency_ms, config.target_macs) == (5.0, None)


def test_fastest_widths_need_the_games_macs_budget_a_floor_in_zero_to_one_and_a_table(tmp_path, monkeypatch):
    table = tmp_path / "table.json"
    table.write_text("{}")
    fastest = dict(mggc_widths="fastest", mggc_latency_table=str(table), ngf=8, crop_size=128)
    options.check_train_options(train_options(**fastest))
    with pytest.raises(ValueError, match="--mggc_widths fastest cuts the pruning game's channels; --mggc_method "
                                         "l1_norm chooses its own widths"):
        options.check_train_options(train_options(**fastest, mggc_method="l1_norm", mggc_phase="prune",
                                                  dataset_mode="aligned"))
    with pytest.raises(ValueError, match="with --mggc_target_latency_ms 5 the game already budgets the latency"):
        options.check_train_options(train_options(**fastest, mggc_target_macs=None, mggc_target_latency_ms=5.0))
    with pytest.raises(ValueError, match=r"--mggc_width_floor 1\.5: give the share"):
        options.check_train_options(train_options(**fastest, mggc_width_floor=1.5))
    with pytest.raises(ValueError, match="none.json: no such file"):
        options.check_train_options(train_options(**{**fastest, "mggc_latency_table": str(tmp_path / "none.json")}))
    parsed = _parse_train_options(tmp_path, monkeypatch, "--mggc_widths", "fastest")
    assert (parsed.mggc_widths, parsed.mggc_width_floor) == ("fastest", options.DEFAULT_WIDTH_FLOOR)
