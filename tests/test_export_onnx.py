"""ONNX export for edge tools: static shapes unless --dynamic, a simplified graph that computes what
the exporter's graph computes, the opset stated; OpenVINO IR converted from it."""
import pytest
import torch

from mggc_plugin import ChannelGroups, load_slim, networks, save_slim, slim
from mggc_plugin.cli import main
from mggc_plugin.deploy import OPSET, export
from mggc_plugin.deploy import onnx as onnx_export

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxslim")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    G = networks.define_G(3, 3, 8, "resnet_6blocks", norm="instance")
    groups = ChannelGroups.discover(G, torch.zeros(1, 3, 32, 32))
    path = tmp_path_factory.mktemp("onnx") / "g.slim.pt"
    save_slim(slim(G, groups, [torch.arange(n) % 2 == 0 for n in groups.sizes]), path)
    return path


def test_static_shapes_by_default_and_opset_stated(checkpoint, tmp_path, capsys):
    out = tmp_path / "g.onnx"
    assert main(["export", str(checkpoint), "--format", "onnx", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"opset {OPSET}" in printed and "static shapes, input 1x3x32x32" in printed
    model = onnx.load(str(out))
    assert onnx_export.symbolic_dims(model) == []
    for value in list(model.graph.input) + list(model.graph.output):
        assert [d.dim_value for d in value.type.tensor_type.shape.dim] == [1, 3, 32, 32]
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [OPSET]


def test_dynamic_opts_in_to_symbolic_batch_and_size(checkpoint, tmp_path):
    out = tmp_path / "g.onnx"
    export(checkpoint, "onnx", out=out, dynamic=True)
    dims = onnx_export.symbolic_dims(onnx.load(str(out)))
    assert {"input[0]=batch", "input[2]=height", "input[3]=width"} <= set(dims)
    x = torch.rand(2, 3, 48, 64) * 2 - 1
    with torch.no_grad():
        expected = load_slim(checkpoint)(x)
    assert (onnx_export.runner(out)(x) - expected).abs().max().item() < 1e-4


def test_simplified_graph_computes_what_the_exported_one_does(checkpoint):
    model = load_slim(checkpoint)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    raw = onnx_export.to_onnx(model, x)
    simplified = onnx_export.simplify(raw)
    assert len(simplified.graph.node) <= len(raw.graph.node)
    probe = torch.rand(1, 3, 32, 32) * 2 - 1
    got = onnx_export.runner(simplified.SerializeToString())(probe)
    want = onnx_export.runner(raw.SerializeToString())(probe)
    assert (got - want).abs().max().item() < 1e-5


def test_failed_parity_writes_nothing(checkpoint, tmp_path):
    with pytest.raises(ValueError, match="differs from the slim model"):
        export(checkpoint, "onnx", out=tmp_path / "g.onnx", atol=-1.0)
    assert list(tmp_path.iterdir()) == []


def test_openvino_ir_matches_the_slim_model(checkpoint, tmp_path):
    pytest.importorskip("openvino")
    from mggc_plugin.deploy import openvino as openvino_export

    result = export(checkpoint, "openvino", out=tmp_path / "g.xml")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.bin", "g.xml"]
    assert result.max_abs_diff < 1e-4
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        expected = load_slim(checkpoint)(x)
    got = openvino_export.CompiledRunner(openvino_export.compile_model(tmp_path / "g.xml"))(x)
    assert (got - expected).abs().max().item() < 1e-4
    with pytest.raises(ValueError, match="differs from the slim model"):
        export(checkpoint, "openvino", out=tmp_path / "h.xml", atol=-1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.bin", "g.xml"], "no h.xml, no h.bin, no temp files"


def test_openvino_runs_in_float32_and_openvino_default_at_the_plugins_precision(checkpoint, tmp_path):
    ov = pytest.importorskip("openvino")
    import openvino.properties.hint as hints

    from mggc_plugin.deploy.bench import BenchModel, prepare

    net = load_slim(checkpoint).eval()
    model = BenchModel("g", net, 0.0, 0)
    x = torch.zeros(1, 3, 32, 32)
    exact = prepare("openvino", model, x, 1, tmp_path).run.compiled
    default = prepare("openvino_default", model, x, 1, tmp_path).run.compiled
    assert exact.get_property(hints.inference_precision) == ov.Type.f32
    assert default.get_property(hints.inference_precision) == ov.Core().get_property("CPU", hints.inference_precision)
