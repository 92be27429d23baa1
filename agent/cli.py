"""`agent watch` and `agent check`: the command line of the on-vehicle agent."""
from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Optional

import typer

from agent import cameras as camera_list
from agent.capture import probe
from agent.config import AgentConfig, load_agent_config
from agent.errors import AgentError
from agent.logs import setup_logging
from agent.model import Detector, verify_model
from agent.preflight import preflight
from agent.scoring import LabelledScore
from common.errors import UserError
from common.robustness import describe as describe_robustness
from common.robustness import describe_families

log = logging.getLogger("agent")

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None,
                  help="Watch a camera with an exported adversary-detector ONNX model and raise alerts.")

MODEL = typer.Option(None, "--model", metavar="FILE",
                     help="Exported .onnx model; MODEL.onnx.manifest.json must lie next to it. Default: the "
                          "installed model, the config's model.path (/usr/share/adversary-detector/model.onnx).")
CAMERA = typer.Option(None, "--camera", metavar="[NAME=]INDEX",
                      help="Camera index (/dev/videoINDEX), live; e.g. --camera front=0. Repeatable: one process "
                           "watches every camera given. Named camera<INDEX> without NAME=.")
SOURCE = typer.Option(None, "--source", metavar="[NAME=]URI",
                      help="Video file, rtsp:// or http(s):// URL, or image sequence such as frames/%04d.png; "
                           "e.g. --source rear=rtsp://10.0.0.12/stream. Repeatable. Named after the file or URL "
                           "without NAME=. Cameras given here replace the config's `cameras` list.")
CONFIG = typer.Option(None, "--config", metavar="YAML", help="Agent config (e.g. configs/agent.yaml); "
                      "defaults are used for everything it leaves out, and without it.")
SET = typer.Option(None, "--set", metavar="KEY=VALUE",
                   help="Override one config value, e.g. --set alerts.k=2 (repeatable).")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _load(config: Optional[Path], overrides: Optional[list[str]]) -> AgentConfig:
    try:
        return load_agent_config(config, overrides or [])
    except UserError as exc:
        _fail(str(exc))


def _model(model: Optional[Path], cfg: AgentConfig) -> Path:
    """--model, else the installed model (model.path); one error line when there is none."""
    if model is not None:
        return model
    if not cfg.model.path.is_file():
        _fail(f"no model given and none installed at {cfg.model.path} (model.path): give one with "
              "--model FILE, install it there (configs/adversary-detector-agent.service shows how) "
              "or set model.path in the config")
    return cfg.model.path


@app.command()
def watch(model: Path = MODEL, camera: Optional[list[str]] = CAMERA, source: Optional[list[str]] = SOURCE,
          config: Optional[Path] = CONFIG, set_: Optional[list[str]] = SET,
          max_frames: Optional[int] = typer.Option(None, "--max-frames", metavar="N", min=1,
                                                   help="Stop after N frames (default: until the source ends or SIGTERM)."),
          labels: Optional[Path] = typer.Option(None, "--labels", metavar="JSON",
                                                help="Replay of labelled footage: {\"adversarial\": [frame indices]} "
                                                     "(as `trainer demo-stream` writes); adds detection and false-alarm "
                                                     "rates to the closing summary, per burst kind with `kinds`, and "
                                                     "silent misclassifications with `classes`.")) -> None:
    """Watch every camera with one model and publish debounced alerts (until the sources end or SIGTERM)."""
    from agent.watch import Watch  # after config errors, so `--help` and bad configs stay fast

    cfg = _load(config, set_)
    model = _model(model, cfg)
    setup_logging(cfg.logging.level)
    stop = threading.Event()

    def on_signal(signum, _frame) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        info = verify_model(model, cfg.model.sha256, cfg.model.public_key)  # before any camera opens
        # Watch verifies the model again; pinned to the sha256 checked here, it can only load the
        # bytes whose signature verified, not a pair swapped in since.
        cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"sha256": info.sha256})})
        cameras = camera_list.resolve(cfg, camera or [], source or [])
        if labels and len(cameras) > 1:
            raise AgentError("--labels scores the replay of one camera; give one --source")
        score = LabelledScore.load(labels) if labels else None
        runner = Watch(cfg, model, cameras, stop=stop, score=score)
    except UserError as exc:
        _fail(str(exc))
    summary = runner.run(max_frames)
    lines = [f"summary: {summary.frames} frames in {summary.seconds:.1f} s ({summary.fps:.0f} fps), "
             f"{summary.alerts} alert(s), {summary.reconnects} reconnect(s), {summary.dropped} dropped, "
             f"{summary.unhealthy} not scored, threshold {runner.threshold:.4f}, provider {summary.provider}"]
    if runner.familiarity_threshold is not None:
        scored = sum(s.scored for s in summary.cameras.values())
        lines.append(f"unfamiliar scenes: {summary.unfamiliar}/{scored} scored frames"
                     + (f" = {summary.unfamiliar / scored:.1%}" if scored else "")
                     + " (not judged for alerts: p_adv means nothing on them)")
    if len(summary.cameras) > 1:
        lines += [f"  {name}: {s.frames} frames, {s.alerts} alert(s), {s.reconnects} reconnect(s), "
                  f"{s.dropped} dropped, {s.unhealthy} not scored, {s.unfamiliar} unfamiliar"
                  for name, s in summary.cameras.items()]
    lines += [f"INCOMPLETE: {why}" for why in summary.ended_early]
    typer.echo("\n".join(lines + (score.lines() if score else [])), err=True)
    if summary.ended_early:
        raise typer.Exit(1)


@app.command()
def check(model: Path = MODEL, camera: Optional[list[str]] = CAMERA, source: Optional[list[str]] = SOURCE,
          config: Optional[Path] = CONFIG, set_: Optional[list[str]] = SET) -> None:
    """Validate config, model (manifest sha256, pin, signature, metadata, graph), every camera, output paths,
    metrics endpoint and MQTT broker (reachable, credentials, TLS); print what `watch` would do."""
    from agent.watch import agent_name  # the broker is checked with the client id watch would use

    cfg = _load(config, set_)
    model = _model(model, cfg)
    setup_logging("WARNING")
    try:
        info = verify_model(model, cfg.model.sha256, cfg.model.public_key)
        cameras = camera_list.resolve(cfg, camera or [], source or [])
        detector = Detector(info, cfg.inference)
        probes = []
        for c in cameras:
            try:
                probes.append(probe(c.spec, cfg.capture))
            except AgentError as exc:
                raise AgentError(f"camera {c.name}: {exc}") from None
        broker = preflight(cfg, agent_name(cfg, cameras))
    except UserError as exc:
        _fail(str(exc))
    a, s = cfg.alerts, cfg.sinks
    threshold = a.threshold if a.threshold is not None else info.threshold
    sinks = [name for name, on in (("stdout", s.stdout), (f"jsonl {s.jsonl}", s.jsonl is not None),
                                   (f"mqtt {s.mqtt.host}:{s.mqtt.port} spool {s.mqtt.spool_path}", s.mqtt.enabled),
                                   (f"mcap {s.mcap.path} (every {s.mcap.every_n} frame(s) at scale {s.mcap.scale:g}, "
                                    f"new file past {s.mcap.max_mb:g} MB)", s.mcap.path is not None)) if on]
    lives = sum(c.spec.live for c in cameras)
    lines = [
        f"config:    {config or 'defaults'}" + (f" with {len(set_)} override(s)" if set_ else ""),
        f"model:     {info.path} ({info.size} bytes, sha256 {info.sha256}) ok, "
        + ("pinned by model.sha256" if cfg.model.sha256 else "not pinned (set model.sha256 to refuse any other)")
        + (f", signature verified with key {info.signed_by} (model.public_key)" if info.signed_by
           else ", signature not checked (set model.public_key to refuse unsigned models)"),
        f"           {info.metadata.get('dataset', '?')}, {len(info.class_names)} classes, "
        f"input {info.width}x{info.height}x{info.channels} {info.color_order}, "
        f"resize {info.metadata['resize_interpolation']}",
        f"robustness: {describe_robustness(info.metadata)}",
        *[f"           {row}" for row in describe_families(info.metadata)],
        f"inference: {detector.provider}, one session for {len(cameras)} camera(s): each batch takes the newest "
        f"frame of {lives} live camera(s)" + (f" and up to {cfg.inference.batch_size} file frames"
                                              if lives < len(cameras) else "")
        + f", waiting at most {cfg.inference.batch_timeout_ms:g} ms",
    ]
    for c, src in zip(cameras, probes):
        frames = f", {src['frame_count']} frames" if src["frame_count"] else ""
        lines.append(f"camera:    {c.name}: {c.spec} ({'live, newest frame only' if c.spec.live else 'every frame in order'}): "
                     f"{src['width']}x{src['height']}" + (f" at {src['fps']:.1f} fps" if src["fps"] > 0 else "")
                     + frames + " ok")
    lines += [
        f"alerts:    p_adv > {threshold:.4f} ({'config' if a.threshold is not None else 'model metadata'}) "
        f"in {a.k} of {a.n} frames, clear after {a.clear_after} below, cooldown {a.cooldown_frames} frames; "
        f"snapshots in {a.snapshot_dir}; "
        + (f"evidence ({a.evidence.pre_frames} frames before, {a.evidence.post_frames} after, lossless PNG) in "
           f"{a.evidence.dir}" if a.evidence.enabled else "no evidence (alerts.evidence.enabled is false)"),
        "familiarity: " + (f"frames scoring above {info.familiarity_threshold:.4g} raise scene_unfamiliar "
                           "instead of being judged" if info.familiarity_threshold is not None
                           else "none in this model (every frame is judged)"),
        f"sinks:     {', '.join(sinks) or 'none'}; output paths writable",
        f"metrics:   " + (f"http://{cfg.metrics.address}:{cfg.metrics.port}/metrics" if cfg.metrics.port else "off"),
    ] + ([f"mqtt:      {broker}"] if broker else [])
    typer.echo("\n".join(lines))


@app.command()
def replay(evidence: Path = typer.Argument(..., metavar="EVIDENCE_DIR",
                                           help="An alert's evidence folder (the `evidence.path` of its alert)."),
           model: Optional[Path] = typer.Option(None, "--model", metavar="FILE",
                                                help="Model to score with (default: the one the manifest names); "
                                                     "its sha256 must be the recorded one."),
           config: Optional[Path] = CONFIG, set_: Optional[list[str]] = SET) -> None:
    """Re-score every frame of an alert's evidence through ONNX Runtime: sha256 of each frame, p_adv
    recorded vs replayed. Exit 0 when all match within 1e-5; otherwise one error line and exit 2."""
    from agent.replay import TOLERANCE, replay as run_replay

    cfg = _load(config, set_)
    setup_logging("WARNING")
    try:
        manifest, manifest_sha, frames = run_replay(evidence, model, cfg.inference)
    except UserError as exc:
        _fail(str(exc))
    alert = manifest["alert"]
    lines = [f"evidence: {evidence} (manifest sha256 {manifest_sha})",
             f"alert:    {manifest['camera']} frame {alert['frame_index']} at {alert['time']}, p_adv {alert['p_adv']} "
             f"> {alert['threshold']}, predicted {alert['predicted_class']}",
             f"model:    {manifest['model']['path']} sha256 {manifest['model']['sha256']}",
             "   frame   p_adv recorded   p_adv replayed   |diff|"]
    lines += [f"{f.index:8d}   {f.recorded:14.8f}   {f.replayed:14.8f}   {abs(f.replayed - f.recorded):.1e}"
              + ("" if f.matches else "  MISMATCH") for f in frames]
    typer.echo("\n".join(lines))
    bad = [f.index for f in frames if not f.matches]
    if bad:
        _fail(f"{len(bad)} of {len(frames)} frames do not replay to their recorded p_adv within {TOLERANCE:g} "
              f"(frames {bad[:10]})")
    typer.echo(f"all {len(frames)} frames replay to their recorded p_adv within {TOLERANCE:g}; every frame's "
               "sha256 matches")


def main() -> None:
    """Console-script entry point."""
    app()
