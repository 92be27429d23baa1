"""The exported model: manifest check, metadata, ONNX Runtime session and preprocessing.

Only the `.onnx` file and its sidecar manifest are read (docs/ONNX_CONTRACT.md); nothing
from the trainer is needed, so any model the export produces can be watched with.
"""
from __future__ import annotations

import ctypes
import hashlib
import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from agent.config import InferenceConfig
from agent.errors import ModelError
from common.frames import model_input
from common.manifest import check_manifest, manifest_path
from common.signing import key_id, load_public_key, verify_model_signature
from common.metadata import MetadataError, ModelMetadata

log = logging.getLogger(__name__)

INTERPOLATIONS = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR,
                  "nearest": cv2.INTER_NEAREST, "cubic": cv2.INTER_CUBIC}
PROVIDER_ORDER = {  # auto falls back along its list; any other choice must load or is an error
    "auto": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider"],
    "cuda": ["CUDAExecutionProvider"],
    "cpu": ["CPUExecutionProvider"],
}


@dataclass(frozen=True)
class ModelInfo:
    """A verified model file and the metadata the agent acts on."""

    path: Path
    sha256: str
    size: int
    metadata: dict[str, str]
    class_names: list[str]
    height: int
    width: int
    channels: int
    color_order: str
    interpolation: int
    threshold: float
    familiarity_threshold: float | None  # None: the model has no familiarity score
    signed_by: str | None = None  # key id of the public key its signature verified with; None: not checked


def _parse_metadata(meta: dict[str, str], where: str) -> dict:
    """The fields the agent acts on, from metadata that satisfies the contract."""
    try:
        m = ModelMetadata.from_props(meta)
    except MetadataError as exc:
        raise ModelError(f"{where}: {exc}") from None
    return {"class_names": m.class_names, "height": m.input_height, "width": m.input_width,
            "channels": m.input_channels, "color_order": m.color_order,
            "interpolation": INTERPOLATIONS[m.resize_interpolation], "threshold": m.threshold,
            "familiarity_threshold": None if m.familiarity is None else m.familiarity.threshold}


def verify_model(path: str | Path, pinned_sha256: str | None = None, public_key: Path | None = None) -> ModelInfo:
    """Check the model against its manifest (size, sha256, metadata), the pinned sha256 and the signature.

    Raises `ModelError` (or another `UserError`) if not usable. A manifest only proves the pair is
    self-consistent; `pinned_sha256` (config `model.sha256`) proves it is the model the operator
    chose, `public_key` (config `model.public_key`) that whoever holds the private key signed this
    model and manifest (`MODEL.onnx.sig`). The graph itself is checked when the session is created
    (`Detector`), from bytes whose sha256 must still be the one verified here.
    """
    path = Path(path)
    signer, manifest_bytes = None, None
    if public_key is not None:
        key = load_public_key(public_key, "model.public_key")
        signed_sha, manifest_bytes = verify_model_signature(path, key, f"model.public_key {public_key}")
        signer = key_id(key)
    manifest = check_manifest(path, manifest_bytes)  # a ManifestError is a UserError, as a ModelError is
    sha, size, metadata = manifest["sha256"], manifest["size"], manifest["metadata"]
    if signer is not None and sha != signed_sha:
        raise ModelError(f"model {path} changed while its signature was checked")
    if pinned_sha256 is not None and sha != pinned_sha256:
        raise ModelError(f"model {path} sha256 {sha[:12]}... is not the pinned model.sha256 {pinned_sha256[:12]}...")
    metadata = {str(k): str(v) for k, v in metadata.items()}
    parsed = _parse_metadata(metadata, str(manifest_path(path)))
    return ModelInfo(path=path, sha256=sha, size=size, metadata=metadata, signed_by=signer, **parsed)


def _session_options(cfg: InferenceConfig) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = cfg.intra_op_threads
    opts.inter_op_num_threads = cfg.inter_op_threads
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if cfg.spin else "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "1" if cfg.spin else "0")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return opts


def gpu_name() -> str:
    """The first NVIDIA GPU's model name as the driver reports it (no CUDA call), or "unknown-gpu"."""
    for info_file in sorted(Path("/proc/driver/nvidia/gpus").glob("*/information")):
        for line in info_file.read_text(errors="replace").splitlines():
            if line.startswith("Model:"):
                return line.split(":", 1)[1].strip()
    return "unknown-gpu"


def tensorrt_version() -> str:
    """Version of the TensorRT library ONNX Runtime will load (libnvinfer), or "unknown-trt"."""
    for lib in ("libnvinfer.so", "libnvinfer.so.10", "libnvinfer.so.8"):
        try:
            version = ctypes.CDLL(lib).getInferLibVersion()
        except (OSError, AttributeError):
            continue
        major, minor, patch = (version // 1000, version // 100 % 10, version % 100) if version < 100000 else \
            (version // 10000, version // 100 % 100, version % 100)  # TensorRT 10 packs two digits per part
        return f"{major}.{minor}.{patch}"
    return "unknown-trt"


def trt_cache_dir(cfg: InferenceConfig, info: ModelInfo) -> Path:
    """Engine cache of this model on this GPU with this TensorRT: an engine is only valid for all three.

    The whole sha256 of the verified bytes (the session is built from bytes that must hash to it):
    a prefix could be matched by a crafted model, whose engine would then stand in for this one.
    """
    key = f"{info.sha256}-{gpu_name()}-trt{tensorrt_version()}"
    return Path(cfg.trt_cache_dir) / re.sub(r"[^A-Za-z0-9_.-]+", "_", key)


def _provider_options(name: str, cfg: InferenceConfig, info: ModelInfo) -> dict:
    if name == "TensorrtExecutionProvider":
        return {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(trt_cache_dir(cfg, info)),
                "trt_fp16_enable": info.metadata.get("precision") == "fp16"}
    return {}


def create_session(info: ModelInfo, cfg: InferenceConfig) -> ort.InferenceSession:
    """Create the session on the most capable provider that really works here.

    A provider can be listed by ONNX Runtime and still fail to load (missing CUDA or
    TensorRT libraries); ORT then logs errors and silently runs on CPU. Each candidate is
    therefore tried with ORT's logging muted and kept only if it is the session's first
    provider, so the log shows the one choice made instead of a wall of load failures.
    A provider named explicitly (`tensorrt`, `cuda`) that does not load is a `ModelError`:
    whoever asked for the GPU must not get the CPU without being told.
    """
    data = info.path.read_bytes()
    # The session is built from these very bytes, checked again here, so the file cannot be
    # swapped between the manifest check and the load.
    if hashlib.sha256(data).hexdigest() != info.sha256:
        raise ModelError(f"model {info.path} changed after its manifest was checked")
    available = ort.get_available_providers()
    wanted = PROVIDER_ORDER[cfg.provider]
    if cfg.provider != "auto" and wanted[0] not in available:
        raise ModelError(f"inference.provider={cfg.provider}: this onnxruntime {ort.__version__} has no {wanted[0]} "
                         f"(it has {', '.join(available)}); install onnxruntime-gpu or set inference.provider=auto")
    candidates = [p for p in wanted if p in available or p == "CPUExecutionProvider"]
    last_error = None
    for name in candidates:
        providers = [(name, _provider_options(name, cfg, info))]
        if name != "CPUExecutionProvider":
            providers.append(("CPUExecutionProvider", {}))
        if name == "TensorrtExecutionProvider":
            Path(providers[0][1]["trt_engine_cache_path"]).mkdir(parents=True, exist_ok=True)
        opts = _session_options(cfg)
        # Weights in external files are not covered by the manifest's hash: pointing ORT at a
        # folder that cannot exist makes such a model fail to load instead of trusting them.
        opts.add_session_config_entry("session.model_external_initializers_file_folder_path", "/nonexistent/")
        opts.log_severity_level = 4 if name != "CPUExecutionProvider" else 3
        ort.set_default_logger_severity(4)
        try:
            with warnings.catch_warnings():  # ORT also warns in Python about providers it lacks
                warnings.simplefilter("ignore")
                # No ORT fallback: it would print its retry on stdout, the alerts' stream, and hide the error.
                session = ort.InferenceSession(data, sess_options=opts, providers=providers, enable_fallback=0)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
            if "external data" in str(exc).lower():
                raise ModelError(f"model {info.path} keeps weights in external data files, which its manifest "
                                 "does not hash; export it as one self-contained .onnx") from None
            last_error = exc
            continue
        finally:
            ort.set_default_logger_severity(3)
        if session.get_providers()[0] == name:
            _check_graph(session, info)
            return session
        log.debug("provider %s listed but not usable here", name)
    if cfg.provider not in ("auto", "cpu"):
        why = _first_line(last_error) if last_error else _load_failure(wanted[0])
        raise ModelError(f"inference.provider={cfg.provider}: {wanted[0]} does not load here: {why}; "
                         "set inference.provider=auto to fall back to the CPU")
    raise ModelError(f"model {info.path} cannot be loaded by ONNX Runtime: "
                     f"{_first_line(last_error) if last_error else 'no provider'}")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _load_failure(provider: str) -> str:
    """Why ORT could not load `provider`'s shared library: the dynamic loader's message (ORT only logs it)."""
    short = provider.removesuffix("ExecutionProvider").lower()
    try:
        ctypes.CDLL(str(Path(ort.__file__).parent / "capi" / f"libonnxruntime_providers_{short}.so"))
    except OSError as exc:
        return _first_line(exc)
    return "ONNX Runtime fell back to the CPU"


def _check_graph(session: ort.InferenceSession, info: ModelInfo) -> None:
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name for o in session.get_outputs()}
    frames = inputs.get("frames")
    if frames is None or frames.type != "tensor(uint8)" or len(frames.shape) != 4:
        raise ModelError(f"model {info.path}: graph needs a uint8 input 'frames' [N,H,W,C]")
    if not {"probs", "p_adv"} <= outputs:
        raise ModelError(f"model {info.path}: graph needs outputs 'probs' and 'p_adv', has {sorted(outputs)}")
    if info.familiarity_threshold is not None and "unfamiliarity" not in outputs:
        raise ModelError(f"model {info.path}: metadata has 'familiarity' but the graph has no 'unfamiliarity' output")
    embedded = session.get_modelmeta().custom_metadata_map
    differing = sorted(k for k in info.metadata if embedded.get(k) != info.metadata[k])
    if differing:
        raise ModelError(f"model {info.path}: metadata differs from its manifest in {', '.join(differing)}")


class Detector:
    """Runs the fused classifier + detector graph on frames as OpenCV delivers them."""

    def __init__(self, info: ModelInfo, cfg: InferenceConfig):
        self.info = info
        self.session = create_session(info, cfg)
        self.provider = self.session.get_providers()[0]
        self._outputs = ["probs", "p_adv"] + (["unfamiliarity"] if info.familiarity_threshold is not None else [])

    def prepare(self, frame: np.ndarray) -> np.ndarray:
        """Resize one BGR (or grey) frame to the model's input as uint8 HxWxC, no lossy step."""
        return model_input(frame, self.info.height, self.info.width, self.info.channels, self.info.interpolation)

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Run a uint8 [N,H,W,C] batch; return (probs [N,K], p_adv [N], unfamiliarity [N] or None)."""
        outputs = self.session.run(self._outputs, {"frames": batch})
        unfamiliarity = outputs[2].reshape(-1) if len(outputs) == 3 else None
        return outputs[0], outputs[1].reshape(-1), unfamiliarity

    def warmup(self, runs: int, batch_sizes: tuple[int, ...] = (1,)) -> None:
        """Run the graph on black frames so the first real frame does not pay for allocation."""
        for size in batch_sizes:
            dummy = np.zeros((size, self.info.height, self.info.width, self.info.channels), np.uint8)
            for _ in range(runs):
                self.infer(dummy)
