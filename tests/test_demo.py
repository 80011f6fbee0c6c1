"""The built-in demo: its first stages and the quick run in the fast suite, the whole chain
(slow) at a reduced size, and the report as a browser renders it (slow)."""
import re
import shutil
import subprocess
import time
from dataclasses import replace

import dominate
import numpy as np
import pytest
import torch
from PIL import Image

from mggc_plugin import count_macs, load_slim, networks, synthetic
from mggc_plugin.demo import QUICK, Evaluation, _load_pairs, _teacher, _write_dataset, run_demo
from mggc_plugin.metrics import Difference, LatencyComparison
from mggc_plugin.neighborhoods import Preprocess
from mggc_plugin.report import difference_sentence, latency_section

#: The fast suite's budget for the quick demo (it takes ~20 s on 2 busy cores).
QUICK_BUDGET_S = 60


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("quick_demo")
    start = time.perf_counter()
    index = run_demo(out, QUICK)
    return out, index, time.perf_counter() - start


def test_synthetic_pairs_are_structured_and_deterministic():
    a, b = synthetic.make_pairs(6, 32, seed=3), synthetic.make_pairs(6, 32, seed=3)
    assert torch.equal(a.A, b.A) and torch.equal(a.B, b.B)
    assert a.A.shape == a.B.shape == (6, 3, 32, 32) and a.A.min() >= -1 and a.B.max() <= 1
    assert bool((a.classes.sum(1) >= 1).all())
    objects = a.A.gt(-1).any(1)                      # pixels the label map paints
    assert 0.02 < objects.float().mean() < 0.8
    assert not torch.equal(synthetic.make_pairs(6, 32, seed=4).A, a.A)


def test_first_stages_write_an_upstream_dataset_and_a_teacher(tmp_path):
    cfg = replace(QUICK, n_train=8, n_test=2, size=32)
    (dataset, labels), summary = _write_dataset(tmp_path / "data", cfg)
    assert len(dataset.sources()) == 8 and "8 train / 2 test" in summary
    train, _ = synthetic.split(8, 2, 32, cfg.seed)
    assert torch.equal(labels, synthetic.dominant_class(train.classes))
    (_, labels_again), again = _write_dataset(tmp_path / "data", cfg)
    assert again.startswith("reused") and torch.equal(labels_again, labels)
    x, y = _load_pairs(dataset, Preprocess(cfg.size))
    assert x.shape == y.shape == (8, 3, 32, 32)
    (G, D), summary = _teacher(tmp_path, cfg, x, y)
    assert (tmp_path / "teacher" / "latest_net_G.pth").is_file() and "trained 1 epochs" in summary
    assert "netG: resnet_6blocks" in (tmp_path / "teacher" / "train_opt.txt").read_text()
    _, summary = _teacher(tmp_path, cfg, x, y)
    assert summary.startswith("reused")


@pytest.mark.slow
def test_whole_demo_at_reduced_size(tmp_path):
    cfg = replace(QUICK, n_train=40, n_test=8, prune_steps=60, target_macs=0.3, teacher_epochs=2)
    index = run_demo(tmp_path, cfg)
    html = index.read_text()
    for name in ("translations.png", "neighbourhoods.png", "dynamics.png"):
        assert (tmp_path / "report" / name).is_file() and name in html
    assert (tmp_path / "neighbors" / "index.html").is_file()
    assert "inception embeddings" in html and "Precision@5 on the dataset's known classes" in html
    shape = (1, 3, cfg.size, cfg.size)
    teacher_macs = count_macs(networks.define_G(3, 3, cfg.ngf, cfg.netG, cfg.norm), shape).total
    assert count_macs(load_slim(tmp_path / "slim_G.pt"), shape).total <= cfg.target_macs * teacher_macs


def _table_rows(html: str, heading_id: str) -> list:
    """The first column of every row of the first table after the heading ``heading_id``."""
    section = html[html.index(f'id="{heading_id}"'):]
    table = section[:section.index("</table>")]
    return re.findall(r"<tr>\s*<td>([^<]+)</td>", table)


def test_quick_demo_reports_both_methods_within_the_fast_budget(quick_demo):
    out, index, seconds = quick_demo
    assert seconds < QUICK_BUDGET_S
    html = index.read_text()
    assert _table_rows(html, "results") == ["teacher", "MGGC", "L1-norm"]
    assert _table_rows(html, "speed") == ["teacher", "MGGC", "L1-norm"]
    assert "L1-norm student" in html and "MGGC student" in html          # the translations' columns
    assert "paired bootstrap interval" in html and "256×256" in html and "fully convolutional" in html
    assert 'href="neighbors/index.html"' in html and "<figcaption>" in html
    for stage in ("prune", "MGGC student", "L1-norm student", "latency", "total"):
        assert f"<td>{stage}</td>" in html or f"<b>{stage}</b>" in html
    shape = (1, 3, QUICK.size, QUICK.size)
    teacher_macs = count_macs(networks.define_G(3, 3, QUICK.ngf, QUICK.netG, QUICK.norm), shape).total
    for name in ("slim_G.pt", "l1_norm_G.pt"):         # both students filled to the same budget
        macs = count_macs(load_slim(out / name), shape).total
        assert 0.9 * QUICK.target_macs * teacher_macs <= macs <= QUICK.target_macs * teacher_macs


def _comparison(student_s: float) -> LatencyComparison:
    times = {"teacher": [0.010, 0.011, 0.012], "MGGC": [student_s] * 3, "L1-norm": [0.004] * 3}
    ratios = {n: [a / b for a, b in zip(times["teacher"], t)] for n, t in times.items()}
    return LatencyComparison(
        input_shape=(1, 3, 256, 256), threads=1, rounds=3, warmup=1, device="cpu", reference="teacher",
        runtime="PyTorch eager", times_s=times, median_s={n: float(np.median(t)) for n, t in times.items()},
        iqr_s={n: (min(t), max(t)) for n, t in times.items()},
        speedup={n: float(np.median(r)) for n, r in ratios.items()},
        speedup_iqr={n: (min(r), max(r)) for n, r in ratios.items()})


def test_speed_section_explains_a_student_that_is_not_faster_instead_of_a_ratio():
    rows = {n: {"macs": m} for n, m in (("teacher", 100.0), ("MGGC", 15.0), ("L1-norm", 15.0))}
    ev = Evaluation(rows, {}, {})
    doc = dominate.document()
    with doc:
        latency_section(QUICK, ev, [_comparison(0.0115)])
    html = doc.render()
    assert "not faster (see note)" in html and "not measurably faster" in html and "per-layer" in html
    assert "2.75×" in html                                              # L1-norm: 0.011 / 0.004
    assert "0.96×</td>" not in html
    doc = dominate.document()
    with doc:
        latency_section(QUICK, ev, [_comparison(0.005)])
    assert "not faster" not in doc.render() and "2.20×" in doc.render()


def test_difference_sentence_says_whether_the_interval_excludes_zero():
    better = Difference(-0.01, (-0.02, -0.005), 0.95, 50, "paired bootstrap")
    assert "excludes 0: MGGC is better" in difference_sentence("L1", "", better, lower_is_better=True)
    assert "excludes 0: MGGC is worse" in difference_sentence("PSNR", " dB", better, lower_is_better=False)
    unclear = Difference(0.1, (-0.2, 0.4), 0.95, 50, "paired bootstrap")
    text = difference_sentence("PSNR", " dB", unclear, lower_is_better=False, digits=2)
    assert "includes 0" in text and "[-0.20, +0.40] dB" in text and "better" not in text


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_report_renders_in_a_headless_browser(quick_demo, tmp_path):
    """The report as chromium draws it: a full-width page with the tables and figures, not a
    blank or broken one (look at the screenshot itself when changing the report)."""
    _, index, _ = quick_demo
    shot = tmp_path / "report.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={shot}", "--window-size=1200,2000", index.resolve().as_uri()],
                   check=True, capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (2000, 1200)
    inked_rows = (pixels < 200).any(axis=1)
    assert inked_rows.mean() > 0.5                     # text, tables and images fill the page
    assert (pixels[:, 600:] < 200).any()               # the tables span the width
