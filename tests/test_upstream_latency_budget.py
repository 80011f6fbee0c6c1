"""``--mggc_target_latency_ms`` and ``--mggc_widths fastest`` inside upstream (MGGC_UPSTREAM_DIR;
run against 2021, 2024 and 2025): a table measured by ``mggc latency-table``, a game budgeted by
it, a finetune phase that finalises by the run's copy of the table and lands within the latency
budget; a game budgeted in MACs whose finetune phase cuts it at the table's fastest widths."""
import json

import pytest
import torch
from test_upstream_pipeline import COMMON, CONSTANT_LR, PIX2PIX, SHORT

from mggc_plugin import baselines, networks
from mggc_plugin.channels import ChannelGroups
from mggc_plugin.cli import main as mggc
from mggc_plugin.latency_table import LatencyTable

pytestmark = [pytest.mark.upstream, pytest.mark.slow]


def _teacher_and_table(up, facades_subset, tmp_path):
    """A short upstream pix2pix teacher at 128², its G's latency table, groups and options."""
    ckpt, size = tmp_path / "checkpoints", 128
    dirs = ["--dataroot", str(facades_subset / "aligned"), "--checkpoints_dir", str(ckpt)]
    arch = PIX2PIX["arch"] + ["--crop_size", str(size), "--load_size", str(size + 8)]
    up.run("train", *dirs, "--name", "teacher", "--model", "pix2pix", *arch, *COMMON, *SHORT)
    table_file = tmp_path / "table.json"
    assert mggc(["latency-table", "--netG", "unet_128", "--ngf", "8", "--norm", "batch", "--size", str(size),
                 "--fractions", "0.5", "--runs", "1", "--warmup", "0", "--out", str(table_file)]) == 0
    G = networks.define_G(3, 3, 8, **PIX2PIX["teacher"])
    groups = ChannelGroups.discover(G, torch.zeros(1, 3, size, size))
    return ckpt, dirs, arch, table_file, LatencyTable.load(table_file), groups


def test_a_game_budgeted_by_latency_lands_within_it(upstream_checkout, facades_subset, tmp_path):
    up = upstream_checkout
    ckpt, dirs, arch, table_file, table, groups = _teacher_and_table(up, facades_subset, tmp_path)
    fixed, full = table.span(groups)
    target = fixed + 0.5 * (full - fixed)

    student = [*dirs, "--name", "student", "--model", "mggc_pix2pix", *arch, *COMMON]
    refused = up.run("train", *student, "--mggc_phase", "prune", "--teacher_name", "teacher", "--mggc_target_macs",
                     "0.1", "--mggc_target_latency_ms", f"{target}", "--mggc_latency_table", str(table_file),
                     check=False)
    assert refused.returncode != 0 and "give one budget" in refused.stdout
    out = up.run("train", *student, "--mggc_phase", "prune", "--teacher_name", "teacher", "--mggc_target_latency_ms",
                 f"{target}", "--mggc_latency_table", str(table_file), "--mggc_encoder", "inception", "--mggc_k", "3",
                 *SHORT).stdout
    assert f"target {target:g} ms on eager" in out
    run = ckpt / "student"
    assert LatencyTable.load(run / "mggc_latency_table.json") == table

    out = up.run("train", *student, "--mggc_phase", "finetune", *SHORT, *CONSTANT_LR).stdout
    assert "the latency table estimates the slim G at" in out
    report = json.loads((run / "mggc_report.json").read_text())
    assert report["target_latency_ms"] == pytest.approx(target) and report["latency_ms_G"] <= target + 1e-9
    widths = report["widths_G"]
    kept = [(torch.arange(n) < w["slim"]).float() for n, w in zip(groups.sizes, widths)]
    assert float(table(groups, kept)) == pytest.approx(report["latency_ms_G"])


def test_fastest_widths_cut_a_macs_budgeted_game_where_the_table_says_time_is_cheap(upstream_checkout,
                                                                                    facades_subset, tmp_path):
    up = upstream_checkout
    ckpt, dirs, arch, table_file, table, groups = _teacher_and_table(up, facades_subset, tmp_path)
    student = [*dirs, "--name", "student", "--model", "mggc_pix2pix", *arch, *COMMON]
    up.run("train", *student, "--mggc_phase", "prune", "--teacher_name", "teacher", "--mggc_target_macs", "0.25",
           "--mggc_encoder", "inception", "--mggc_k", "3", *SHORT)
    out = up.run("train", *student, "--mggc_phase", "finetune", "--mggc_widths", "fastest", "--mggc_latency_table",
                 str(table_file), "--mggc_width_floor", "0.5", *SHORT, *CONSTANT_LR).stdout
    assert "--mggc_widths fastest: the latency table estimates the slim G at" in out
    report = json.loads((ckpt / "student" / "mggc_report.json").read_text())
    widths = [w["slim"] for w in report["widths_G"]]
    assert widths == baselines.fastest_widths(groups, table, 0.25, report["round_to"], 0.5)
    assert report["widths_by"] == "fastest" and report["width_floor"] == 0.5
    kept = [(torch.arange(n) < w).float() for n, w in zip(groups.sizes, widths)]
    assert float(table(groups, kept)) == pytest.approx(report["fastest_latency_ms_G"])
