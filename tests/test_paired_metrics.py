"""Paired per-image L1 and PSNR: hand-computed values, matching folders by name, A|B halves, and
clear errors for sets that do not pair up."""
import numpy as np
import pytest
import torch
from PIL import Image

from mggc_plugin.cli import main
from mggc_plugin.metrics import paired


def _save(path, array01):
    Image.fromarray(np.round(np.asarray(array01) * 255).astype(np.uint8)).save(path)


def test_constant_offset_gives_known_l1_and_psnr():
    a = torch.zeros(2, 3, 4, 5)
    b = torch.full((2, 3, 4, 5), 0.1)
    b[1] = 0.0
    scores = paired(a, b)
    assert scores.names == ("0", "1")
    np.testing.assert_allclose(scores.l1, [0.1, 0.0], atol=1e-7)
    assert scores.psnr[0] == pytest.approx(20.0, abs=1e-5)  # 10·log10(1 / 0.1²)
    assert scores.psnr[1] == np.inf


def test_random_images_match_the_formula_per_image():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(3, 3, 8, 8, generator=g), torch.rand(3, 3, 8, 8, generator=g)
    scores = paired(a, b)
    diff = (a - b).double().numpy()
    np.testing.assert_allclose(scores.l1, np.abs(diff).mean(axis=(1, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(scores.psnr, -10 * np.log10((diff ** 2).mean(axis=(1, 2, 3))), rtol=1e-12)
    # Per image: swapping the images of one side changes the scores.
    assert not np.allclose(paired(a, b[[1, 0, 2]]).l1, scores.l1)


def test_folders_are_matched_by_name_whatever_the_extension(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    black, grey = np.zeros((4, 4, 3)), np.full((4, 4, 3), 0.2)
    _save(tmp_path / "a" / "1.png", black)
    _save(tmp_path / "a" / "2.png", grey)
    _save(tmp_path / "b" / "1.bmp", black)
    _save(tmp_path / "b" / "2.bmp", black)
    scores = paired(tmp_path / "a", tmp_path / "b")
    assert scores.names == ("1", "2")
    np.testing.assert_allclose(scores.l1, [0.0, 51 / 255], atol=1e-7)


def test_half_of_an_aligned_pair_against_a_tensor(tmp_path):
    pair = np.zeros((4, 8, 3))
    pair[:, 4:] = 0.6
    _save(tmp_path / "1.png", pair)
    target = torch.full((1, 3, 4, 4), 0.6)
    assert paired([tmp_path / "1.png"], target, half_a="right").l1[0] == pytest.approx(0, abs=2e-3)
    assert paired([tmp_path / "1.png"], target, half_a="left").l1[0] == pytest.approx(0.6, abs=2e-3)


def test_sets_that_do_not_pair_up_are_clear_errors(tmp_path):
    for name in ("a", "b", "empty"):
        (tmp_path / name).mkdir()
    _save(tmp_path / "a" / "1.png", np.zeros((4, 4, 3)))
    _save(tmp_path / "a" / "2.png", np.zeros((4, 4, 3)))
    _save(tmp_path / "b" / "1.png", np.zeros((4, 6, 3)))
    _save(tmp_path / "b" / "3.png", np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match=r"only in the first \['2'\], only in the second \['3'\]"):
        paired(tmp_path / "a", tmp_path / "b")
    with pytest.raises(ValueError, match="no images in .*empty"):
        paired(tmp_path / "empty", tmp_path / "a")
    with pytest.raises(ValueError, match="3 images against 2"):
        paired(torch.zeros(3, 3, 4, 4), torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"pair 1: image sizes \(3, 4, 4\) and \(3, 4, 6\) differ"):
        paired([tmp_path / "a" / "1.png"], [tmp_path / "b" / "1.png"])
    with pytest.raises(ValueError, match=r"\(x \+ 1\) / 2"):
        paired(torch.full((1, 3, 4, 4), -1.0), torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match="half_b='left' applies to image files only"):
        paired(tmp_path / "a", torch.zeros(2, 3, 4, 4), half_b="left")
    _save(tmp_path / "a" / "2.jpg", np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match="holds both 2.jpg and 2.png"):
        paired(tmp_path / "a", tmp_path / "a")


def test_cli_prints_mean_l1_and_psnr(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _save(tmp_path / "a" / "1.png", np.zeros((4, 4, 3)))
    _save(tmp_path / "b" / "1.png", np.full((4, 4, 3), 0.2))
    _save(tmp_path / "a" / "2.png", np.zeros((4, 4, 3)))
    _save(tmp_path / "b" / "2.png", np.zeros((4, 4, 3)))
    assert main(["eval", "paired", "--a", str(tmp_path / "a"), "--b", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    # Pair 1: L1 0.2 (51/255), PSNR 20·log10(255/51); pair 2 is identical.
    assert out == (f"2 pairs: L1 {51 / 255 / 2:.5f} (pixels in [0, 1]), PSNR "
                   f"{20 * np.log10(255 / 51):.3f} dB (1 identical pair(s) left out of the PSNR mean)\n")
