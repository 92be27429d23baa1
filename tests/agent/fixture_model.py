"""Tiny models that satisfy docs/ONNX_CONTRACT.md, and test streams for them.

`build_fixture_model` writes MODEL.onnx + MODEL.onnx.manifest.json exactly as `export`
does: p_adv = sigmoid(gain * (mean |x[w+1] - x[w]| - offset)) over horizontally
neighbouring pixels of the resized frame, so frames with injected high-frequency noise
score high and smooth frames low. `build_resnet32_model` has the same contract with the
layer shapes (and cost) of a CIFAR ResNet-32 plus an AD(2) detector, random weights, for
benchmarks. Only `onnx` and NumPy are used; the agent itself never imports onnx.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from common.manifest import write_manifest
from common.metadata import ModelMetadata

CLASS_NAMES = ["t-shirt", "trouser", "pullover", "dress"]


def base_metadata(height: int, width: int, channels: int, threshold: float, class_names: list[str]) -> dict[str, str]:
    """Every metadata key of the contract, as strings."""
    return ModelMetadata(
        class_names=class_names, input_height=height, input_width=width, input_channels=channels,
        color_order="BGR" if channels == 3 else "GRAY", resize_interpolation="area",
        threshold=threshold, threshold_fpr=0.01, thresholds=[{"fpr": 0.01, "threshold": threshold}],
        attach_point="AD(2)", adversary={"name": "iterative_linf", "eps": 2}, detector_mode="static",
        dataset="fixture", test_accuracy=0.5, detectability=0.99, auroc=0.99,
        classifier_sha256="0" * 64, detector_sha256="0" * 64, package_version="0.1.0", precision="fp32",
    ).to_props()


def save_with_manifest(model: onnx.ModelProto, path: str | Path, metadata: dict[str, str]) -> Path:
    """Embed `metadata`, save `path` and its manifest (sha256, size, metadata) as export does."""
    path = Path(path)
    del model.metadata_props[:]
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    write_manifest(path, metadata)
    return path


def _const(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)


def build_fixture_model(path: str | Path, *, height: int = 32, width: int = 32, channels: int = 3,
                        gain: float = 0.5, offset: float = 10.0, threshold: float = 0.5,
                        class_names: list[str] = CLASS_NAMES, familiarity_threshold: float | None = None) -> Path:
    """The tiny noise-detecting model (see module docstring); returns `path`.

    With `familiarity_threshold` it also has the optional `unfamiliarity` output: here the mean
    pixel value, so bright frames count as unlike the training data.
    """
    k = len(class_names)
    rng = np.random.default_rng(0)
    inits = [
        _const("gain", gain), _const("offset", offset),
        _const("w_cls", rng.normal(0, 0.01, (channels, k))), _const("b_cls", np.zeros(k)),
        numpy_helper.from_array(np.array([0, 0, 1, 0], np.int64), "start_right"),
        numpy_helper.from_array(np.array([0, 0, 0, 0], np.int64), "start_left"),
        numpy_helper.from_array(np.array([2**31, 2**31, 2**31, 2**31], np.int64), "end_all"),
        numpy_helper.from_array(np.array([2**31, 2**31, -1, 2**31], np.int64), "end_left"),
    ]
    nodes = [
        helper.make_node("Cast", ["frames"], ["x"], to=TensorProto.FLOAT),
        helper.make_node("Slice", ["x", "start_right", "end_all"], ["right"]),
        helper.make_node("Slice", ["x", "start_left", "end_left"], ["left"]),
        helper.make_node("Sub", ["right", "left"], ["diff"]),
        helper.make_node("Abs", ["diff"], ["absdiff"]),
        helper.make_node("ReduceMean", ["absdiff"], ["roughness"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Sub", ["roughness", "offset"], ["centred"]),
        helper.make_node("Mul", ["centred", "gain"], ["logit_adv"]),
        helper.make_node("Sigmoid", ["logit_adv"], ["p_adv"]),
        helper.make_node("ReduceMean", ["x"], ["channel_mean"], axes=[1, 2], keepdims=0),
        helper.make_node("MatMul", ["channel_mean", "w_cls"], ["logits0"]),
        helper.make_node("Add", ["logits0", "b_cls"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    outputs = [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", k]),
               helper.make_tensor_value_info("p_adv", TensorProto.FLOAT, ["N"])]
    metadata = base_metadata(height, width, channels, threshold, class_names)
    if familiarity_threshold is not None:
        nodes.append(helper.make_node("ReduceMean", ["x"], ["unfamiliarity"], axes=[1, 2, 3], keepdims=0))
        outputs.append(helper.make_tensor_value_info("unfamiliarity", TensorProto.FLOAT, ["N"]))
        metadata["familiarity"] = json.dumps({"score": "mean-brightness", "point": 0, "threshold": familiarity_threshold,
                                              "fpr": 0.01, "val_images": 0})
    graph = helper.make_graph(
        nodes, "fixture",
        [helper.make_tensor_value_info("frames", TensorProto.UINT8, ["N", height, width, channels])],
        outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="agent-tests")
    model.ir_version = 8
    return save_with_manifest(model, path, metadata)


def build_resnet32_model(path: str | Path, *, threshold: float = 0.5, class_names: list[str] = CLASS_NAMES,
                         seed: int = 0) -> Path:
    """A fused graph with the shapes of CIFAR ResNet-32 (3x5 basic blocks, 16/32/64 channels)
    and a small conv detector on stage 2's output (AD(2)), random He-initialised weights.

    Batch norm is omitted: export folds it into the convolutions, so the cost is the same.
    """
    rng = np.random.default_rng(seed)
    k = len(class_names)
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    counter = iter(range(10_000))

    def conv(x: str, cin: int, cout: int, stride: int = 1, ksize: int = 3, relu: bool = True) -> str:
        i = next(counter)
        w = rng.normal(0, np.sqrt(2.0 / (cin * ksize * ksize)), (cout, cin, ksize, ksize))
        inits.extend([_const(f"w{i}", w), _const(f"b{i}", np.zeros(cout))])
        pad = ksize // 2
        nodes.append(helper.make_node("Conv", [x, f"w{i}", f"b{i}"], [f"c{i}"], strides=[stride, stride],
                                      pads=[pad] * 4, kernel_shape=[ksize, ksize]))
        if not relu:
            return f"c{i}"
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        return f"r{i}"

    def block(x: str, cin: int, cout: int, stride: int) -> str:
        i = next(counter)
        h = conv(x, cin, cout, stride)
        h = conv(h, cout, cout, relu=False)
        skip = x if stride == 1 and cin == cout else conv(x, cin, cout, stride, ksize=1, relu=False)
        nodes.append(helper.make_node("Add", [h, skip], [f"sum{i}"]))
        nodes.append(helper.make_node("Relu", [f"sum{i}"], [f"out{i}"]))
        return f"out{i}"

    inits.extend([_const("mean", np.full((1, 3, 1, 1), 127.5)), _const("scale", np.full((1, 3, 1, 1), 1 / 64))])
    nodes.extend([
        helper.make_node("Cast", ["frames"], ["xf"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["xf"], ["nchw_bgr"], perm=[0, 3, 1, 2]),
        # BGR -> RGB as export does it: reverse the channel axis.
        helper.make_node("Split", ["nchw_bgr"], ["b", "g", "r"], axis=1, num_outputs=3),
        helper.make_node("Concat", ["r", "g", "b"], ["nchw"], axis=1),
        helper.make_node("Sub", ["nchw", "mean"], ["centred"]),
        helper.make_node("Mul", ["centred", "scale"], ["x0"]),
    ])
    h, cin = conv("x0", 3, 16), 16
    stage2 = None
    for stage, cout in enumerate((16, 32, 64)):
        for b in range(5):
            h = block(h, cin, cout, 2 if b == 0 and stage > 0 else 1)
            cin = cout
        if stage == 1:
            stage2 = h
    inits.extend([_const("w_fc", rng.normal(0, 0.1, (64, k))), _const("b_fc", np.zeros(k))])
    nodes.extend([
        helper.make_node("GlobalAveragePool", [h], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["feat"]),
        helper.make_node("Gemm", ["feat", "w_fc", "b_fc"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ])
    d = conv(stage2, 32, 96)
    d = conv(d, 96, 192, stride=2)
    d = conv(d, 192, 192)
    # Small weights and a negative bias: p_adv stays low on clean video, as a calibrated detector's would.
    inits.extend([_const("w_det", rng.normal(0, 1e-3, (192, 1))), _const("b_det", np.full(1, -4.0)),
                  numpy_helper.from_array(np.array([-1], np.int64), "minus_one")])
    nodes.extend([
        helper.make_node("GlobalAveragePool", [d], ["dgap"]),
        helper.make_node("Flatten", ["dgap"], ["dfeat"]),
        helper.make_node("Gemm", ["dfeat", "w_det", "b_det"], ["dlogit"]),
        helper.make_node("Sigmoid", ["dlogit"], ["dprob"]),
        helper.make_node("Reshape", ["dprob", "minus_one"], ["p_adv"]),
    ])
    graph = helper.make_graph(
        nodes, "resnet32_fixture",
        [helper.make_tensor_value_info("frames", TensorProto.UINT8, ["N", 32, 32, 3])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", k]),
         helper.make_tensor_value_info("p_adv", TensorProto.FLOAT, ["N"])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="agent-tests")
    model.ir_version = 8
    return save_with_manifest(model, path, base_metadata(32, 32, 3, threshold, class_names))


def smooth_frame(index: int, height: int = 96, width: int = 128) -> np.ndarray:
    """A clean BGR frame: a slowly moving gradient with a soft blob (low neighbour differences)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    shift = index * 2.0
    b = 100 + 80 * np.sin((xx + shift) / width * np.pi)
    g = 90 + 60 * np.cos((yy + shift) / height * np.pi)
    r = 120 + 100 * np.exp(-(((xx - (shift % width)) ** 2 + (yy - height / 2) ** 2) / (2 * (width / 6) ** 2)))
    return np.clip(np.dstack([b, g, r]), 0, 255).astype(np.uint8)


def perturb(frame: np.ndarray, seed: int, amplitude: int = 40, block: int = 4) -> np.ndarray:
    """Inject high-frequency noise (constant on block x block cells so it survives area resizing)."""
    rng = np.random.default_rng(seed)
    h, w = frame.shape[:2]
    cells = rng.choice([-amplitude, amplitude], size=(h // block + 1, w // block + 1, frame.shape[2]))
    noise = np.repeat(np.repeat(cells, block, axis=0), block, axis=1)[:h, :w]
    return np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def make_frames(count: int, adversarial: set[int] | list[int] = (), **size) -> list[np.ndarray]:
    """`count` clean frames with perturbed ones at the given indices."""
    bad = set(adversarial)
    return [perturb(smooth_frame(i, **size), seed=i) if i in bad else smooth_frame(i, **size) for i in range(count)]
