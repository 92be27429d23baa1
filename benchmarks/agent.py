"""The multi-camera agent's targets, side by side in one run, on real footage over real RTSP.

Megamind.avi and tree.avi (OpenCV's samples) are encoded once as cameras send them (H.264,
768x576, 25 fps, looped) and served by GStreamer's RTSP server on 127.0.0.1 (tests/agent/
rtsp_server.py), one mount per camera. Then, one phase after the other on the same machine:

1. one `agent watch` process with N cameras vs N `agent watch` processes with one camera each,
   for the same time: frames scored per second and per CPU second (all processes together);
2. N cameras in one `Watch` in this process: decode-to-decision latency p50/p99, per-camera
   fps and drops, RSS at the start and end of a longer run (growth);
3. RTSP server restarts: time from the server listening again to the reopened stream and to
   the first frame after it.

    python benchmarks/agent.py --model runs/demo/model.onnx [--cameras 8] [--seconds 60] [--soak-seconds 300]
"""
from __future__ import annotations

import argparse
import logging
import os
import platform
import re
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "agent"))

from agent.cameras import resolve  # noqa: E402
from agent.config import load_agent_config  # noqa: E402
from agent.watch import STAGES, Watch  # noqa: E402
from conftest import free_port  # noqa: E402
from rtsp import RtspServer, encode, footage, missing  # noqa: E402

CLIPS = ("Megamind.avi", "tree.avi")
SIZE, FPS = (768, 576), 25.0
SUMMARY = re.compile(r"summary: (\d+) frames in ([\d.]+) s")


def overrides(work: Path, name: str) -> list[str]:
    """Quiet, side-effect-free outputs for a benchmark agent."""
    return ["sinks.stdout=false", "sinks.jsonl=null", "metrics.port=0", f"alerts.snapshot_dir={work / name}",
            "logging.stats_interval_s=1000000", "logging.level=WARNING"]


def rss_mb(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def run_agents(model: Path, groups: list[list[str]], seconds: float, work: Path) -> tuple[int, float, float]:
    """Run one `agent watch` per group of `--source` values for `seconds`; (frames, wall s, CPU s) of all."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    procs = []
    for i, sources in enumerate(groups):
        args = [sys.executable, "-m", "agent", "watch", "--model", str(model)]
        for source in sources:
            args += ["--source", source]
        for o in overrides(work, f"proc{i}") + ["logging.level=INFO"]:
            args += ["--set", o]
        procs.append(subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                      env={**os.environ, "PYTHONPATH": str(ROOT)}))
    logs = [[] for _ in procs]
    for p, log in zip(procs, logs):  # the clock starts once every agent is READY (start-up is not measured)
        for line in p.stderr:
            log.append(line)
            if "ready: watching" in line:
                break
        else:
            raise RuntimeError("agent ended before READY:\n" + "".join(log[-20:]))
    time.sleep(seconds)
    for p in procs:
        p.send_signal(signal.SIGTERM)
    frames, wall = 0, 0.0
    for p, log in zip(procs, logs):
        _, err = p.communicate(timeout=120)
        match = SUMMARY.search(err)
        if match is None:
            raise RuntimeError("agent gave no summary:\n" + "".join(log) + err[-2000:])
        frames += int(match.group(1))
        wall = max(wall, float(match.group(2)))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return frames, wall, cpu


def soak(model: Path, urls: dict[str, str], seconds: float, work: Path) -> dict:
    """N cameras in one in-process Watch: latency per frame, per-camera rates, RSS over time."""
    cfg = load_agent_config(None, overrides(work, "soak"))
    watch = Watch(cfg, model, resolve(cfg, sources=[f"{n}={u}" for n, u in urls.items()]), record=True)
    samples: list[tuple[float, float]] = []

    def sample() -> None:
        start = time.monotonic()
        while not watch.stop.wait(5.0):
            samples.append((time.monotonic() - start, rss_mb()))

    threading.Timer(seconds, watch.stop.set).start()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    summary = watch.run()
    reasons: dict[str, int] = {}
    for sample in watch.metrics.unhealthy.collect()[0].samples:  # one per camera and reason
        if sample.name.endswith("_total"):
            reasons[sample.labels["reason"]] = reasons.get(sample.labels["reason"], 0) + int(sample.value)
    return {"summary": summary, "rss": samples, "reasons": reasons}


def reconnects(model: Path, clip: Path, times: int, work: Path) -> list[tuple[float, float]]:
    """Restart the RTSP server `times` times; (reopen, first frame) seconds after it listens again."""
    server = RtspServer(free_port(), {"cam": clip})
    server.start()
    cfg = load_agent_config(None, overrides(work, "reconnect"))
    watch = Watch(cfg, model, resolve(cfg, sources=[f"cam={server.url('cam')}"]))
    runner = threading.Thread(target=watch.run)
    runner.start()
    camera = watch.cameras[0]
    out = []
    try:
        for _ in range(times):
            streaming = camera.stats.frames + 10
            while camera.stats.frames < streaming:
                time.sleep(0.01)
            server.stop()
            while camera.source.connected:
                time.sleep(0.01)
            time.sleep(1.0)  # the server stays away for a while, as a rebooting camera would
            server.start()
            back = time.monotonic()
            frames = camera.stats.frames
            while camera.source.reopened_at is None or camera.source.reopened_at < back:
                time.sleep(0.005)
            reopened = camera.source.reopened_at - back
            while camera.stats.frames == frames:
                time.sleep(0.005)
            out.append((reopened, time.monotonic() - back))
    finally:
        watch.stop.set()
        runner.join(30)
        server.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="exported .onnx (e.g. the main job's runs/demo/model.onnx)")
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60, help="length of each throughput phase")
    parser.add_argument("--soak-seconds", type=float, default=300, help="length of the latency/RSS run")
    parser.add_argument("--restarts", type=int, default=5, help="RTSP server restarts to time")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "agent-bench",
                        help="encoded clips are cached here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    why = missing()
    if why:
        sys.exit(f"cannot serve RTSP here: {why}")
    args.work.mkdir(parents=True, exist_ok=True)
    longest = max(args.seconds, args.soak_seconds) + 60
    clips = []
    for name in CLIPS:
        source = footage(name)
        if source is None:
            sys.exit(f"{name} not found: unpack opencv-doc (scripts/setup.sh)")
        out = args.work / f"{Path(name).stem}-{SIZE[0]}x{SIZE[1]}-{int(longest)}s.mkv"
        if not out.exists():
            import cv2

            cap = cv2.VideoCapture(str(source))
            frames = max(1, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))
            length = frames / (cap.get(cv2.CAP_PROP_FPS) or FPS)
            cap.release()
            encode(source, out, *SIZE, FPS, loops=int(longest / length) + 1)
        clips.append(out)

    server = RtspServer(free_port(), {f"cam{i}": clips[i % len(clips)] for i in range(args.cameras)})
    server.start()
    urls = {name: server.url(name) for name in server.mounts}
    try:
        one = run_agents(args.model, [[f"{n}={u}" for n, u in urls.items()]], args.seconds, args.work)
        many = run_agents(args.model, [[f"{n}={u}"] for n, u in urls.items()], args.seconds, args.work)
        result = soak(args.model, urls, args.soak_seconds, args.work)
    finally:
        server.stop()
    restarts = reconnects(args.model, clips[0], args.restarts, args.work)

    n = args.cameras
    print(f"machine:  {platform.machine()}, {os.cpu_count()} CPU cores visible, load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} at the end, Python {platform.python_version()}")
    print(f"model:    {args.model}; footage: {', '.join(CLIPS)} as H.264 {SIZE[0]}x{SIZE[1]} at {FPS:g} fps over "
          f"RTSP (GStreamer RTSP server, 127.0.0.1), {n} cameras")
    print(f"\n1. throughput, {args.seconds:g} s each, same cameras:")
    for label, (frames, wall, cpu) in (("one process, N cameras", one), (f"{n} processes, 1 camera each", many)):
        print(f"   {label:<30} {frames / wall:7.1f} frames/s  {frames / cpu:7.1f} frames per CPU-second  "
              f"({frames} frames, {cpu:.1f} CPU-s)")
    print(f"   ratio one/many: {one[0] / one[1] / (many[0] / many[1]):.2f}x frames/s, "
          f"{one[0] / one[2] / (many[0] / many[2]):.2f}x frames per CPU-second "
          f"(offered: {n * FPS:g} frames/s)")
    s = result["summary"]
    print(f"\n2. {n} cameras in one process for {s.seconds:.0f} s: {s.fps:.1f} frames/s scored in total, "
          f"{s.unhealthy} not scored by frame health {result['reasons']} (frozen: repeats from the clips' "
          f"frame-rate conversion to 25 fps), {s.unfamiliar} unfamiliar")
    for name, c in s.cameras.items():
        print(f"   {name}: {c.frames / s.seconds:5.1f} fps taken, {c.dropped} dropped by the newest-frame policy, "
              f"{c.reconnects} reconnects")
    print(f"   {'stage':<11} {'p50 ms':>8} {'p99 ms':>8}   (capture: in the decoder, including the wait for the "
          "next frame of a 25 fps stream)")
    for stage in STAGES:
        t = s.timings_ms[stage]
        print(f"   {stage:<11} {t.percentile(50):8.2f} {t.percentile(99):8.2f}")
    rss = result["rss"]
    if len(rss) >= 2:
        at, base = next(((t, r) for t, r in rss if t >= 30), rss[0])  # after start-up allocations
        print(f"   RSS {rss[0][1]:.1f} MB at {rss[0][0]:.0f} s, {base:.1f} MB at {at:.0f} s, {rss[-1][1]:.1f} MB at "
              f"{rss[-1][0]:.0f} s: growth {rss[-1][1] - base:+.1f} MB after {at:.0f} s")
    print(f"\n3. RTSP server restarts ({len(restarts)}): seconds from the server listening again to")
    print("   reopened: " + ", ".join(f"{r:.2f}" for r, _ in restarts)
          + f" (max {max(r for r, _ in restarts):.2f})")
    print("   first frame: " + ", ".join(f"{f:.2f}" for _, f in restarts)
          + f" (max {max(f for _, f in restarts):.2f})")


if __name__ == "__main__":
    main()
