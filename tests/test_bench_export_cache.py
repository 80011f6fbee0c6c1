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
