"""FP16 and INT8 versions of an exported ONNX graph, and how far their outputs move.

- **fp16** (:func:`to_fp16`): ``onnxruntime.transformers.float16``, which ships with ONNX Runtime
  (the same converter as onnxconverter-common, so no extra package); the graph's input and output
  stay float32, so callers feed and read what the fp32 graph takes.
- **int8** (:func:`to_int8`): ONNX Runtime's post-training static quantization
  (``quantize_static``), QDQ format, per-channel int8 weights, uint8 activations, ranges from
  percentile calibration on the given inputs. The output layer (the last convolution) stays in
  float. Measured on facades (mean L1 of outputs on [-1, 1] against the fp32 graph, 16 held-out
  images, 32 calibration images): pix2pix unet_128 ngf 32 (128², BatchNorm) 0.0197 with min-max
  calibration, 0.0173 with percentile, 0.0162 with the output layer in float as well; CycleGAN
  resnet_6blocks ngf 32 (64², InstanceNorm) 0.0169, 0.0154, 0.0145. Keeping the InstanceNorm
  nodes in float changed nothing (ONNX Runtime does not quantize them; only their inputs pass
  through Q/DQ), so they are not excluded.

:func:`measure` compares a converted model with the fp32 slim model on held-out inputs (mean L1,
PSNR, max abs diff); ``mggc export`` refuses to write a file whose mean L1 exceeds ``--max_l1``
(default :data:`DEFAULT_MAX_L1`).
"""
from __future__ import annotations

import contextlib
import io
import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import torch

from .onnx import INPUT, MODULES
from .runtimes import require

PRECISIONS = ("fp32", "fp16", "int8")
#: Mean L1 (outputs on [-1, 1]) above which a converted model is refused. ``mggc export --precision
#: int8`` measured 0.0165 (pix2pix above, 64 calibration / 8 held-out training sources), 0.0139
#: (CycleGAN above) and 0.0183 (random-initialised resnet_6blocks ngf 8 at 32², 18 / 6 facades
#: images); fp16 0.0002. 0.04 passes them with a margin of 2x and refuses a model whose outputs
#: moved by 2 % of their range on average.
DEFAULT_MAX_L1 = 0.04
#: The dynamic range of the generators' outputs (tanh: [-1, 1]), the peak of PSNR.
OUTPUT_RANGE = 2.0


@dataclass(frozen=True)
class Quality:
    """A converted model against the fp32 slim model on ``count`` held-out inputs."""

    mean_l1: float
    psnr: float
    max_abs_diff: float
    count: int

    def describe(self) -> str:
        return (f"mean L1 {self.mean_l1:.4f}, PSNR {self.psnr:.1f} dB, max abs diff {self.max_abs_diff:.3f} "
                f"on {self.count} held-out input{'s' if self.count != 1 else ''}")


def measure(run: Callable[[torch.Tensor], torch.Tensor], reference: Callable[[torch.Tensor], torch.Tensor],
            batches: Sequence[torch.Tensor]) -> Quality:
    """Mean L1, PSNR (peak :data:`OUTPUT_RANGE`) and max abs diff of ``run`` against
    ``reference`` over ``batches``."""
    got = torch.cat([run(b).float() for b in batches])
    with torch.no_grad():
        want = torch.cat([reference(b).float() for b in batches])
    diff = got - want
    mse = float(diff.pow(2).mean())
    psnr = math.inf if mse == 0 else 10 * math.log10(OUTPUT_RANGE ** 2 / mse)
    return Quality(float(diff.abs().mean()), psnr, float(diff.abs().max()), int(got.shape[0]))


def to_fp16(src: Path, dst: Path) -> None:
    """Write the float16 version of the ONNX graph ``src`` to ``dst`` (float32 input/output)."""
    require("fp16 conversion", MODULES)
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    onnx.save(convert_float_to_float16(onnx.load(str(src)), keep_io_types=True), str(dst))


def output_layers(proto: Any) -> List[str]:
    """The node names kept in float by :func:`to_int8`: the last convolution of the (topologically
    sorted) graph, the layer that writes the image."""
    convs = [n.name for n in proto.graph.node if n.op_type in ("Conv", "ConvTranspose")]
    return convs[-1:]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence ONNX Runtime's quantizer: it prints its calibration steps on stdout and warns on the
    root logger for every ConvTranspose bias ("Axis 1 is out-of-range for weight ... with rank 1":
    the weight's per-channel axis does not apply to the 1-d bias, which is quantized per tensor as
    int32 anyway). The quality guard judges the result."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


class _Batches:
    """ONNX Runtime's CalibrationDataReader protocol over a list of input batches."""

    def __init__(self, batches: Sequence[torch.Tensor]):
        self._it: Iterator[Dict[str, Any]] = iter([{INPUT: b.numpy()} for b in batches])

    def get_next(self) -> Optional[Dict[str, Any]]:
        return next(self._it, None)


def to_int8(src: Path, dst: Path, calibration: Sequence[torch.Tensor]) -> None:
    """Write the int8 (QDQ, per-channel) version of the ONNX graph ``src`` to ``dst``, calibrated
    on ``calibration`` (batches of the graph's input shape)."""
    require("int8 quantization", MODULES)
    if not calibration:
        raise ValueError("int8 quantization needs calibration inputs")
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="mggc-int8-") as work, _quiet():
        prepared = Path(work) / "prepared.onnx"
        quant_pre_process(str(src), str(prepared))  # shape inference and graph optimisation, as ORT advises
        quantize_static(str(prepared), str(dst), _Batches(calibration), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.Percentile,
                        nodes_to_exclude=output_layers(onnx.load(str(prepared))))
