"""Transposed convolutions as sub-pixel convolutions (mggc_plugin.deploy.subpixel): the same
outputs, only for the configuration it covers, and an ONNX graph without ConvTranspose."""
import pytest
import torch
from torch import nn

from mggc_plugin import networks
from mggc_plugin.deploy.subpixel import (
    INTERLEAVES,
    SubPixelConvTranspose2d,
    conv_transposes_as_subpixel,
    interleave_for,
    rewritable,
)


@pytest.mark.parametrize("interleave", INTERLEAVES)
@pytest.mark.parametrize("bias,size", [(True, (5, 7)), (False, (1, 1)), (True, (8, 8))])
def test_a_subpixel_layer_computes_what_the_transposed_convolution_does(bias, size, interleave):
    torch.manual_seed(0)
    layer = nn.ConvTranspose2d(6, 5, 4, stride=2, padding=1, bias=bias)
    x = torch.randn(2, 6, *size)
    with torch.no_grad():
        expected, got = layer(x), SubPixelConvTranspose2d(layer, interleave)(x)
    assert got.shape == expected.shape == (2, 5, 2 * size[0], 2 * size[1])
    assert torch.allclose(got, expected, atol=1e-5)


def test_only_the_upstream_unet_configuration_is_rewritten():
    assert rewritable(nn.ConvTranspose2d(4, 4, 4, stride=2, padding=1))
    for other in (nn.ConvTranspose2d(4, 4, 3, stride=2, padding=1, output_padding=1),
                  nn.ConvTranspose2d(4, 4, 4, stride=2, padding=1, groups=2), nn.Conv2d(4, 4, 4, 2, 1)):
        assert not rewritable(other)
    with pytest.raises(ValueError, match="is not a ConvTranspose2d"):
        SubPixelConvTranspose2d(nn.ConvTranspose2d(4, 4, 3, stride=2, padding=1, output_padding=1))
    with pytest.raises(ValueError, match="interleave 'crd'"):
        SubPixelConvTranspose2d(nn.ConvTranspose2d(4, 4, 4, stride=2, padding=1), "crd")


@pytest.mark.parametrize("netG,replaced", [("unet_128", 7), ("resnet_6blocks", 0)])
def test_a_generator_keeps_its_outputs_and_the_original_is_untouched(netG, replaced):
    torch.manual_seed(0)
    G = networks.define_G(3, 3, 8, netG, norm="instance").eval()
    x = torch.rand(1, 3, 128, 128) * 2 - 1
    rewritten, n = conv_transposes_as_subpixel(G)
    assert n == replaced == sum(rewritable(m) for m in G.modules())  # every one, and the original keeps them
    assert not any(rewritable(m) for m in rewritten.modules())
    with torch.no_grad():
        assert torch.allclose(rewritten(x), G(x), atol=1e-5)


def test_the_onnx_graph_has_no_conv_transpose_left_and_interleaves_as_asked():
    pytest.importorskip("onnx")
    from mggc_plugin.deploy.onnx import to_onnx

    G = networks.define_G(3, 3, 8, "unet_128", norm="instance").eval()
    x = torch.rand(1, 3, 128, 128)
    ops = {node.op_type for node in to_onnx(conv_transposes_as_subpixel(G)[0], x).graph.node}
    assert "ConvTranspose" not in ops and "DepthToSpace" in ops
    ops = {node.op_type for node in to_onnx(conv_transposes_as_subpixel(G, "transpose")[0], x).graph.node}
    assert "ConvTranspose" not in ops and "DepthToSpace" not in ops and "Transpose" in ops
    assert [interleave_for(f) for f in ("onnx", "onnxruntime", "openvino", "openvino_default")] == \
        ["depth_to_space", "depth_to_space", "transpose", "transpose"]


@pytest.mark.parametrize("interleave", INTERLEAVES)
def test_each_layer_crops_once_after_interleaving_not_each_phase_before(interleave):
    """Per-phase crops (four slices and a concatenation per layer) ran slower in OpenVINO bfloat16."""
    pytest.importorskip("onnx")
    from collections import Counter

    from mggc_plugin.deploy.onnx import to_onnx

    G = networks.define_G(3, 3, 8, "unet_128", norm="instance").eval()
    x = torch.rand(1, 3, 128, 128)
    plain = Counter(node.op_type for node in to_onnx(G, x).graph.node)
    rewritten, n = conv_transposes_as_subpixel(G, interleave)
    ops = Counter(node.op_type for node in to_onnx(rewritten, x).graph.node)
    assert ops["Slice"] == 2 * n == 14 and plain["Slice"] == 0  # rows, columns
    assert ops["Concat"] == plain["Concat"]  # the U-Net's skip connections only


def test_the_output_tanh_runs_on_the_phase_maps_before_the_interleave():
    """OpenVINO fuses it into the convolution there, where after the interleave it ran alone."""
    pytest.importorskip("onnx")
    from mggc_plugin.deploy.onnx import to_onnx

    G = networks.define_G(3, 3, 8, "unet_128", norm="instance").eval()
    rewritten, _ = conv_transposes_as_subpixel(G, "transpose")
    graph = to_onnx(rewritten, torch.rand(1, 3, 128, 128)).graph
    made_by = {out: node for node in graph.node for out in node.output}
    (tanh,) = [node for node in graph.node if node.op_type == "Tanh"]
    assert made_by[tanh.input[0]].op_type == "Conv"
    assert made_by[graph.output[0].name].op_type == "Slice"  # the crop, after the interleave


@pytest.mark.parametrize("after,moved", [(nn.Sigmoid(), True), (nn.LeakyReLU(0.2, inplace=True), True),
                                         (nn.BatchNorm2d(6), False), (nn.Conv2d(6, 6, 1), False)])
def test_only_an_element_wise_module_right_after_moves_into_the_layer(after, moved):
    torch.manual_seed(0)
    net = nn.Sequential(nn.ConvTranspose2d(4, 6, 4, stride=2, padding=1), after, nn.Tanh()).eval()
    x = torch.randn(2, 4, 5, 7)
    rewritten, n = conv_transposes_as_subpixel(net)
    assert n == 1 and isinstance(rewritten[1], nn.Identity) == moved and isinstance(rewritten[2], nn.Tanh)
    with torch.no_grad():
        assert torch.allclose(rewritten(x), net(x), atol=1e-5)
    with pytest.raises(ValueError, match="not element-wise"):
        SubPixelConvTranspose2d(net[0], activation=nn.Conv2d(6, 6, 1))


def _ir_ops(xml):
    import openvino as ov

    return {op.get_type_name() for op in ov.Core().read_model(str(xml)).get_ops()}


def test_onnx_and_openvino_exports_rewrite_unless_told_not_to(unet_checkpoint, tmp_path):
    pytest.importorskip("openvino")
    pytest.importorskip("onnxslim")
    import onnx

    from mggc_plugin.deploy import export

    result = export(unet_checkpoint, "openvino", out=tmp_path / "sp.xml")
    assert result.max_abs_diff < 1e-4 and any("sub-pixel" in n for n in result.notes)
    assert "ConvolutionBackpropData" not in _ir_ops(tmp_path / "sp.xml")
    export(unet_checkpoint, "openvino", out=tmp_path / "tc.xml", subpixel=False)
    assert "ConvolutionBackpropData" in _ir_ops(tmp_path / "tc.xml")
    export(unet_checkpoint, "onnx", out=tmp_path / "sp.onnx")
    assert "ConvTranspose" not in {node.op_type for node in onnx.load(str(tmp_path / "sp.onnx")).graph.node}
    export(unet_checkpoint, "onnx", out=tmp_path / "tc.onnx", subpixel=False)
    assert "ConvTranspose" in {node.op_type for node in onnx.load(str(tmp_path / "tc.onnx")).graph.node}


def test_a_subpixel_bench_model_computes_the_same_and_keeps_the_networks_macs():
    from mggc_plugin.deploy.bench import deployable

    torch.manual_seed(0)
    G = networks.define_G(3, 3, 4, "unet_128", norm="batch").eval()
    shape = (1, 3, 128, 128)
    plain, rewritten = deployable("g", G, shape), deployable("g", G, shape, subpixel=True)
    assert rewritten.macs == plain.macs and rewritten.params == plain.params and plain.openvino_module is None
    x = torch.rand(shape) * 2 - 1
    # PyTorch and ONNX Runtime run the pixel_shuffle form, OpenVINO the transposed one
    for module, interleave in ((rewritten.module, "depth_to_space"), (rewritten.openvino_module, "transpose")):
        assert not any(isinstance(m, nn.ConvTranspose2d) for m in module.modules())
        assert {m.interleave for m in module.modules() if isinstance(m, SubPixelConvTranspose2d)} == {interleave}
        with torch.no_grad():
            assert torch.allclose(module(x), G(x), atol=1e-5)
    # nothing to rewrite: OpenVINO runs the same graph, not a second export of it
    resnet = networks.define_G(3, 3, 4, "resnet_6blocks", norm="instance").eval()
    assert deployable("r", resnet, shape, subpixel=True).openvino_module is None
