"""End-to-end throughput and per-frame latency of `agent watch` on a real video file.

Runs the same `Watch` loop the agent runs (reader thread, area resize, ONNX Runtime,
debouncing, alert sinks) over the whole video and prints frames/s and per-frame latency
p50/p99 for each stage. Without --model it builds a model with the layer shapes of the
CIFAR ResNet-32 classifier plus an AD(2) detector (random weights, same cost) using the
test fixture builder, and says so in its output.

    python benchmarks/agent.py --video /path/to/vtest.avi [--model MODEL.onnx] [--repeat 3]
"""
from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.capture import parse_source  # noqa: E402
from agent.config import load_agent_config  # noqa: E402
from agent.model import verify_model  # noqa: E402
from agent.watch import STAGES, Watch  # noqa: E402

DEFAULT_VIDEO = "/tmp/opencv-doc/usr/share/doc/opencv-doc/examples/data/vtest.avi"


def fixture_builder():
    """tests/agent/fixture_model.py, loaded by path (tests/ is not a package)."""
    spec = importlib.util.spec_from_file_location("fixture_model", ROOT / "tests" / "agent" / "fixture_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", default=DEFAULT_VIDEO, help="video file to watch (default: OpenCV's vtest.avi)")
    parser.add_argument("--model", type=Path, help="exported .onnx (default: ResNet-32-shaped fixture)")
    parser.add_argument("--repeat", type=int, default=3, help="passes over the video (default 3)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="agent config override, e.g. --set inference.batch_size=16 (repeatable)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.model is None:
            model = fixture_builder().build_resnet32_model(tmp / "resnet32-fixture.onnx")
            model_desc = "ResNet-32-shaped fixture + AD(2) detector, random weights (tests/agent/fixture_model.py)"
        else:
            model, model_desc = args.model, "given"
        info = verify_model(model)
        overrides = ["sinks.stdout=false", f"sinks.jsonl={tmp / 'alerts.jsonl'}", "metrics.port=0",
                     f"alerts.snapshot_dir={tmp / 'snapshots'}", "logging.stats_interval_s=1000000",
                     *args.overrides]
        cfg = load_agent_config(None, overrides)
        spec = parse_source(None, args.video)
        runs, timings = [], {stage: [] for stage in STAGES}
        for _ in range(args.repeat):
            summary = Watch(cfg, model, spec, record=True).run()
            runs.append(summary)
            for stage in STAGES:
                timings[stage] += summary.timings_ms[stage]

    first = runs[0]
    print(f"model:    {model} ({model_desc}), sha256 {info.sha256[:16]}, input {info.width}x{info.height}")
    print(f"video:    {args.video}, {first.frames} frames per pass")
    print(f"machine:  {platform.machine()}, {os.cpu_count()} CPU cores visible, {platform.python_version()}")
    print(f"runtime:  {first.provider}, batch {cfg.inference.batch_size}, intra-op threads "
          f"{cfg.inference.intra_op_threads or 'default'}, spin {cfg.inference.spin}")
    print("frames/s: " + ", ".join(f"{r.fps:.0f}" for r in runs)
          + f" (median {statistics.median(r.fps for r in runs):.0f}); alerts per pass {first.alerts}")
    print(f"{'stage':<11} {'p50 ms':>8} {'p99 ms':>8}   per frame (batch stages: batch time / batch size)")
    for stage in STAGES:
        values = np.asarray(timings[stage])
        print(f"{stage:<11} {np.percentile(values, 50):8.3f} {np.percentile(values, 99):8.3f}")


if __name__ == "__main__":
    main()
