"""Label maps: the palette found by k-means, snapping colours to classes, and pixel accuracy and
mIoU on hand-made maps with known answers."""
import numpy as np
import pytest
import torch
from PIL import Image

from mggc_plugin import metrics
from mggc_plugin.cli import main
from mggc_plugin.metrics import label_palette, label_scores, snap_to_palette

PALETTE = np.array([[0.0, 0.0, 0.8], [0.0, 0.2, 1.0], [0.7, 0.0, 0.0], [1.0, 0.9, 0.0]])


def _blocks(seed, n=3, size=32, noise=0.02):
    """``n`` maps of 8×8-pixel blocks of random classes, with Gaussian colour noise and, along
    every block border, a blend of the two neighbouring colours (as JPEG leaves them)."""
    rng = np.random.default_rng(seed)
    classes = np.kron(rng.integers(0, len(PALETTE), (n, size // 8, size // 8)), np.ones((1, 8, 8), int))
    rgb = PALETTE[classes]
    rgb[:, :, 7::8] = (rgb[:, :, 7::8] + np.roll(rgb, -1, axis=2)[:, :, 7::8]) / 2
    rgb = np.clip(rgb + noise * rng.standard_normal(rgb.shape), 0, 1)
    return torch.from_numpy(rgb).permute(0, 3, 1, 2).float(), classes


def test_snapping_recovers_the_classes_of_a_noisy_map():
    images, classes = _blocks(0, noise=0.03)
    snapped = snap_to_palette(images, PALETTE)
    assert snapped.shape == classes.shape and snapped.dtype == np.int64
    inside = np.ones(classes.shape, bool)
    inside[:, :, 7::8] = False  # the blended borders belong to either side
    np.testing.assert_array_equal(snapped[inside], classes[inside])


def test_palette_by_k_means_finds_the_colours_and_ignores_the_border_blends():
    images, _ = _blocks(1)
    palette = label_palette(images, 4, seed=0)
    # Each true colour has one found colour near it (noise clipped at 0 and 1 shifts the means a
    # little); the blends along the borders, half of the pixels of some rows, pull none away.
    nearest = np.linalg.norm(palette[:, None] - PALETTE[None], axis=-1).argmin(axis=0)
    assert sorted(nearest) == [0, 1, 2, 3]
    np.testing.assert_allclose(palette[nearest], PALETTE, atol=0.02)
    assert np.all(np.diff(palette[:, 0]) >= 0)  # sorted by red first
    np.testing.assert_array_equal(label_palette(images, 4, seed=0), palette)


def test_pixel_accuracy_and_miou_by_hand():
    gt = np.array([[[0, 0], [1, 1]], [[2, 2], [2, 2]]])
    pred = np.array([[[0, 1], [1, 1]], [[2, 2], [2, 0]]])
    scores = label_scores(pred, gt, n_classes=4)
    np.testing.assert_allclose(scores.pixel_accuracy, [0.75, 0.75])
    # Image 0: class 0 IoU 1/2, class 1 IoU 2/3. Image 1: class 2 IoU 3/4, class 0 (only
    # predicted) IoU 0; class 1 and 3 are in neither and left out.
    np.testing.assert_allclose(scores.miou, [(1 / 2 + 2 / 3) / 2, (3 / 4 + 0) / 2])
    # Over the set: class 0 1/3, class 1 2/3, class 2 3/4, class 3 absent.
    np.testing.assert_allclose(scores.class_iou[:3], [1 / 3, 2 / 3, 3 / 4])
    assert np.isnan(scores.class_iou[3])
    assert scores.dataset_miou == pytest.approx((1 / 3 + 2 / 3 + 3 / 4) / 3)


def test_files_with_a_label_half_snap_like_the_tensor(tmp_path):
    images, classes = _blocks(2, n=2)
    for i, image in enumerate(images):
        pair = np.zeros((32, 64, 3), np.uint8)
        pair[:, 32:] = np.round(image.permute(1, 2, 0).numpy() * 255)
        Image.fromarray(pair).save(tmp_path / f"{i}.png")
    from_files = snap_to_palette(tmp_path, PALETTE, half="right")
    as_saved = torch.round(images * 255) / 255  # the 8-bit values in the files
    np.testing.assert_array_equal(from_files, snap_to_palette(as_saved, PALETTE))
    assert not np.array_equal(snap_to_palette(tmp_path, PALETTE, half="left"), from_files)


def test_bad_inputs_are_clear_errors(tmp_path):
    images, classes = _blocks(3)
    with pytest.raises(ValueError, match=r"palette of shape \(4,\): need \(K, 3\)"):
        snap_to_palette(images, PALETTE[:, 0])
    with pytest.raises(ValueError, match="divide 8-bit colours by 255"):
        snap_to_palette(images, PALETTE * 255)
    with pytest.raises(ValueError, match=r"pred \(3, 32, 32\) and gt \(2, 32, 32\)"):
        label_scores(classes, classes[:2], 4)
    with pytest.raises(ValueError, match=r"gt holds class indices in \[0, 3\]: need \[0, 3\)"):
        label_scores(classes % 3, classes, 3)
    exact, _ = _blocks(3, noise=0)
    with pytest.raises(ValueError, match="hold 4 distinct colours .*fewer than n_classes=5"):
        label_palette(exact, 5)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images in .*empty"):
        label_palette(tmp_path / "empty", 4)


def test_cli_prints_accuracy_and_miou(tmp_path, capsys):
    images, classes = _blocks(4, n=2)
    for name in ("real", "fake"):
        (tmp_path / name).mkdir()
    for i, image in enumerate(images):
        array = np.round(image.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        Image.fromarray(array).save(tmp_path / "real" / f"{i}.png")
        wrong = array.copy()
        wrong[:8, :8] = np.round(PALETTE[(classes[i, 0, 0] + 1) % 4] * 255)  # one block of another class
        Image.fromarray(wrong).save(tmp_path / "fake" / f"{i}.png")
    argv = ["eval", "labels", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"),
            "--n_classes", "4"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    accuracy = float(out.split("pixel accuracy ")[1].split(",")[0])
    assert out.startswith("2 label maps, 4 classes: pixel accuracy ")
    assert accuracy == pytest.approx(1 - 64 / 1024, abs=0.01) and "mIoU over the set" in out


def test_the_majority_floor_predicts_the_most_frequent_class_everywhere():
    gt = np.array([[[0, 1], [1, 1]], [[2, 1], [1, 0]]])
    floor = metrics.majority_scores(gt, 3)
    assert floor.pixel_accuracy.tolist() == [0.75, 0.5]
    # class 1 everywhere: IoU 3/4 and 2/4 for class 1, 0 for the classes it misses
    assert floor.miou.tolist() == pytest.approx([0.75 / 2, 0.5 / 3])


def test_matched_accuracy_forgives_swapped_colours_and_nothing_else():
    gt = np.array([[[0, 0], [1, 2]]])
    swapped = np.array([[[1, 1], [0, 2]]])  # classes 0 and 1 painted in each other's colour
    scores = metrics.label_scores(swapped, gt, 3)
    assert scores.pixel_accuracy[0] == 0.25
    assert scores.confusion.tolist() == [[0, 2, 0], [1, 0, 0], [0, 0, 1]]
    assert scores.matched_pixel_accuracy() == 1.0
    # a renaming cannot help a map that is one class everywhere beyond the share of that class
    assert metrics.label_scores(np.zeros_like(gt), gt, 3).matched_pixel_accuracy() == 0.5
