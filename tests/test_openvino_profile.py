"""OpenVINO's per-node profile: every convolution found, with the package's MAC count."""
import pytest
import torch
from torch import nn

from mggc_plugin.deploy import onnx as onnx_export
from mggc_plugin.macs import count_macs


def test_the_profile_times_every_convolution_with_the_packages_macs(tmp_path):
    pytest.importorskip("openvino")
    pytest.importorskip("onnxruntime")
    from mggc_plugin.deploy import openvino as openvino_export

    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.InstanceNorm2d(8), nn.ReLU(),
                        nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1), nn.Tanh()).eval()
    x = torch.zeros(1, 3, 16, 16)
    onnx_export.save(net, x, tmp_path / "g.onnx")
    openvino_export.convert(tmp_path / "g.onnx", tmp_path / "g.xml")
    profiler = openvino_export.Profiler(tmp_path / "g.xml")
    with pytest.raises(RuntimeError, match="run"):
        profiler.nodes()
    profiler.run(x, record=False)
    profiler.run(x)
    nodes = profiler.nodes()
    convs = [n for n in nodes if n.macs]
    assert [n.kind for n in convs] == ["conv", "conv_transpose"]
    assert [n.macs for n in convs] == [layer.macs for layer in count_macs(net, (1, 3, 16, 16)).layers]
    assert all(n.ms >= 0 for n in nodes) and sum(n.ms for n in nodes) > 0
