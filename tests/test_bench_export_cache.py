"""``mggc bench``'s exported graphs in a work folder kept across runs: reused for the same network,
made again for another network of the same name (timing the earlier one would go unnoticed)."""
import pytest
import torch
from torch import nn

from mggc_plugin.deploy.bench import BenchModel, exported_onnx, fingerprint, prepare, runtime_unavailable

pytest.importorskip("onnxruntime")


def _net(width: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                         nn.Conv2d(width, 3, 3, padding=1)).eval()


def test_the_fingerprint_tells_widths_weights_and_input_shapes_apart():
    x = torch.zeros(1, 3, 8, 8)
    base = fingerprint(_net(4, 0), x)
    assert fingerprint(_net(4, 0), x) == base
    assert fingerprint(_net(8, 0), x) != base
    assert fingerprint(_net(4, 1), x) != base
    assert fingerprint(_net(4, 0), torch.zeros(1, 3, 16, 16)) != base
    assert fingerprint(nn.Sequential(*_net(4, 0), nn.Tanh()), x) != base  # same state, another graph


def test_a_network_of_an_earlier_runs_name_is_exported_again(tmp_path):
    x = torch.randn(1, 3, 8, 8)
    first, second = BenchModel("student", _net(4, 0), 0.0, 0), BenchModel("student", _net(8, 1), 0.0, 0)
    path = exported_onnx(first, x, tmp_path)
    made = path.stat().st_mtime_ns
    assert exported_onnx(first, x, tmp_path) == path and path.stat().st_mtime_ns == made  # reused
    with torch.no_grad():
        for runtime in [r for r in ("onnxruntime", "openvino") if runtime_unavailable(r) is None]:
            ran = prepare(runtime, second, x, 1, tmp_path)(x)
            assert torch.allclose(ran, second.module(x), atol=1e-4), runtime
            assert not torch.allclose(ran, first.module(x), atol=1e-2), runtime


def test_openvino_runs_the_openvino_form_of_a_subpixel_network(tmp_path):
    pytest.importorskip("openvino")
    import onnx

    from mggc_plugin import networks
    from mggc_plugin.deploy.bench import deployable, exported_ir

    torch.manual_seed(0)
    G = networks.define_G(3, 3, 4, "unet_128", norm="batch").eval()
    x = torch.zeros(1, 3, 128, 128)
    model = deployable("g", G, tuple(x.shape), subpixel=True)
    xml = exported_ir(model, x, tmp_path)
    assert xml.name == "g-openvino-b1.xml"
    ops = {node.op_type for node in onnx.load(str(xml.with_suffix(".onnx"))).graph.node}
    assert "Transpose" in ops and "DepthToSpace" not in ops
    ops = {node.op_type for node in onnx.load(str(exported_onnx(model, x, tmp_path))).graph.node}
    assert "DepthToSpace" in ops  # what ONNX Runtime runs
