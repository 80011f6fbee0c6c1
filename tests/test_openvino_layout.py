"""OpenVINO IR taking and returning images channels last (``--layout nhwc``): the same outputs,
loadable without mggc_plugin, refused for formats without it, timed by ``mggc bench`` as written."""
import subprocess
import sys

import pytest
import torch

from mggc_plugin import load_slim
from mggc_plugin.cli import main
from mggc_plugin.deploy import export
from mggc_plugin.errors import MGGCUserError

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

RUN_WITHOUT_PLUGIN = r"""
import sys, numpy as np, openvino as ov, torch
compiled = ov.Core().compile_model(sys.argv[1], "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
x = torch.load(sys.argv[2], weights_only=True).permute(0, 2, 3, 1).contiguous()
assert list(compiled.input(0).get_shape()) == list(x.shape)
torch.save(torch.from_numpy(np.asarray(compiled(x.numpy())[0])), sys.argv[3])
assert "mggc_plugin" not in sys.modules
"""


def test_a_channels_last_ir_takes_and_returns_nhwc_images_without_the_plugin(unet_checkpoint, tmp_path, capsys):
    out = tmp_path / "u.xml"
    assert main(["export", str(unet_checkpoint), "--format", "openvino", "--layout", "nhwc", "--out", str(out)]) == 0
    assert "channels last" in capsys.readouterr().out
    x = torch.rand(1, 3, 128, 128) * 2 - 1
    torch.save(x, tmp_path / "x.pt")
    subprocess.run([sys.executable, "-c", RUN_WITHOUT_PLUGIN, str(out), str(tmp_path / "x.pt"), str(tmp_path / "y.pt")],
                   check=True, cwd=tmp_path)
    with torch.no_grad():
        expected = load_slim(unet_checkpoint).eval()(x).permute(0, 2, 3, 1)
    assert (torch.load(tmp_path / "y.pt") - expected).abs().max().item() < 1e-4


def test_the_runner_transposes_the_input_again_once_it_changed(unet_checkpoint, tmp_path):
    from mggc_plugin.deploy import openvino as openvino_export

    export(unet_checkpoint, "openvino", out=tmp_path / "u.xml", layout="nhwc")
    run = openvino_export.CompiledRunner(openvino_export.compile_model(tmp_path / "u.xml"))
    model = load_slim(unet_checkpoint).eval()
    x = torch.rand(1, 3, 128, 128) * 2 - 1
    with torch.no_grad():
        assert run.staged.channels_last and (run(x) - model(x)).abs().max().item() < 1e-4
        x.mul_(-1)  # same tensor, modified in place: a stale staged copy would give the old outputs
        assert (run(x) - model(x)).abs().max().item() < 1e-4


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_nhwc_is_refused_for_formats_without_it(unet_checkpoint, tmp_path, fmt):
    with pytest.raises(MGGCUserError, match="--layout nhwc is not available for --format .* openvino takes it"):
        export(unet_checkpoint, fmt, out=tmp_path / "u.out", layout="nhwc")
    assert list(tmp_path.iterdir()) == []


def test_bench_times_the_channels_last_ir_and_says_so(unet_checkpoint, tmp_path):
    from mggc_plugin.deploy.bench import bench, deployable, markdown

    model = deployable("u", load_slim(unet_checkpoint), (1, 3, 128, 128), subpixel=True)
    result = bench([model], (1, 3, 128, 128), tmp_path, ["openvino"], batches=(1,), threads=(1,), runs=1,
                   warmup=0, warm_s=0.0, layout="nhwc", log=lambda s: None)
    assert result["openvino_layout"] == "nhwc" and "channels last" in markdown(result)
    assert [p.name for p in tmp_path.glob("*.xml")] == ["u-openvino-b1-nhwc.xml"]
    with pytest.raises(MGGCUserError, match="--layout nchwc: choose one of nchw, nhwc"):
        bench([model], (1, 3, 128, 128), tmp_path, ["openvino"], layout="nchwc")
