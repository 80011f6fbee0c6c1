"""Reference features cached on disk: reused while the files are unchanged, rebuilt when one
changes, appears or disappears; FID and KID from the cached features."""
import os

import numpy as np
import pytest
from PIL import Image

from mggc_plugin.metrics import inception, load_image, reference_features


def _image(path, value, size=(8, 6)):
    Image.new("RGB", size, (value, value // 2, 255 - value)).save(path)


@pytest.fixture
def counted(monkeypatch):
    """Replaces the Inception network by a cheap stand-in (each row: the image's mean value, then
    its index in the call) and records the files of every call."""
    calls = []

    def fake_features(files, batch_size=50, device=None, progress=True, half=None, size=None):
        calls.append([os.path.basename(f) for f in files])
        rows = [np.full(inception.FID_FEATURE_DIM, float(load_image(f, half, size).mean())) for f in files]
        return np.stack(rows)

    monkeypatch.setattr(inception, "inception_features", fake_features)
    return calls


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "photos"
    d.mkdir()
    for i, value in enumerate((10, 80, 200)):
        _image(d / f"{i}.png", value)
    return d


def test_features_are_computed_once_and_reused(folder, tmp_path, counted):
    cache = tmp_path / "cache"
    first = reference_features(folder, cache)
    second = reference_features(folder, cache)
    assert counted == [["0.png", "1.png", "2.png"]]
    np.testing.assert_array_equal(first, second)
    assert first.shape == (3, 2048)
    # Written atomically: the cache folder holds the cache file alone, no temporary file.
    assert [p.suffix for p in cache.iterdir()] == [".npz"]


def test_a_changed_file_rebuilds_the_cache(folder, tmp_path, counted):
    cache = tmp_path / "cache"
    before = reference_features(folder, cache)
    stat = (folder / "1.png").stat()
    _image(folder / "1.png", 150)
    os.utime(folder / "1.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    after = reference_features(folder, cache)
    assert len(counted) == 2
    np.testing.assert_array_equal(after[[0, 2]], before[[0, 2]])
    assert after[1, 0] != before[1, 0]
    assert len(list(cache.iterdir())) == 1  # replaced, not a second cache beside it


def test_a_touched_file_rebuilds_the_cache(folder, tmp_path, counted):
    cache = tmp_path / "cache"
    reference_features(folder, cache)
    stat = (folder / "2.png").stat()
    os.utime(folder / "2.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    reference_features(folder, cache)
    assert len(counted) == 2


def test_files_appearing_or_disappearing_rebuild_the_cache(folder, tmp_path, counted):
    cache = tmp_path / "cache"
    reference_features(folder, cache)
    _image(folder / "3.png", 120)
    assert reference_features(folder, cache).shape == (4, 2048)
    (folder / "0.png").unlink()
    assert reference_features(folder, cache).shape == (3, 2048)
    assert [len(c) for c in counted] == [3, 4, 3]
    reference_features(folder, cache)
    assert len(counted) == 3


def test_a_list_of_files_across_folders_in_any_order(folder, tmp_path, counted):
    other = tmp_path / "more"
    other.mkdir()
    _image(other / "a.png", 240)
    cache = tmp_path / "cache"
    files = [folder / "2.png", other / "a.png", folder / "0.png"]
    first = reference_features(files, cache)
    again = reference_features(list(reversed(files)), cache)
    assert len(counted) == 1
    np.testing.assert_array_equal(again, first[::-1])
    # A folder is another reference set, with its own cache.
    reference_features(folder, cache)
    assert len(counted) == 2


def test_half_is_part_of_the_fingerprint(tmp_path, counted):
    d = tmp_path / "pairs"
    d.mkdir()
    pair = np.zeros((6, 16, 3), np.uint8)
    pair[:, 8:] = 200
    Image.fromarray(pair).save(d / "1.png")
    cache = tmp_path / "cache"
    left = reference_features(d, cache, half="left")
    right = reference_features(d, cache, half="right")
    assert len(counted) == 2 and left[0, 0] == 0 and right[0, 0] == pytest.approx(200 / 255)
    reference_features(d, cache, half="left")
    assert len(counted) == 2


def test_size_is_part_of_the_fingerprint_and_resizes_bicubic(tmp_path, counted):
    d = tmp_path / "pairs"
    d.mkdir()
    pair = np.zeros((8, 16, 3), np.uint8)
    pair[:, :8:2] = 255  # left half: vertical stripes, whose mean a bicubic resize keeps
    Image.fromarray(pair).save(d / "1.png")
    cache = tmp_path / "cache"
    full = reference_features(d, cache, half="left")
    small = reference_features(d, cache, half="left", size=4)
    assert len(counted) == 2
    assert load_image(d / "1.png", "left", size=4).shape == (3, 4, 4)
    assert small[0, 0] == pytest.approx(full[0, 0], abs=0.1) and small[0, 0] != full[0, 0]
    reference_features(d, cache, half="left", size=4)
    assert len(counted) == 2


def test_an_unreadable_cache_is_rebuilt(folder, tmp_path, counted):
    cache = tmp_path / "cache"
    reference_features(folder, cache)
    (cache_file,) = cache.iterdir()
    cache_file.write_bytes(b"truncated")
    assert reference_features(folder, cache).shape == (3, 2048)
    assert len(counted) == 2


def test_bad_inputs_are_clear_errors(tmp_path, counted):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images in .*empty"):
        reference_features(tmp_path / "empty", tmp_path / "cache")
    with pytest.raises(ValueError, match="list of image files is empty"):
        reference_features([], tmp_path / "cache")
    with pytest.raises(FileNotFoundError, match="nowhere.png does not exist"):
        reference_features([tmp_path / "nowhere.png"], tmp_path / "cache")
    _image(tmp_path / "x.png", 5)
    (tmp_path / "cache_file").write_text("")
    with pytest.raises(ValueError, match="cache_dir .*cache_file is a file"):
        reference_features([tmp_path / "x.png"], tmp_path / "cache_file")
    assert counted == []


def test_fid_of_precomputed_features_uses_their_statistics(monkeypatch):
    from mggc_plugin.metrics import fid, frechet

    rng = np.random.default_rng(0)
    real, fake = rng.standard_normal((5, 2048)), 1 + rng.standard_normal((4, 2048))
    seen = []
    monkeypatch.setattr(frechet, "frechet_distance", lambda *stats, eps: seen.append(stats) or 7.0)
    assert fid(real, fake) == 7.0
    mu1, sigma1, mu2, sigma2 = seen[0]
    np.testing.assert_allclose(mu1, real.mean(0))
    np.testing.assert_allclose(sigma2, np.cov(fake, rowvar=False))
    with pytest.raises(ValueError, match="the fake set holds 1 image: FID needs at least 2"):
        fid(real, fake[:1])


@pytest.mark.fid_wheel
def test_cached_inception_features_give_fid_and_kid(tmp_path):
    from mggc_plugin.metrics import inception_features, kid

    rng = np.random.default_rng(0)
    d = tmp_path / "ref"
    d.mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(d / f"{i}.png")
    cached = reference_features(d, tmp_path / "cache", device="cpu", progress=False)
    direct = inception_features(d, device="cpu", progress=False)
    np.testing.assert_array_equal(reference_features(d, tmp_path / "cache", progress=False), cached)
    np.testing.assert_allclose(cached, direct, rtol=1e-6, atol=1e-8)
    assert kid(cached, direct, subsets=2).mean == pytest.approx(kid(d, d, subsets=2, device="cpu",
                                                                    progress=False).mean, abs=1e-6)
