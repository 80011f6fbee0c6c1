"""fp16/int8 ONNX: measured against the fp32 slim model on held-out images, refused past --max_l1."""
import numpy as np
import pytest
import torch
from PIL import Image

from mggc_plugin import ChannelGroups, networks, save_slim, slim
from mggc_plugin.cli import main
from mggc_plugin.deploy import export
from mggc_plugin.errors import MGGCUserError

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxslim")


def smooth_images(folder, count, size=48, seed=0):
    """Smooth colour images (bicubic up-sampled noise), closer to photos than pixel noise."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        small = Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
        small.resize((size, size), Image.Resampling.BICUBIC).save(folder / f"{i:02d}.png")
    return folder


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    G = networks.define_G(3, 3, 8, "resnet_6blocks", norm="instance")
    groups = ChannelGroups.discover(G, torch.zeros(1, 3, 32, 32))
    path = tmp_path_factory.mktemp("int8") / "g.slim.pt"
    save_slim(slim(G, groups, [torch.arange(n) % 2 == 0 for n in groups.sizes]), path)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return smooth_images(tmp_path_factory.mktemp("images"), 12)


def test_int8_guard_refuses_below_the_measured_error(checkpoint, images, tmp_path, capsys):
    accepted = export(checkpoint, "onnx", out=tmp_path / "ok.onnx", precision="int8", calibration=images, max_l1=1.0)
    measured = accepted.quality.mean_l1
    assert 0 < measured < 0.1 and accepted.quality.count == 3, "12 images: 9 calibrate, 3 are held out"
    assert main(["export", str(checkpoint), "--format", "onnx", "--precision", "int8", "--calibration", str(images),
                 "--max_l1", str(measured / 2), "--out", str(tmp_path / "refused.onnx")]) == 2
    err = capsys.readouterr().err
    assert f"mean L1 {measured:.4f}" in err and "above --max_l1" in err and "nothing was written" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.onnx"]
    assert main(["export", str(checkpoint), "--format", "onnx", "--precision", "int8", "--calibration", str(images),
                 "--max_l1", str(measured * 2), "--out", str(tmp_path / "int8.onnx")]) == 0
    assert f"int8 against the fp32 slim model: mean L1 {measured:.4f}" in capsys.readouterr().out


def test_int8_calibrates_on_the_runs_training_sources(checkpoint, tmp_path):
    run_dir = tmp_path / "checkpoints" / "run"
    run_dir.mkdir(parents=True)
    (run_dir / "latest_slim_G.pt").write_bytes(checkpoint.read_bytes())
    dataroot = tmp_path / "data"
    smooth_images(dataroot / "trainA", 8)
    smooth_images(dataroot / "trainB", 8, seed=1)
    (run_dir / "train_opt.txt").write_text(f"                 dataroot: {dataroot}\n"
                                           f"                direction: BtoA                          \n")
    result = export(run_dir / "latest_slim_G.pt", "onnx", precision="int8", max_l1=1.0)
    assert result.path == run_dir / "latest_slim_G.int8.onnx" and "run's training sources" in result.source
    assert result.quality.count == 2


def test_int8_without_images_names_the_option(checkpoint, tmp_path):
    with pytest.raises(MGGCUserError, match="--calibration DIR"):
        export(checkpoint, "onnx", out=tmp_path / "g.onnx", precision="int8")
    assert list(tmp_path.iterdir()) == []


def test_fp16_stays_close_to_fp32(checkpoint, images, tmp_path):
    result = export(checkpoint, "onnx", out=tmp_path / "g.onnx", precision="fp16", calibration=images)
    assert result.quality.mean_l1 < 2e-3 and result.quality.psnr > 50


def test_int8_unet_is_exported_without_conv_transpose_and_checked(images, tmp_path):
    onnx = pytest.importorskip("onnx")
    torch.manual_seed(0)
    G = networks.define_G(3, 3, 8, "unet_128", norm="batch")
    groups = ChannelGroups.discover(G, torch.zeros(1, 3, 128, 128))
    path = tmp_path / "unet.slim.pt"
    save_slim(slim(G, groups, [torch.arange(n) % 2 == 0 for n in groups.sizes]), path)
    fp32 = export(path, "onnx", out=tmp_path / "fp32.onnx")
    int8 = export(path, "onnx", out=tmp_path / "int8.onnx", precision="int8", calibration=images, max_l1=1.0)
    ops = lambda p: {node.op_type for node in onnx.load(str(p)).graph.node}  # noqa: E731
    assert "ConvTranspose" in ops(fp32.path) and "ConvTranspose" not in ops(int8.path)
    assert "7 ConvTranspose2d as sub-pixel convolutions" in int8.notes
