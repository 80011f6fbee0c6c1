"""Transposed convolutions as sub-pixel convolutions (mggc_plugin.deploy.subpixel): the same
outputs, only for the configuration it covers, and an ONNX graph without ConvTranspose."""
import pytest
import torch
from torch import nn

from mggc_plugin import networks
from mggc_plugin.deploy.subpixel import SubPixelConvTranspose2d, conv_transposes_as_subpixel, rewritable


@pytest.mark.parametrize("bias,size", [(True, (5, 7)), (False, (1, 1)), (True, (8, 8))])
def test_a_subpixel_layer_computes_what_the_transposed_convolution_does(bias, size):
    torch.manual_seed(0)
    layer = nn.ConvTranspose2d(6, 5, 4, stride=2, padding=1, bias=bias)
    x = torch.randn(2, 6, *size)
    with torch.no_grad():
        expected, got = layer(x), SubPixelConvTranspose2d(layer)(x)
    assert got.shape == expected.shape == (2, 5, 2 * size[0], 2 * size[1])
    assert torch.allclose(got, expected, atol=1e-5)


def test_only_the_upstream_unet_configuration_is_rewritten():
    assert rewritable(nn.ConvTranspose2d(4, 4, 4, stride=2, padding=1))
    for other in (nn.ConvTranspose2d(4, 4, 3, stride=2, padding=1, output_padding=1),
                  nn.ConvTranspose2d(4, 4, 4, stride=2, padding=1, groups=2), nn.Conv2d(4, 4, 4, 2, 1)):
        assert not rewritable(other)
    with pytest.raises(ValueError, match="is not a ConvTranspose2d"):
        SubPixelConvTranspose2d(nn.ConvTranspose2d(4, 4, 3, stride=2, padding=1, output_padding=1))


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


def test_the_onnx_graph_has_no_conv_transpose_left():
    pytest.importorskip("onnx")
    from mggc_plugin.deploy.onnx import to_onnx

    G = networks.define_G(3, 3, 8, "unet_128", norm="instance").eval()
    proto = to_onnx(conv_transposes_as_subpixel(G)[0], torch.rand(1, 3, 128, 128))
    ops = {node.op_type for node in proto.graph.node}
    assert "ConvTranspose" not in ops and "DepthToSpace" in ops
