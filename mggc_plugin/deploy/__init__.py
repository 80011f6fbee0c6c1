"""Deployment of slim generators: export to TorchScript / ONNX / OpenVINO with parity checks,
fp16/int8 ONNX with a quality guard, BatchNorm folding, and latency on the runtimes.

One module per concern: :mod:`.export` (the checked write), :mod:`.formats` (the registry),
:mod:`.onnx`, :mod:`.openvino`, :mod:`.quantize`, :mod:`.calibration`, :mod:`.fold`,
:mod:`.bench`, :mod:`.runtimes` (optional packages and their extras).
"""
from .export import ExportResult, export
from .fold import fold_batchnorm, unfoldable_batchnorms
from .formats import FORMATS
from .onnx import OPSET
from .quantize import DEFAULT_MAX_L1, PRECISIONS

__all__ = ["export", "ExportResult", "FORMATS", "OPSET", "PRECISIONS", "DEFAULT_MAX_L1", "fold_batchnorm",
           "unfoldable_batchnorms"]
