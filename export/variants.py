"""Reduced-precision variants of the fp32 graph: fp16 and static int8 (QDQ).

Both keep the contract's interface: `frames` stays uint8 and the outputs stay float32.
Whether a variant may ship is decided by `export.compare`, not here.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process
from onnxruntime.transformers.float16 import convert_float_to_float16

from export.errors import ExportError

# Ops computed in int8. The input preprocessing (cast, Sub/Div) and the heads' final
# Gather/Sub/Softmax/Sigmoid stay float: a uint8-quantised p_adv would have a resolution
# of 1/256 right where the alert threshold sits.
INT8_OPS = ["Conv", "Gemm", "Add", "Relu", "MaxPool", "GlobalAveragePool"]
CALIBRATION_BATCH = 16
MAX_CALIBRATION_FRAMES = 256  # spread evenly over clean + adversarial; bounds the export time


class _Frames(CalibrationDataReader):
    """Feeds calibration frames to `quantize_static` in batches."""

    def __init__(self, frames: np.ndarray):
        self._batches = iter([{"frames": frames[i:i + CALIBRATION_BATCH]}
                              for i in range(0, len(frames), CALIBRATION_BATCH)])

    def get_next(self) -> dict | None:
        return next(self._batches, None)


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """fp16 weights and activations; `frames` stays uint8 and the outputs float32 (keep_io_types)."""
    return convert_float_to_float16(model, keep_io_types=True)


def to_int8(model: onnx.ModelProto, calibration_frames: np.ndarray) -> onnx.ModelProto:
    """Static QDQ quantisation: per-channel int8 weights, uint8 activations calibrated on `calibration_frames`.

    `calibration_frames` are uint8 [N, H, W, C] frames from the run, clean and adversarial, so the
    activation ranges cover both kinds of input the detector has to tell apart.
    """
    if len(calibration_frames) == 0:
        raise ExportError("int8 needs calibration images, the run has none")
    frames = calibration_frames[np.linspace(0, len(calibration_frames) - 1,
                                            min(len(calibration_frames), MAX_CALIBRATION_FRAMES)).astype(int)]
    with tempfile.TemporaryDirectory(prefix="export-int8-") as tmp:
        src, pre, dst = Path(tmp, "fp32.onnx"), Path(tmp, "pre.onnx"), Path(tmp, "int8.onnx")
        onnx.save(model, src)
        quant_pre_process(str(src), str(pre))  # shape inference + folding, as ORT recommends before quantising
        quantize_static(str(pre), str(dst), _Frames(frames), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        op_types_to_quantize=INT8_OPS)
        return onnx.load(dst)


def convert(model: onnx.ModelProto, precision: str, calibration_frames: np.ndarray) -> onnx.ModelProto:
    """The fp32 `model` at `precision` (fp32 returns it unchanged)."""
    if precision == "fp16":
        return to_fp16(model)
    if precision == "int8":
        return to_int8(model, calibration_frames)
    return model
