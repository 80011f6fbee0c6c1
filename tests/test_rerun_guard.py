"""A new prune phase under a ``--name`` that holds an earlier run's products is refused while the
options are parsed (they would go stale: test.py and mggc export would use the old slim G), unless
``--mggc_restart`` moves them aside, never deleting anything. No upstream needed."""
import argparse
import json

import pytest

from mggc_plugin.upstream import checks
from mggc_plugin.upstream.options import RUN_RECORD, check_earlier_run, earlier_products

PRUNED = ["latest_mggc_pruner.pt", "latest_net_gen_G.pth", "latest_net_gen_D.pth", "5_mggc_pruner.pt"]
FINETUNED = ["latest_net_G.pth", "latest_net_D.pth", "latest_slim_G.pt", "latest_slim_D.pt",
             "latest_mggc_finetune.pt", "mggc_report.json"]
KEPT = ["train_opt.txt", "loss_log.txt", "neighbors.pt", RUN_RECORD]


def run_folder(tmp_path, names):
    run = tmp_path / "student"
    run.mkdir()
    for name in names + KEPT:
        (run / name).write_text(name)
    return run


def opts(tmp_path, **changes) -> argparse.Namespace:
    values = dict(checkpoints_dir=str(tmp_path), name="student", mggc_phase="prune", continue_train=False,
                  mggc_restart=False)
    return argparse.Namespace(**{**values, **changes})


def test_a_new_prune_after_finetuning_is_refused_naming_the_name_and_the_fix(tmp_path):
    run_folder(tmp_path, PRUNED + FINETUNED)
    with pytest.raises(ValueError, match=r"--name student holds the slim networks of an earlier finetune phase "
                                         r"\(latest_slim_G.pt, latest_slim_D.pt, latest_net_G.pth, latest_net_D.pth "
                                         r"and 2 more\), which a new pruning game would leave stale.*give this run "
                                         r"another --name, or pass --mggc_restart"):
        check_earlier_run(opts(tmp_path))
    with pytest.raises(ValueError, match="which continuing the pruning game would leave stale"):
        check_earlier_run(opts(tmp_path, continue_train=True))
    with pytest.raises(ValueError, match="which a new pruning game would leave stale"):
        check_earlier_run(opts(tmp_path, mggc_phase="all"))
    check_earlier_run(opts(tmp_path, mggc_restart=True))
    check_earlier_run(opts(tmp_path, mggc_phase="finetune"))
    check_earlier_run(opts(tmp_path, mggc_phase="all", continue_train=True))


def test_a_new_game_may_overwrite_an_earlier_games_files(tmp_path):
    run_folder(tmp_path, PRUNED)
    check_earlier_run(opts(tmp_path))
    check_earlier_run(opts(tmp_path, continue_train=True))


def test_restart_moves_the_stale_products_aside_with_the_old_record(tmp_path):
    run = run_folder(tmp_path, PRUNED + FINETUNED)
    (run / RUN_RECORD).write_text(json.dumps({"pruner": {"target_macs": 0.3}}))
    assert sorted(p.name for p in earlier_products(run, continue_train=False)) == sorted(PRUNED + FINETUNED)
    moved = checks.move_aside(run, continue_train=False)
    folder = moved[0].parent
    assert folder.parent == run and folder.name.startswith("superseded_")
    assert sorted(p.name for p in folder.iterdir()) == sorted(PRUNED + FINETUNED + [RUN_RECORD])
    assert json.loads((folder / RUN_RECORD).read_text()) == {"pruner": {"target_macs": 0.3}}
    assert sorted(p.name for p in run.iterdir() if p.is_file()) == sorted(KEPT), "the rest stays"
    assert all((folder / name).read_text() == name for name in PRUNED + FINETUNED), "moved, not rewritten"
    assert checks.move_aside(run, continue_train=False) == []


def test_restart_with_continue_train_keeps_the_game(tmp_path):
    run = run_folder(tmp_path, PRUNED + FINETUNED)
    moved = checks.move_aside(run, continue_train=True)
    assert sorted(p.name for p in moved) == sorted(FINETUNED)
    assert all((run / name).is_file() for name in PRUNED)
    for name in FINETUNED:  # a second restart within the same second gets a folder of its own
        (run / name).write_text("second")
    again = checks.move_aside(run, continue_train=True)
    assert again[0].parent != moved[0].parent and all(p.read_text() == "second" for p in again)
