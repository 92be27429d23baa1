"""`agent watch` and `agent check`: the command line of the on-vehicle agent."""
from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Optional

import typer

from agent.capture import parse_source, probe
from agent.config import AgentConfig, load_agent_config
from agent.errors import AgentError
from agent.logs import setup_logging
from agent.model import Detector, verify_model
from agent.scoring import LabelledScore
from common.config import ConfigError

log = logging.getLogger("agent")

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None,
                  help="Watch a camera with an exported adversary-detector ONNX model and raise alerts.")

MODEL = typer.Option(..., "--model", metavar="FILE",
                     help="Exported .onnx model; MODEL.onnx.manifest.json must lie next to it.")
CAMERA = typer.Option(None, "--camera", metavar="INDEX", help="Camera index (/dev/videoINDEX). Live source.")
SOURCE = typer.Option(None, "--source", metavar="URI",
                      help="Video file, rtsp:// or http(s):// URL, or image sequence such as frames/%04d.png.")
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
    except ConfigError as exc:
        _fail(str(exc))


@app.command()
def watch(model: Path = MODEL, camera: Optional[int] = CAMERA, source: Optional[str] = SOURCE,
          config: Optional[Path] = CONFIG, set_: Optional[list[str]] = SET,
          max_frames: Optional[int] = typer.Option(None, "--max-frames", metavar="N", min=1,
                                                   help="Stop after N frames (default: until the source ends or SIGTERM)."),
          labels: Optional[Path] = typer.Option(None, "--labels", metavar="JSON",
                                                help="Replay of labelled footage: {\"adversarial\": [frame indices]} "
                                                     "(as `trainer demo-stream` writes); adds detection and false-alarm "
                                                     "rates to the closing summary.")) -> None:
    """Run the detector on every frame and publish debounced alerts (until the source ends or SIGTERM)."""
    from agent.watch import Watch  # after config errors, so `--help` and bad configs stay fast

    cfg = _load(config, set_)
    setup_logging(cfg.logging.level)
    stop = threading.Event()

    def on_signal(signum, _frame) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        spec = parse_source(camera, source, cfg.capture.mode)
        score = LabelledScore.load(labels) if labels else None
        runner = Watch(cfg, model, spec, stop=stop, score=score)
    except AgentError as exc:
        _fail(str(exc))
    summary = runner.run(max_frames)
    lines = [f"summary: {summary.frames} frames in {summary.seconds:.1f} s ({summary.fps:.0f} fps), "
             f"{summary.alerts} alert(s), {summary.reconnects} reconnect(s), {summary.dropped} dropped, "
             f"threshold {runner.threshold:.4f}, provider {summary.provider}"]
    typer.echo("\n".join(lines + (score.lines() if score else [])), err=True)


@app.command()
def check(model: Path = MODEL, camera: Optional[int] = CAMERA, source: Optional[str] = SOURCE,
          config: Optional[Path] = CONFIG, set_: Optional[list[str]] = SET) -> None:
    """Validate config, model (manifest sha256, metadata, graph) and source; print what `watch` would do."""
    cfg = _load(config, set_)
    setup_logging("WARNING")
    try:
        spec = parse_source(camera, source, cfg.capture.mode)
        info = verify_model(model)
        detector = Detector(info, cfg.inference)
        src = probe(spec, cfg.capture)
    except AgentError as exc:
        _fail(str(exc))
    a, s = cfg.alerts, cfg.sinks
    threshold = a.threshold if a.threshold is not None else info.threshold
    sinks = [name for name, on in (("stdout", s.stdout), (f"jsonl {s.jsonl}", s.jsonl is not None),
                                   (f"mqtt {s.mqtt.host}:{s.mqtt.port} spool {s.mqtt.spool_path}", s.mqtt.enabled)) if on]
    frames = f", {src['frame_count']} frames" if src["frame_count"] else ""
    lines = [
        f"config:    {config or 'defaults'}" + (f" with {len(set_)} override(s)" if set_ else ""),
        f"model:     {info.path} ({info.size} bytes, sha256 {info.sha256}) ok",
        f"           {info.metadata.get('dataset', '?')}, {len(info.class_names)} classes, "
        f"input {info.width}x{info.height}x{info.channels} {info.color_order}, "
        f"resize {info.metadata['resize_interpolation']}",
        f"inference: {detector.provider}, batch {1 if spec.live else cfg.inference.batch_size}",
        f"source:    {spec} ({'live, newest frame only' if spec.live else 'every frame in order'}): "
        f"{src['width']}x{src['height']}" + (f" at {src['fps']:.1f} fps" if src["fps"] > 0 else "") + frames,
        f"camera:    {cfg.camera.name or spec.label}",
        f"alerts:    p_adv > {threshold:.4f} ({'config' if a.threshold is not None else 'model metadata'}) "
        f"in {a.k} of {a.n} frames, clear after {a.clear_after} below, cooldown {a.cooldown_frames} frames; "
        f"snapshots in {a.snapshot_dir}",
        f"sinks:     {', '.join(sinks) or 'none'}",
        f"metrics:   " + (f"http://{cfg.metrics.address}:{cfg.metrics.port}/metrics" if cfg.metrics.port else "off"),
    ]
    typer.echo("\n".join(lines))


def main() -> None:
    """Console-script entry point."""
    app()
