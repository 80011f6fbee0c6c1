"""fp16/int8 ONNX and int8 OpenVINO IR: measured against the fp32 slim model on held-out images,
refused past --max_l1."""
import numpy as np
import pytest
import torch
from PIL import Image

from mggc_plugin import ChannelGroups, load_slim, networks, save_slim, slim
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
    fp32 = export(path, "onnx", out=tmp_path / "fp32.onnx", subpixel=False)
    int8 = export(path, "onnx", out=tmp_path / "int8.onnx", precision="int8", calibration=images, max_l1=1.0)
    ops = lambda p: {node.op_type for node in onnx.load(str(p)).graph.node}  # noqa: E731
    assert "ConvTranspose" in ops(fp32.path) and "ConvTranspose" not in ops(int8.path)
    assert "7 ConvTranspose2d as sub-pixel convolutions" in int8.notes


OPENVINO_WITHOUT_PLUGIN = r"""
import sys, numpy as np, openvino as ov
compiled = ov.Core().compile_model(sys.argv[1], "CPU")
y = compiled(np.load(sys.argv[2]))[0]
assert "mggc_plugin" not in sys.modules
np.save(sys.argv[3], y)
"""


def test_openvino_int8_keeps_int8_weights_runs_without_the_plugin_and_is_guarded(checkpoint, images, tmp_path):
    ov = pytest.importorskip("openvino")
    import subprocess
    import sys

    result = export(checkpoint, "openvino", out=tmp_path / "g.xml", precision="int8", calibration=images, max_l1=1.0)
    assert result.path.is_file() and result.path.with_suffix(".bin").is_file()
    assert "checked at OpenVINO's default CPU inference precision" in result.notes
    int8_constants = [op for op in ov.Core().read_model(str(result.path)).get_ops()
                      if op.get_type_name() == "Constant" and op.get_element_type() == ov.Type.i8]
    assert int8_constants, "the IR lost the int8 weights of the QDQ graph"
    assert 0 < result.quality.mean_l1 < 0.1

    x = held_out_inputs(images)[0]
    np.save(tmp_path / "x.npy", x.numpy())
    subprocess.run([sys.executable, "-c", OPENVINO_WITHOUT_PLUGIN, str(result.path), str(tmp_path / "x.npy"),
                    str(tmp_path / "y.npy")], check=True, cwd=tmp_path)
    with torch.no_grad():
        l1 = float((torch.from_numpy(np.load(tmp_path / "y.npy")) - load_slim(checkpoint)(x)).abs().mean())
    assert l1 <= result.quality.mean_l1 * result.quality.count + 1e-6  # x is one of the inputs the guard measured

    with pytest.raises(MGGCUserError, match="above --max_l1"):
        export(checkpoint, "openvino", out=tmp_path / "h.xml", precision="int8", calibration=images,
               max_l1=result.quality.mean_l1 / 2)
    assert not (tmp_path / "h.xml").exists() and not (tmp_path / "h.bin").exists()


def test_openvino_int8_channels_last_is_the_same_graph_guarded_alike(checkpoint, images, tmp_path):
    ov = pytest.importorskip("openvino")
    nchw = export(checkpoint, "openvino", out=tmp_path / "a.xml", precision="int8", calibration=images, max_l1=1.0)
    nhwc = export(checkpoint, "openvino", out=tmp_path / "b.xml", precision="int8", calibration=images, max_l1=1.0,
                  layout="nhwc")
    assert list(ov.Core().read_model(str(nhwc.path)).input(0).get_shape()) == [1, 32, 32, 3]
    assert "input 1x32x32x3" in nhwc.describe() and "channels last" in nhwc.describe()
    assert nhwc.quality.mean_l1 == pytest.approx(nchw.quality.mean_l1, abs=1e-6)


def held_out_inputs(folder):
    """The held-out batches the export's quality check measures on (32x32, [-1, 1])."""
    from mggc_plugin.deploy.calibration import find_images, load_inputs

    refs, source = find_images(folder, folder)
    return load_inputs(refs, (1, 3, 32, 32), source).held_out


def test_openvino_refuses_fp16_naming_the_onnx_format(checkpoint, tmp_path):
    pytest.importorskip("openvino")
    with pytest.raises(MGGCUserError, match="--format onnx takes fp32, fp16, int8"):
        export(checkpoint, "openvino", out=tmp_path / "g.xml", precision="fp16")
