"""The deployable graph: a wrapper module from camera frames to (probs, p_adv), and torch -> ONNX.

The wrapper puts everything the agent would otherwise have to get right into the graph:
uint8 -> float, BGR -> RGB, NHWC -> NCHW (normalisation is already part of the classifier).
"""
from __future__ import annotations

import io
import warnings

import onnx
import onnxscript.optimizer
import torch
from torch import nn

from trainer.models.detector import DetectedClassifier

OPSET = 17  # the newest opset every onnxruntime >= 1.18 (the agent's floor) runs


class FramesToImages(nn.Module):
    """uint8 frames [N, H, W, C] as OpenCV delivers them (BGR, or grey) -> float [N, C, H, W] RGB in 0..255."""

    def __init__(self, channels: int):
        super().__init__()
        self.bgr = channels == 3

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames.permute(0, 3, 1, 2)
        if self.bgr:
            x = x.flip(1)  # on the uint8 tensor, before the cast: a quarter of the bytes to move
        return x.float()


class FusedGraph(nn.Module):
    """Frames -> (class probabilities [N, K], p_adv [N][, unfamiliarity [N]]); the trunk up to the detector runs once.

    With a `familiarity` module (trainer.familiarity.Unfamiliarity) the graph also scores how
    unlike the training images each frame is, at AD(`familiarity_point`) (default: the detector's tap),
    on the classifier's way from the detector's tap to its logits.
    """

    def __init__(self, model: DetectedClassifier, familiarity: nn.Module | None = None, familiarity_point: int | None = None):
        super().__init__()
        self.pre = FramesToImages(model.classifier.tap_channels[0])
        self.model = model
        self.familiarity = familiarity
        self.familiarity_point = model.point if familiarity_point is None else familiarity_point

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, ...]:
        m, at = self.model, self.familiarity_point
        h = m.classifier.tap(self.pre(frames), m.point)
        adv_logit = m.detector(h)
        g = m.classifier.advance(h, m.point, at)
        out = (torch.softmax(m.classifier.resume(g, at), dim=1), torch.sigmoid(adv_logit))
        return out + (self.familiarity(g),) if self.familiarity is not None else out


def to_onnx(module: nn.Module, input_shape: tuple[int, int, int], output_names: list[str]) -> onnx.ModelProto:
    """Export `module` (taking uint8 `frames` [N, H, W, C]) with a dynamic batch dimension N.

    Uses the TorchScript exporter: for these convolutional nets it folds BatchNorm into the convs
    and writes GlobalAveragePool/Flatten/Gemm, where the dynamo exporter adds shape arithmetic
    for the dynamic batch, and it is ~15x faster. The onnxscript optimizer then removes the
    Identity nodes the exporter leaves for deduplicated weights.
    """
    module = module.eval()
    example = torch.zeros((2, *input_shape), dtype=torch.uint8)
    dynamic = {name: {0: "N"} for name in ["frames", *output_names]}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter's deprecation notice is not actionable for users; tracer warnings stay.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.onnx.export(module, (example,), buffer, input_names=["frames"], output_names=output_names,
                          dynamic_axes=dynamic, opset_version=OPSET, do_constant_folding=True, dynamo=False)
    return onnxscript.optimizer.optimize(onnx.load_from_string(buffer.getvalue()))
