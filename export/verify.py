"""Checks of an exported `.onnx` file that need nothing but the file (and its manifest).

`check_file` is what every export runs on the bytes it is about to ship; `verify_file` is
`export verify`: manifest first (a tampered file is not even parsed), then the same checks,
then, given the run, the comparison with PyTorch.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
import onnxruntime as ort

from common.manifest import check_manifest
from common.metadata import MetadataError, ModelMetadata
from export import metadata
from export.errors import ExportError

if TYPE_CHECKING:  # verify without a run must not import torch, which export.compare does
    from export.compare import Tolerances

SMOKE_BATCHES = (1, 7)  # a single frame and an odd batch: the batch dimension must really be dynamic


def open_session(model: str | Path | bytes, threads: int = 0) -> ort.InferenceSession:
    """A CPU ONNX Runtime session (`threads` 0 = ORT's default)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    source = str(model) if isinstance(model, Path) else model
    try:
        return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own exception types, one per failure kind
        raise ExportError(f"onnxruntime cannot load the model: {str(exc).splitlines()[0]}") from None


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in value.type.tensor_type.shape.dim]


def check_signature(model: onnx.ModelProto, meta: ModelMetadata) -> None:
    """The graph's inputs and outputs are exactly the contract's, with the metadata's sizes."""
    inputs = {v.name: v for v in model.graph.input}
    outputs = {v.name: v for v in model.graph.output}
    expected = {"probs", "p_adv"} | ({"unfamiliarity"} if meta.familiarity is not None else set())
    if set(inputs) != {"frames"} or set(outputs) != expected:
        raise ExportError(f"graph has inputs {sorted(inputs)} and outputs {sorted(outputs)}, "
                          f"expected frames -> {', '.join(sorted(expected))}")
    want = {
        "frames": (onnx.TensorProto.UINT8, [meta.input_height, meta.input_width, meta.input_channels]),
        "probs": (onnx.TensorProto.FLOAT, [len(meta.class_names)]),
        "p_adv": (onnx.TensorProto.FLOAT, []),
        "unfamiliarity": (onnx.TensorProto.FLOAT, []),
    }
    for name, value in {**inputs, **outputs}.items():
        dtype, rest = want[name]
        dims = _dims(value)
        if value.type.tensor_type.elem_type != dtype or len(dims) != 1 + len(rest) or dims[1:] != rest \
                or not isinstance(dims[0], str):
            raise ExportError(f"graph {name!r} is {onnx.TensorProto.DataType.Name(value.type.tensor_type.elem_type)} "
                              f"{dims}, expected {onnx.TensorProto.DataType.Name(dtype)} [N, *{rest}] with dynamic N")


def smoke_run(session: ort.InferenceSession, meta: ModelMetadata) -> None:
    """Random frames at batch sizes 1 and 7 give well-formed probabilities."""
    rng = np.random.default_rng(0)
    shape = meta.input_height, meta.input_width, meta.input_channels
    for n in SMOKE_BATCHES:
        probs, p_adv = session.run(["probs", "p_adv"], {"frames": rng.integers(0, 256, (n, *shape), dtype=np.uint8)})
        if probs.shape != (n, len(meta.class_names)) or p_adv.shape != (n,):
            raise ExportError(f"batch of {n}: outputs have shapes {probs.shape} and {p_adv.shape}")
        # 1e-2: fp16 sums drift, but a broken softmax/sigmoid is off by far more
        if not (np.isfinite(probs).all() and np.isfinite(p_adv).all()
                and np.allclose(probs.sum(1), 1.0, atol=1e-2) and ((p_adv >= 0) & (p_adv <= 1)).all()):
            raise ExportError(f"batch of {n}: outputs are not probabilities")


def check_file(path: Path) -> tuple[ModelMetadata, ort.InferenceSession]:
    """onnx.checker, the contract's signature and metadata, and a smoke run; returns (metadata, session)."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
        model = onnx.load(path)
    except Exception as exc:  # checker and protobuf parse errors; both mean "not a valid model"
        raise ExportError(f"{path} is not a valid ONNX model: {str(exc).strip().splitlines()[0]}") from None
    meta = ModelMetadata.from_props(metadata.read(model))
    check_signature(model, meta)
    session = open_session(path)
    smoke_run(session, meta)
    return meta, session


def verify_file(path: str | Path, run_dir: str | Path | None = None, detector: str | None = None,
                tolerances: Tolerances | None = None) -> list[str]:
    """`export verify`: raise `ExportError` on any problem, else return the report's lines."""
    path = Path(path)
    manifest = check_manifest(path)
    meta, session = check_file(path)
    try:
        listed = ModelMetadata.from_props(manifest["metadata"])
    except MetadataError as exc:
        raise ExportError(f"manifest of {path}: {exc}") from None
    if listed != meta:
        raise ExportError(f"the metadata in {path} differs from its manifest's")
    lines = [f"{path}: sha256 matches manifest, onnx.checker ok, signature and metadata ok, "
             f"batches {' and '.join(map(str, SMOKE_BATCHES))} run ({meta.precision}, {meta.attach_point})"]
    if run_dir is None:
        return lines + ["no --run given: PyTorch parity not checked"]
    from export.compare import Tolerances, compare, reference_scores  # torch only when a run is compared
    from trainer.rundir import find_detector, load_run

    run = load_run(run_dir, detector or find_detector(run_dir, meta.detector_sha256))
    if run.classifier_sha256 != meta.classifier_sha256 or run.detector_sha256 != meta.detector_sha256:
        raise ExportError(f"{path} was not exported from {run_dir} / {run.detector_name} (checkpoint sha256 differ)")
    result = compare(session, run, reference_scores(run), meta.precision, tolerances or Tolerances())
    lines += result.lines()
    if result.failures:
        raise ExportError(f"{path}: " + "; ".join(result.failures), lines)
    return lines
