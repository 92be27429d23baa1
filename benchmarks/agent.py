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

With --providers (e.g. `cpu cuda`, as benchmarks/gpu_agent.sh runs it on a lent GPU) it compares
ONNX Runtime providers instead, with file sources, since RTSP decoding is CPU-bound and would not
measure the provider. Per provider, one after the other:

1. N cameras from the clips, looped (opened live: each decodes as fast as it can and starts again at
   its end; the agent takes the newest frame): seconds from `Watch()` to READY, frames/s, stage p50/p99;
2. inference alone on prepared footage frames, interleaved across providers: session and warm-up
   time, batch-1 and batch-8 latency p50/p99;
3. the demo stream (`trainer demo-stream`): max |p_adv - the first provider's|, threshold decisions
   and the alerts of a `Watch` over it compared with the first provider's.

    python benchmarks/agent.py --model runs/demo/model.onnx [--cameras 8] [--seconds 60] [--soak-seconds 300]
    python benchmarks/agent.py --model runs/demo/model.onnx --providers cpu cuda [--seconds 20] [--stream DIR]

With --mcap EVERY_N:SCALE ... it measures the cost of MCAP recording (`sinks.mcap`) instead: the N RTSP
cameras in one in-process `Watch` without recording and with each given `every_n` and `scale`, the
variants alternating for --rounds rounds of --seconds each, so that drift on the machine falls on all
of them alike: scored frames/s per camera, end-to-end p50/p99, CPU time, and what was recorded.

    python benchmarks/agent.py --model runs/demo/model.onnx --mcap 5:0.5 1:1 [--seconds 30] [--rounds 2]

With --evidence PRE:POST it measures the cost of alert evidence (`alerts.evidence`) the same way: the N
cameras with evidence off and with PRE frames before and POST after each alert, under one alert per
camera every --alert-period seconds (staggered across cameras). The footage raises no alert of its
own, so `PeriodicAlerts` makes those alerts (the same in both variants, snapshots included); the
evidence path itself (ring buffers, clips, the PNG writer thread, manifests) is the agent's own.

    python benchmarks/agent.py --model runs/demo/model.onnx --evidence 8:8 [--seconds 30] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # the end of an image sequence or a looped file is not news

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "agent"))

from agent.cameras import resolve  # noqa: E402
from agent.config import load_agent_config  # noqa: E402
from agent.model import Detector, gpu_name, verify_model  # noqa: E402
from agent.timings import STAGES, LatencyHistogram  # noqa: E402
from agent.watch import Watch  # noqa: E402
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


def side_by_side(model: Path, urls: dict[str, str], variants: dict[str, list[str]], seconds: float, rounds: int,
                 work: Path, after=None, watch_class: type[Watch] = Watch) -> dict[str, dict]:
    """Each variant (config overrides) as the N cameras in one in-process Watch for `seconds`, the variants
    alternating for `rounds` rounds. Per variant: frames taken and scored, run seconds, CPU seconds of the
    process (decoders, inference, observers' threads), dropped frames, stage histograms over all rounds,
    and `after(name, watch)` of each round."""
    out = {name: {"frames": 0, "scored": 0, "seconds": 0.0, "cpu": 0.0, "dropped": 0, "after": [],
                  "timings": {stage: LatencyHistogram() for stage in STAGES}} for name in variants}
    for _ in range(rounds):
        for name, extra in variants.items():
            cfg = load_agent_config(None, overrides(work, "side") + extra)
            watch = watch_class(cfg, model, resolve(cfg, sources=[f"{n}={u}" for n, u in urls.items()]), record=True)
            threading.Timer(seconds, watch.stop.set).start()
            cpu = time.process_time()
            summary = watch.run()
            r = out[name]
            r["cpu"] += time.process_time() - cpu
            r["frames"] += summary.frames
            r["scored"] += sum(c.scored for c in summary.cameras.values())
            r["seconds"] += summary.seconds
            r["dropped"] += summary.dropped
            for stage, h in summary.timings_ms.items():
                r["timings"][stage].counts += h.counts
                r["timings"][stage].count += h.count
            if after is not None:
                r["after"].append(after(name, watch))
    return out


def mcap_cost(model: Path, urls: dict[str, str], settings: list[str], seconds: float, rounds: int, work: Path) -> None:
    """Print the cost of `sinks.mcap` at each EVERY_N:SCALE setting next to no recording."""
    folder = work / "mcap"
    variants = {"no recording": []}
    for setting in settings:
        every_n, scale = setting.split(":")
        variants[f"MCAP every {every_n}, scale {scale}"] = [
            f"sinks.mcap.path={folder / 'rec.mcap'}", f"sinks.mcap.every_n={every_n}", f"sinks.mcap.scale={scale}"]

    def after(name: str, watch: Watch) -> dict:
        def counts(counter) -> dict[str, float]:
            return {s.labels[next(iter(s.labels))]: s.value for s in counter.collect()[0].samples
                    if s.name.endswith("_total")}
        recorded = {"written": counts(watch.metrics.mcap_written), "lost": counts(watch.metrics.mcap_errors),
                    "bytes": sum(p.stat().st_size for p in folder.glob("*.mcap")) if folder.exists() else 0}
        shutil.rmtree(folder, ignore_errors=True)  # each round starts on an empty folder, and the disk keeps room
        folder.mkdir(parents=True)
        return recorded

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    result = side_by_side(model, urls, variants, seconds, rounds, work, after)
    n = len(urls)
    print(f"\nMCAP cost: {n} cameras, {rounds} round(s) of {seconds:g} s per variant, variants alternating")
    print(f"   {'variant':<28} {'scored fps/camera':>17} {'e2e p50 ms':>10} {'e2e p99 ms':>10} "
          f"{'CPU ms/frame':>12} {'dropped/s':>9} {'MCAP MB/s':>9} {'images/s':>8} {'scores/s':>8}  lost")
    for name, r in result.items():
        t = r["timings"]["end_to_end"]
        written = {k: sum(a["written"].get(k, 0) for a in r["after"]) for k in ("image", "score")}
        lost = {}
        for a in r["after"]:
            for reason, v in a["lost"].items():
                lost[reason] = lost.get(reason, 0) + int(v)
        mb = sum(a["bytes"] for a in r["after"]) / (1 << 20)
        print(f"   {name:<28} {r['scored'] / r['seconds'] / n:17.2f} {t.percentile(50):10.1f} {t.percentile(99):10.1f} "
              f"{r['cpu'] / max(r['frames'], 1) * 1e3:12.2f} {r['dropped'] / r['seconds']:9.1f} "
              f"{mb / r['seconds']:9.2f} {written['image'] / r['seconds']:8.1f} {written['score'] / r['seconds']:8.1f}  "
              f"{lost or '-'}")


class PeriodicAlerts(Watch):
    """A Watch that raises one alert per camera every `period_s`, staggered across the cameras, and no
    other: the evidence benchmark's alert load on footage that gives none. Every frame is judged
    (familiarity off) and only the scheduled ones are over the threshold."""

    period_s = 10.0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.familiarity_threshold = float("inf")
        self._due: dict[str, float] = {}

    def _decide(self, camera, frame, probs, p_adv):
        names = [c.name for c in self.cameras]
        due = self._due.setdefault(camera.name, frame.captured_at
                                   + (names.index(camera.name) + 1) * self.period_s / len(names))
        forced = frame.captured_at >= due
        while self._due[camera.name] <= frame.captured_at:
            self._due[camera.name] += self.period_s
        threshold, self.threshold = self.threshold, (-1.0 if forced else 2.0)
        try:
            return super()._decide(camera, frame, probs, p_adv)
        finally:
            self.threshold = threshold


def evidence_cost(model: Path, urls: dict[str, str], setting: str, period_s: float, seconds: float, rounds: int,
                  work: Path) -> None:
    """Print the cost of `alerts.evidence` (PRE:POST frames) next to none, under periodic alerts."""
    pre, post = setting.split(":")
    folder = work / "evidence"
    alerting = ["alerts.k=1", "alerts.n=1", "alerts.clear_after=1", "alerts.cooldown_frames=0"]
    variants = {"no evidence": alerting + ["alerts.evidence.enabled=false"],
                f"evidence {pre}+{post}": alerting + [f"alerts.evidence.dir={folder}", f"alerts.evidence.pre_frames={pre}",
                                                      f"alerts.evidence.post_frames={post}"]}

    def after(name: str, watch: Watch) -> dict:
        m = watch.metrics
        kept = {"alerts": watch.summary.alerts, "written": m.evidence_written._value.get(),
                "dropped": {s.labels["reason"]: int(s.value) for s in m.evidence_dropped.collect()[0].samples
                            if s.name.endswith("_total")},
                "bytes": sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.exists() else 0,
                "frames": len(list(folder.rglob("*.png"))) if folder.exists() else 0}
        shutil.rmtree(folder, ignore_errors=True)  # each round starts on an empty folder
        return kept

    PeriodicAlerts.period_s = period_s
    shutil.rmtree(folder, ignore_errors=True)
    result = side_by_side(model, urls, variants, seconds, rounds, work, after, PeriodicAlerts)
    n = len(urls)
    print(f"\nevidence cost: {n} cameras, one alert per camera every {period_s:g} s, {rounds} round(s) of "
          f"{seconds:g} s per variant, variants alternating")
    print(f"   {'variant':<16} {'scored fps/camera':>17} {'e2e p50 ms':>10} {'e2e p99 ms':>10} {'CPU ms/frame':>12} "
          f"{'dropped/s':>9} {'alerts':>6} {'written':>7} {'PNG frames':>10} {'MB':>6}  evidence dropped")
    base = None
    for name, r in result.items():
        t = r["timings"]["end_to_end"]
        fps, p99 = r["scored"] / r["seconds"] / n, t.percentile(99)
        a = r["after"]
        dropped: dict[str, int] = {}
        for kept in a:
            for reason, v in kept["dropped"].items():
                dropped[reason] = dropped.get(reason, 0) + v
        print(f"   {name:<16} {fps:17.2f} {t.percentile(50):10.1f} {p99:10.1f} "
              f"{r['cpu'] / max(r['frames'], 1) * 1e3:12.2f} {r['dropped'] / r['seconds']:9.1f} "
              f"{sum(k['alerts'] for k in a):6d} {sum(k['written'] for k in a):7.0f} {sum(k['frames'] for k in a):10d} "
              f"{sum(k['bytes'] for k in a) / (1 << 20):6.1f}  {dropped or '-'}")
        if base is None:
            base = fps, p99
        else:
            print(f"   with evidence: frames/s per camera {fps / base[0] - 1:+.1%} (target within 5%), "
                  f"p99 {p99 / base[1] - 1:+.1%} (target within 10%)")


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


def looped_cameras(model: Path, provider: str, clips: list[Path], n: int, seconds: float, work: Path) -> tuple:
    """N cameras from `clips`, looped, in one Watch on `provider`: (seconds to READY, Summary, mean batch)."""
    cfg = load_agent_config(None, overrides(work, f"cameras-{provider}") + [
        f"inference.provider={provider}", "capture.mode=live", "capture.reconnect_initial_s=0.01",
        "capture.reconnect_max_s=0.05"])
    start = time.perf_counter()
    watch = Watch(cfg, model, resolve(cfg, sources=[f"cam{i}={clips[i % len(clips)]}" for i in range(n)]), record=True)
    ready = time.perf_counter() - start
    threading.Timer(seconds, watch.stop.set).start()
    summary = watch.run()
    batch = {s.name.rsplit("_", 1)[1]: s.value for s in watch.metrics.batch_size.collect()[0].samples
             if s.name.endswith(("_sum", "_count"))}
    return ready, summary, batch["sum"] / max(1, batch["count"])


def latencies(model: Path, providers: list[str], clip: Path, iters: int) -> dict:
    """Per provider: session and warm-up seconds, and (p50, p99) ms of batch-1 and batch-8 calls.

    The calls go round-robin in chunks of 10 per provider and batch size, so load from other
    processes lands on every provider alike.
    """
    info = verify_model(model)
    out, detectors = {}, {}
    for p in providers:
        cfg = load_agent_config(None, [f"inference.provider={p}"]).inference
        t0 = time.perf_counter()
        detectors[p] = Detector(info, cfg)
        t1 = time.perf_counter()
        detectors[p].warmup(cfg.warmup_runs, tuple(range(1, 9)))  # as the agent warms 8 cameras
        out[p] = {"session_s": t1 - t0, "warmup_s": time.perf_counter() - t1}
    cap = cv2.VideoCapture(str(clip))
    frames = [cap.read()[1] for _ in range(8)]
    cap.release()
    batches = {8: np.stack([detectors[providers[0]].prepare(f) for f in frames])}
    batches[1] = batches[8][:1]
    ms = {(p, b): [] for p in providers for b in batches}
    for _ in range(max(1, iters // 10)):
        for p, detector in detectors.items():
            for b, batch in batches.items():
                for _ in range(10):
                    t = time.perf_counter()
                    detector.infer(batch)
                    ms[p, b].append((time.perf_counter() - t) * 1e3)
    for (p, b), values in ms.items():
        out[p][b] = (np.percentile(values, 50), np.percentile(values, 99))
    return out


def parity(model: Path, providers: list[str], stream: Path, work: Path) -> dict:
    """Per provider on the demo stream: p_adv of every frame (the agent's preprocessing, batches of 8)
    and the frame indices of the alerts a Watch over the stream raises."""
    pattern = str(stream / "frames" / "%05d.png")
    cap = cv2.VideoCapture(pattern, cv2.CAP_IMAGES)  # as the agent opens a sequence
    frames = []
    while (frame := cap.read()[1]) is not None:
        frames.append(frame)
    cap.release()
    info = verify_model(model)
    out = {}
    for p in providers:
        detector = Detector(info, load_agent_config(None, [f"inference.provider={p}"]).inference)
        p_adv = np.concatenate([detector.infer(np.stack([detector.prepare(f) for f in frames[i:i + 8]]))[1]
                                for i in range(0, len(frames), 8)])
        alerts = work / f"alerts-{p}.jsonl"
        alerts.unlink(missing_ok=True)
        cfg = load_agent_config(None, overrides(work, f"stream-{p}") + [f"inference.provider={p}", f"sinks.jsonl={alerts}"])
        Watch(cfg, model, resolve(cfg, sources=[f"demo={pattern}"])).run()
        events = [json.loads(line) for line in alerts.read_text().splitlines()] if alerts.exists() else []
        out[p] = {"p_adv": p_adv, "alerts": [e["frame_index"] for e in events if e["event"] == "alert"]}
    return {"frames": len(frames), "threshold": info.threshold, "by_provider": out}


def compare_providers(args: argparse.Namespace, clips: list[Path]) -> None:
    """The --providers run: the three phases above, then one report."""
    n, ps = args.cameras, list(dict.fromkeys(args.providers))
    cams = {p: looped_cameras(args.model, p, clips, n, args.seconds, args.work) for p in ps}
    lat = latencies(args.model, ps, clips[0], args.iters)
    par = parity(args.model, ps, args.stream, args.work) if (args.stream / "frames").is_dir() else None

    print(f"machine:  {platform.machine()}, {os.cpu_count()} CPU cores visible, GPU {gpu_name()}, load average "
          f"{os.getloadavg()[0]:.1f} at the end; onnxruntime {ort.__version__} ({Path(ort.__file__).parent}), "
          f"providers {', '.join(ort.get_available_providers())}")
    print(f"model:    {args.model}; footage: {', '.join(c.name for c in clips)} as files, {n} cameras")
    print(f"\n1. {n} looped cameras in one Watch, {args.seconds:g} s per provider (files opened live: each camera "
          "decodes as fast as it can, so frames/s is what the agent keeps up with)")
    print(f"   {'provider':<10} {'READY s':>8} {'frames/s':>9} {'batch':>6} " + " ".join(
        f"{stage + ' ms/frame p50/p99':>24}" for stage in ("inference", "end_to_end")))
    for p, (ready, s, batch) in cams.items():
        print(f"   {p:<10} {ready:8.2f} {s.fps:9.1f} {batch:6.2f} " + " ".join(
            f"{s.timings_ms[stage].percentile(50):11.3f} /{s.timings_ms[stage].percentile(99):10.3f}"
            for stage in ("inference", "end_to_end")) + f"   ({s.provider})")
    print(f"\n2. inference alone on {clips[0].name} frames, {args.iters} calls per provider and batch size, "
          "interleaved (ms per call)")
    print(f"   {'provider':<10} {'session s':>9} {'warm-up s':>9} {'b1 p50':>8} {'b1 p99':>8} {'b8 p50':>8} "
          f"{'b8 p99':>8} {'b8 frames/s':>12}")
    for p, r in lat.items():
        print(f"   {p:<10} {r['session_s']:9.2f} {r['warmup_s']:9.2f} {r[1][0]:8.3f} {r[1][1]:8.3f} "
              f"{r[8][0]:8.3f} {r[8][1]:8.3f} {8e3 / r[8][0]:12.0f}")
    if par is None:
        print(f"\n3. no demo stream at {args.stream} (trainer demo-stream --run runs/demo --out {args.stream})")
        return
    ref, by = ps[0], par["by_provider"]
    t = par["threshold"]
    print(f"\n3. demo stream {args.stream}: {par['frames']} frames, threshold {t:.4f}, against {ref}")
    for p in ps:
        d = by[p]
        print(f"   {p:<10} max |p_adv diff| {np.abs(d['p_adv'] - by[ref]['p_adv']).max():.2e}, decisions agree "
              f"{np.mean((d['p_adv'] > t) == (by[ref]['p_adv'] > t)):.2%}, {len(d['alerts'])} alerts, "
              + ("the same frames" if d["alerts"] == by[ref]["alerts"] else
                 f"frames differ: {sorted(set(d['alerts']) ^ set(by[ref]['alerts']))[:10]}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="exported .onnx (e.g. the main job's runs/demo/model.onnx)")
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60, help="length of each throughput phase")
    parser.add_argument("--soak-seconds", type=float, default=300, help="length of the latency/RSS run")
    parser.add_argument("--restarts", type=int, default=5, help="RTSP server restarts to time")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "agent-bench",
                        help="encoded clips are cached here")
    parser.add_argument("--providers", nargs="+", choices=["cpu", "cuda", "tensorrt", "auto"],
                        help="compare these inference.provider values on file sources instead (the first is the "
                             "reference for parity)")
    parser.add_argument("--iters", type=int, default=200, help="with --providers: calls per provider and batch size")
    parser.add_argument("--stream", type=Path, default=ROOT / "runs" / "demo" / "stream",
                        help="with --providers: the demo stream for the parity check")
    parser.add_argument("--mcap", nargs="+", metavar="EVERY_N:SCALE",
                        help="measure MCAP recording at these sinks.mcap settings against none instead")
    parser.add_argument("--rounds", type=int, default=2, help="with --mcap or --evidence: rounds of --seconds per variant")
    parser.add_argument("--evidence", metavar="PRE:POST",
                        help="measure alert evidence with PRE/POST frames against none instead")
    parser.add_argument("--alert-period", type=float, default=10.0,
                        help="with --evidence: seconds between one camera's alerts")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if args.providers:
        args.work.mkdir(parents=True, exist_ok=True)
        clips = [footage(name) for name in CLIPS]
        if None in clips:
            sys.exit(f"{', '.join(CLIPS)} not found: unpack opencv-doc (scripts/setup.sh) or set OPENCV_SAMPLES")
        compare_providers(args, clips)
        return
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
            cap = cv2.VideoCapture(str(source))
            frames = max(1, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))
            length = frames / (cap.get(cv2.CAP_PROP_FPS) or FPS)
            cap.release()
            encode(source, out, *SIZE, FPS, loops=int(longest / length) + 1)
        clips.append(out)

    server = RtspServer(free_port(), {f"cam{i}": clips[i % len(clips)] for i in range(args.cameras)})
    server.start()
    urls = {name: server.url(name) for name in server.mounts}
    if args.mcap:
        try:
            mcap_cost(args.model, urls, args.mcap, args.seconds, args.rounds, args.work)
        finally:
            server.stop()
        return
    if args.evidence:
        try:
            evidence_cost(args.model, urls, args.evidence, args.alert_period, args.seconds, args.rounds, args.work)
        finally:
            server.stop()
        return
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
