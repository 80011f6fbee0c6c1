"""The built-in demo: its first stages quickly, the whole chain (slow) at a reduced size."""
from dataclasses import replace

import pytest
import torch

from mggc_plugin import count_macs, load_slim, networks, synthetic
from mggc_plugin.demo import QUICK, _load_pairs, _teacher, _write_dataset, run_demo
from mggc_plugin.neighborhoods import Preprocess


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
