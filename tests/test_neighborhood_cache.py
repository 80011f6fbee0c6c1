"""D'_y on disk: the teacher-output cache is reused, rebuilt when stale, resumed when interrupted."""
import numpy as np
import pytest
import torch
from PIL import Image

from mggc_plugin import neighborhoods as nbh
from mggc_plugin import networks

SIZE = 32


def make_aligned_dataset(root, n, seed=0):
    """``n`` random 2·SIZE×SIZE A|B images in ``root/train`` (upstream's aligned layout)."""
    rng = np.random.default_rng(seed)
    (root / "train").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (SIZE, 2 * SIZE, 3), dtype=np.uint8)).save(root / "train" / f"{i}.png")
    return root


def make_teacher(path, seed=0, norm="batch"):
    """A tiny resnet_6blocks generator checkpoint, saved as upstream saves state dicts."""
    torch.manual_seed(seed)
    net = networks.define_G(3, 3, 4, "resnet_6blocks", norm)
    if norm == "batch":
        # Non-trivial running statistics, so eval mode and per-image statistics differ.
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture
def setup(tmp_path):
    data = make_aligned_dataset(tmp_path / "data", 10)
    teacher = nbh.TeacherSpec(make_teacher(tmp_path / "latest_net_G.pth"), "resnet_6blocks", ngf=4)
    return data, teacher, nbh.DatasetSpec(data, "aligned", "BtoA"), nbh.Preprocess(SIZE)


def build(cache, dataset, teacher, preprocess, **kw):
    return nbh.build_teacher_outputs(cache, dataset, teacher, preprocess, batch_size=4, progress=False, **kw)


def pixels(outputs):
    return np.stack([np.asarray(outputs.image(i)) for i in range(len(outputs))])


def test_outputs_are_the_teacher_applied_to_the_deterministic_sources(setup, tmp_path):
    data, teacher, dataset, pre = setup
    out, report = build(tmp_path / "cache", dataset, teacher, pre)
    assert not report.reused and report.computed == 10 and len(out) == 10
    # upstream's order: sorted paths (0, 1, 10?, 2, ...) — here 0..9 sort as strings
    assert out.sources == [f"train/{i}.png" for i in sorted(range(10), key=str)]
    net = teacher.load()
    # BtoA: the source is the right half
    ab = Image.open(data / out.sources[3]).convert("RGB")
    x = pre.tensor(ab.crop((SIZE, 0, 2 * SIZE, SIZE)), 3)
    with torch.no_grad():
        expected = np.asarray(nbh.tensor_to_pil(net(x[None])[0]))
    assert np.abs(np.asarray(out.image(3)).astype(int) - expected.astype(int)).max() <= 1


def test_cache_is_reused_when_nothing_changed(setup, tmp_path):
    _, teacher, dataset, pre = setup
    first, _ = build(tmp_path / "cache", dataset, teacher, pre)
    mtimes = [first.path(i).stat().st_mtime_ns for i in range(len(first))]
    second, report = build(tmp_path / "cache", dataset, teacher, pre)
    assert report.reused and report.computed == 0 and report.reason is None
    assert [second.path(i).stat().st_mtime_ns for i in range(len(second))] == mtimes
    assert second.fingerprint == first.fingerprint


def test_cache_is_rebuilt_when_the_teacher_changes(setup, tmp_path):
    _, teacher, dataset, pre = setup
    before = pixels(build(tmp_path / "cache", dataset, teacher, pre)[0])
    make_teacher(teacher.checkpoint, seed=1)  # same path, new weights
    after, report = build(tmp_path / "cache", dataset, teacher, pre)
    assert not report.reused and report.computed == 10
    assert "teacher checkpoint" in report.reason
    assert not np.array_equal(before, pixels(after))


def test_cache_is_rebuilt_when_the_file_list_changes(setup, tmp_path):
    data, teacher, dataset, pre = setup
    build(tmp_path / "cache", dataset, teacher, pre)
    make_aligned_dataset(data, 11, seed=1)  # rewrites 0..9 and adds 10.png
    out, report = build(tmp_path / "cache", dataset, teacher, pre)
    assert not report.reused and report.computed == 11 and len(out) == 11
    assert report.reason == "the list of source files changed"
    (data / "train" / "10.png").unlink()
    out, report = build(tmp_path / "cache", dataset, teacher, pre)
    assert report.computed == 10 and len(out) == 10
    assert not out.path(10).exists()  # no stale output left behind


def test_max_size_keeps_the_first_images_and_is_part_of_the_fingerprint(setup, tmp_path):
    data, teacher, dataset, pre = setup
    small = nbh.DatasetSpec(data, "aligned", "BtoA", max_size=4)
    assert small.sources() == dataset.sources()[:4] and small.targets() == dataset.targets()[:4]
    build(tmp_path / "cache", dataset, teacher, pre)
    out, report = build(tmp_path / "cache", small, teacher, pre)
    assert not report.reused and len(out) == 4
    with pytest.raises(ValueError, match="max_size=0"):
        nbh.DatasetSpec(data, max_size=0)


def test_cache_is_rebuilt_when_preprocessing_changes(setup, tmp_path):
    _, teacher, dataset, pre = setup
    build(tmp_path / "cache", dataset, teacher, pre)
    out, report = build(tmp_path / "cache", dataset, teacher, nbh.Preprocess(2 * SIZE))
    assert report.reason == "the preprocessing options changed"
    assert out.image(0).size == (2 * SIZE, 2 * SIZE)


def test_interrupted_build_resumes_and_matches_an_uninterrupted_one(setup, tmp_path, monkeypatch):
    _, teacher, dataset, pre = setup
    reference = pixels(build(tmp_path / "reference", dataset, teacher, pre)[0])

    real_load = nbh.TeacherSpec.load

    def interrupted_load(self):
        net, calls = real_load(self), []

        def forward(x):
            calls.append(1)
            if len(calls) == 2:
                raise KeyboardInterrupt  # the user pressed Ctrl-C during the second batch
            return type(net).forward(net, x)

        net.forward = forward
        return net

    monkeypatch.setattr(nbh.TeacherSpec, "load", interrupted_load)
    with pytest.raises(KeyboardInterrupt):
        build(tmp_path / "cache", dataset, teacher, pre)
    with pytest.raises(FileNotFoundError, match="no complete set"):
        nbh.TeacherOutputs(tmp_path / "cache")
    monkeypatch.setattr(nbh.TeacherSpec, "load", real_load)
    out, report = build(tmp_path / "cache", dataset, teacher, pre)
    assert report.resumed_from == 4 and report.computed == 6 and not report.reused
    assert np.abs(pixels(out).astype(int) - reference.astype(int)).max() <= 1


def test_teacher_modes(setup, tmp_path):
    data, teacher, dataset, pre = setup
    x = torch.stack([pre.tensor(r.load(), 3) for r in dataset.sources()[:3]])
    g = teacher.load()
    assert not g.training
    running = {k: v.clone() for k, v in g.state_dict().items()}
    per_image = nbh.TeacherSpec(teacher.checkpoint, "resnet_6blocks", ngf=4, norm_stats="per_image").load()
    with torch.no_grad():
        y_eval = g(x)
        y_img = torch.cat([per_image(x[i:i + 1]) for i in range(3)])
        # the same as upstream test.py's train-mode BatchNorm on a batch of one, minus dropout
        ref = networks.load_state(networks.define_G(3, 3, 4, "resnet_6blocks", "batch"), teacher.checkpoint).train()
        y_ref = torch.cat([ref(x[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(y_img, y_ref)
    assert not torch.allclose(y_eval, y_img, atol=1e-3)
    for k, v in per_image.state_dict().items():  # running statistics are left untouched
        torch.testing.assert_close(v, running[k])


def test_outputs_without_a_manifest_are_not_trusted(setup, tmp_path):
    _, teacher, dataset, pre = setup
    out, _ = build(tmp_path / "cache", dataset, teacher, pre)
    (tmp_path / "cache" / "manifest.json").unlink()
    Image.new("RGB", (SIZE, SIZE)).save(out.path(0))  # a foreign file under an output name
    (tmp_path / "cache" / "notes.txt").write_text("mine")
    out, report = build(tmp_path / "cache", dataset, teacher, pre)
    assert report.computed == 10 and report.resumed_from == 0
    assert np.asarray(out.image(0)).std() > 0
    assert (tmp_path / "cache" / "notes.txt").read_text() == "mine"  # only our files are removed
