"""Typed schema of `configs/agent.yaml`.

Every field has a default that is safe on a vehicle, so the agent runs without a config
file; `load_agent_config` reads the YAML and `--set key=value` overrides through the
shared loader, which turns any bad value into one line naming the key and its YAML line.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from common.config import Schema, load_config


def not_below(field: str, other: str):
    """A validator making `field` >= the earlier field `other`.

    It sits on the later field, so the error names (and points at) that key.
    """
    def check(cls, value: float, info: ValidationInfo) -> float:
        lower = info.data.get(other)
        if lower is not None and value < lower:
            raise ValueError(f"must be >= {other} ({lower})")
        return value

    return field_validator(field)(classmethod(check))


CAMERA_NAME = r"^[A-Za-z0-9_.-]+$"  # safe in MQTT topics, metric labels and file names


def check_topic(value: str) -> str:
    """An MQTT topic to publish on: only `{camera}` substituted, no wildcards, not empty."""
    try:
        topic = value.format(camera="camera0")
    except (KeyError, IndexError, ValueError):
        raise ValueError("only {camera} may appear in braces") from None
    if not topic:
        raise ValueError("must not be empty")
    if "+" in topic or "#" in topic:
        raise ValueError("must not contain the wildcards + or # (they are for subscribing)")
    if "\0" in topic or len(topic.encode()) > 65535:
        raise ValueError("is not a valid MQTT topic")
    return value


Topic = Annotated[str, AfterValidator(check_topic)]


class ModelConfig(Schema):
    """Which model the agent may run."""

    # The model's expected sha256: a model (and manifest) swapped for any other pair is refused.
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    # Ed25519 public key (PEM, `openssl pkey -pubout`): only a model whose MODEL.onnx.sig it verifies
    # runs, so a vehicle accepts each newly signed model without editing its sha256 pin.
    public_key: Path | None = None
    # The installed model `agent watch`/`check` run when no --model is given: where the unit's
    # install step puts it (root-owned, read-only to the service).
    path: Path = Path("/usr/share/adversary-detector/model.onnx")


class CameraConfig(Schema):
    """One camera of the vehicle: its name in events, metrics and MQTT topics, and what to open."""

    # None: derived from the source (camera<INDEX>, or the file/URL name).
    name: str | None = Field(None, min_length=1, pattern=CAMERA_NAME)
    source: int | str  # camera index (/dev/videoINDEX), rtsp:// or http(s):// URL, video file, image sequence
    mode: Literal["auto", "live", "file"] | None = None  # None: capture.mode


class CaptureConfig(Schema):
    """Opening, reading and reconnecting the video source."""

    # auto: camera indices and network URLs are live, files and image sequences are not.
    mode: Literal["auto", "live", "file"] = "auto"
    open_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(5.0, gt=0)
    reconnect_initial_s: float = Field(0.25, gt=0)
    # Cameras sit on the vehicle's own network, so retrying often is cheap; the cap bounds
    # how long a camera that is back goes unnoticed (reconnect target: 2 s).
    reconnect_max_s: float = Field(1.0, gt=0)
    # A file that fails this many times in a row at the same frame is treated as ended.
    file_retries: int = Field(3, ge=1)
    # Frames decoded ahead of inference for file sources (bounded, so memory is too).
    file_queue: int = Field(16, ge=1)
    # Requested camera format; None leaves the driver's default.
    width: int | None = Field(None, gt=0)
    height: int | None = Field(None, gt=0)
    fps: float | None = Field(None, gt=0)

    _backoff_order = not_below("reconnect_max_s", "reconnect_initial_s")


class InferenceConfig(Schema):
    """ONNX Runtime session settings."""

    # auto: TensorRT, then CUDA, then CPU, the first that really loads is kept; tensorrt, cuda
    # or cpu: that provider or an error, so a GPU vehicle never runs on its CPU unnoticed.
    provider: Literal["auto", "tensorrt", "cuda", "cpu"] = "auto"
    intra_op_threads: int = Field(0, ge=0)  # 0: ONNX Runtime's default (one per core)
    inter_op_threads: int = Field(0, ge=0)
    # Busy-waiting worker threads cut latency but burn a core that capture needs on small CPUs.
    spin: bool = False
    # Most frames per inference call taken from file sources; every live camera adds its newest frame.
    batch_size: int = Field(8, ge=1, le=256)
    # After the first frame of a batch arrives, wait at most this long for the other live
    # cameras' next frames (nvstreammux's batched-push-timeout); 0: run with what is there.
    batch_timeout_ms: float = Field(20.0, ge=0)
    warmup_runs: int = Field(3, ge=0)
    # TensorRT engine cache, outside the agent's writable state; engines live in a subfolder per
    # model sha256, GPU name and TensorRT version, so none is ever used for another of them.
    trt_cache_dir: Path = Path("/var/cache/adversary-detector/trt")


class HealthConfig(Schema):
    """Frames that show no scene (a camera fault) are not scored; the camera is reported degraded."""

    black_level: int = Field(16, ge=0, le=255)  # a pixel at or below this is black
    saturated_level: int = Field(250, ge=0, le=255)  # a pixel at or above this is saturated
    share: float = Field(0.98, gt=0, le=1)  # a frame is black/saturated when this share of its pixels is
    uniform_std: float = Field(2.0, ge=0)  # grey-level spread below this: a flat fill, not a picture
    degrade_after: int = Field(3, ge=1)  # consecutive unhealthy frames before camera_degraded
    recover_after: int = Field(3, ge=1)  # consecutive healthy frames before it clears


class EvidenceConfig(Schema):
    """Lossless frames around each alert, with a manifest that `agent replay` re-scores."""

    enabled: bool = True
    # One folder per alert: PNG frames and manifest.json.
    dir: Path = Path("alerts/evidence")
    # Scored frames kept per camera before an alert (in memory: pre_frames x frame size x cameras)
    # and collected after it; the alert's own frame is always in.
    pre_frames: int = Field(8, ge=0, le=1000)
    post_frames: int = Field(8, ge=0, le=1000)
    # Clips waiting for the writer thread: when it falls behind (slow or full disk) the newest is
    # dropped and counted, so scoring never waits for the disk.
    queue: int = Field(4, ge=1, le=1000)
    # Retention, as for snapshots: the oldest folders go first beyond either bound; below
    # alerts.min_free_mb of free space no folder is written.
    max_mb: float = Field(2000.0, gt=0)
    max_age_days: float = Field(30.0, gt=0)


class AlertConfig(Schema):
    """Alert threshold and debouncing (k of the last n frames raise, m below clear)."""

    threshold: float | None = Field(None, ge=0, le=1)  # None: the model's `threshold` metadata
    k: int = Field(3, ge=1)
    n: int = Field(5, ge=1)
    clear_after: int = Field(10, ge=1)
    # Frames after an alert clears during which no new alert is raised.
    cooldown_frames: int = Field(30, ge=0)
    snapshot_dir: Path = Path("alerts/snapshots")
    # Retention: the oldest snapshots go first when they exceed either bound.
    snapshot_max_mb: float = Field(500.0, gt=0)
    snapshot_max_age_days: float = Field(30.0, gt=0)
    # Free-space guard: no snapshot is written when less than this is left on its filesystem,
    # so the alert log and the MQTT spool keep room.
    min_free_mb: float = Field(50.0, ge=0)
    evidence: EvidenceConfig = EvidenceConfig()

    _k_le_n = not_below("n", "k")


class MqttConfig(Schema):
    """MQTT sink: QoS 1 alerts from a durable spool, retained online/offline status."""

    enabled: bool = False
    host: str = "localhost"
    port: int = Field(1883, ge=1, le=65535)
    client_id: str | None = None  # None: adversary-detector-<camera>
    username: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None  # set (or cert_file) to use TLS
    cert_file: Path | None = None  # client certificate, for brokers that require one
    key_file: Path | None = None  # its private key, unless cert_file holds it
    # {camera} is replaced by the alerting camera's name in alert_topic, by the agent's `name` in status_topic.
    alert_topic: Topic = "adversary-detector/{camera}/alerts"
    status_topic: Topic = "adversary-detector/{camera}/status"
    keepalive_s: int = Field(30, ge=5)
    spool_path: Path = Path("mqtt-spool.sqlite3")
    reconnect_min_s: float = Field(1.0, gt=0)
    # The cap of the reconnect backoff, and so the longest delay after the broker is back.
    reconnect_max_s: float = Field(5.0, gt=0)
    # On shutdown, how long to keep delivering spooled alerts before leaving them for the next start.
    flush_timeout_s: float = Field(10.0, ge=0)

    _backoff_order = not_below("reconnect_max_s", "reconnect_min_s")

    @model_validator(mode="after")
    def _credentials_complete(self) -> "MqttConfig":
        if self.password_file is not None and not self.username:
            raise ValueError("password_file needs username")
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file needs cert_file")
        return self

    @property
    def tls(self) -> bool:
        """Whether the connection uses TLS."""
        return self.ca_file is not None or self.cert_file is not None


class McapConfig(Schema):
    """MCAP recording for Foxglove and ROS 2 tools: scored frames, their scores, alerts and health events."""

    # None: no recording. Files are PATH with a number added (agent.mcap -> agent-000001.mcap, ...),
    # so a restart starts a new file instead of overwriting one; the folder must exist.
    path: Path | None = None
    # Rotation: once a file passes this size it is closed and the next number is started.
    max_mb: float = Field(1024.0, gt=0)
    # Every Nth scored frame of each camera is recorded as an image (scores are recorded for all).
    # The defaults record 5 fps of a 25 fps camera at half size: on 8 cameras and 2 cores that cost
    # no frame rate, while every frame at full size cost 12% of it (docs/RESULTS.md, issue 25 item 4).
    every_n: int = Field(5, ge=1)
    # Recorded images are downscaled by this factor (area interpolation); 1: full resolution.
    scale: float = Field(0.5, gt=0, le=1)


class SinkConfig(Schema):
    """Where alert events go."""

    stdout: bool = True
    jsonl: Path | None = Path("alerts/alerts.jsonl")
    # Retention: past this size the file is renamed to FILE.1 (replacing the previous one).
    jsonl_max_mb: float = Field(100.0, gt=0)
    mqtt: MqttConfig = MqttConfig()
    mcap: McapConfig = McapConfig()


class MetricsConfig(Schema):
    """Prometheus endpoint."""

    port: int = Field(9108, ge=0, le=65535)  # 0 disables the endpoint
    address: str = "127.0.0.1"


class LoggingConfig(Schema):
    """Log verbosity and the periodic one-line status."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    stats_interval_s: float = Field(60.0, gt=0)


class AgentConfig(Schema):
    """The whole `agent` configuration."""

    model: ModelConfig = ModelConfig()
    # The vehicle's cameras, all watched by one process with one model; `--camera`/`--source` replace them.
    cameras: list[CameraConfig] = []
    # This agent's name for MQTT (client id, status topic); None: the camera's name with one
    # camera, the host name with several.
    name: str | None = Field(None, min_length=1, pattern=CAMERA_NAME)
    capture: CaptureConfig = CaptureConfig()
    inference: InferenceConfig = InferenceConfig()
    health: HealthConfig = HealthConfig()
    alerts: AlertConfig = AlertConfig()
    sinks: SinkConfig = SinkConfig()
    metrics: MetricsConfig = MetricsConfig()
    logging: LoggingConfig = LoggingConfig()


def load_agent_config(path: str | Path | None, overrides: list[str] = ()) -> AgentConfig:
    """Load and validate the agent config; raises `common.config.ConfigError` with one line."""
    return load_config(AgentConfig, path, list(overrides))
