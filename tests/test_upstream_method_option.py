"""--mggc_method (no upstream needed): the game's prune phase trains on neighbourhoods, a
baseline's refuses them; run records written before the option existed read as the game's."""
import argparse
import json

import pytest

from mggc_plugin.upstream import options
from mggc_plugin.upstream.record import FILE_NAME, FORMAT, VERSION, RunRecord


def prune_options(**changes) -> argparse.Namespace:
    values = dict(isTrain=True, netG="unet_128", norm="batch", netD="basic", gan_mode="hinge", mggc_phase="prune",
                  teacher_name="teacher", mggc_target_macs=0.25, mggc_target_latency_ms=None,
                  dataset_mode="neighborhood", mggc_method="mggc", mggc_round_to=1, lambda_L1=100.0, mggc_lambda_kd=1.0,
                  mggc_widths="game", mggc_width_floor=0.75,
                  checkpoints_dir="checkpoints")
    return argparse.Namespace(**{**values, **changes})


def test_the_game_needs_neighbourhoods_and_a_baseline_refuses_them():
    options.check_train_options(prune_options())
    options.check_train_options(prune_options(mggc_method="l1_norm", dataset_mode="aligned"))
    with pytest.raises(ValueError, match="use --dataset_mode neighborhood"):
        options.check_train_options(prune_options(dataset_mode="aligned"))
    with pytest.raises(ValueError, match="--mggc_method uniform needs no neighbourhoods"):
        options.check_train_options(prune_options(mggc_method="uniform"))
    assert options.plays_game(prune_options()) and not options.plays_game(prune_options(mggc_method="l1_norm"))
    assert not options.plays_game(prune_options(mggc_phase="finetune"))


def test_a_record_without_a_method_is_the_games(tmp_path):
    payload = {"format": FORMAT, "version": VERSION, "model": "mggc_pix2pix", "teacher_name": "teacher",
               "teacher": {}, "arch_G": {}, "arch_D": {}, "pruner": {"target_macs": 0.25}, "norm_stats": "per_image"}
    (tmp_path / FILE_NAME).write_text(json.dumps(payload))
    assert RunRecord.read(tmp_path).method == "mggc"
    (tmp_path / FILE_NAME).write_text(json.dumps({**payload, "method": "l1_norm"}))
    assert RunRecord.read(tmp_path).method == "l1_norm"
