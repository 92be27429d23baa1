"""Soak of `agent watch` with MQTT: full frame rate for a long time, the broker going away every few minutes.

One `Watch` (the agent's own loop) runs on a looping image sequence opened as a live source
(so it never ends and runs as fast as the CPU allows), with the MQTT sink at its shipped
defaults (reconnect backoff 1..5 s). A real Mosquitto on 127.0.0.1 is stopped for
`--outage` seconds every `--every` seconds. A durable QoS 1 subscriber counts what arrives.
At the end it reports alerts raised vs delivered (target: equal), RSS growth after warm-up
(target: <= 10 MB) and the delay between the broker accepting connections again and the
agent being connected (target: <= 5 s).

    nice -n 10 python3 benchmarks/soak.py --minutes 30 [--model MODEL.onnx] [--out soak.json]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # the looping sequence's end is not news

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.cameras import resolve  # noqa: E402
from agent.config import load_agent_config  # noqa: E402
from agent.sinks.mqtt import MqttSink  # noqa: E402
from agent.watch import Watch  # noqa: E402


def load_test_module(name: str):
    """tests/agent/NAME.py, loaded by path (tests/ is not a package)."""
    folder = ROOT / "tests" / "agent"
    sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rss_mb() -> float:
    """Resident set size of this process (MB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Counter:
    """Durable QoS 1 subscriber: the set of alert ids that arrived."""

    def __init__(self, port: int, topic: str) -> None:
        self.ids: set[str] = set()
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="soak-subscriber", clean_session=False)
        self.client.reconnect_delay_set(0.05, 0.2)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, 1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        event = json.loads(msg.payload)
        if event["event"] == "alert":  # camera_degraded/recovered share the topic
            with self.lock:
                self.ids.add(event["id"])

    def count(self) -> int:
        with self.lock:
            return len(self.ids)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="soak duration (default 30)")
    parser.add_argument("--every", type=float, default=180.0, help="seconds between broker outages (default 180)")
    parser.add_argument("--outage", type=float, default=20.0, help="seconds each outage lasts (default 20)")
    parser.add_argument("--model", type=Path, help="exported .onnx (default: the tests' noise-detecting fixture)")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The looping live source "reconnects" at every loop of the sequence; that is expected here.
    logging.getLogger("agent.capture").setLevel(logging.ERROR)
    logging.getLogger("agent.watch").setLevel(logging.ERROR)  # thousands of ALERT lines
    conftest = load_test_module("conftest")
    fixture = load_test_module("fixture_model")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = args.model or fixture.build_fixture_model(tmp / "fixture.onnx")
        # 120 frames with three bursts of perturbed frames: three alerts per loop of the sequence.
        frames = fixture.make_frames(120, adversarial=[*range(10, 16), *range(50, 56), *range(90, 96)])
        source = conftest.write_sequence(tmp / "seq", frames)
        broker = conftest.Broker(tmp, persistent=True)
        broker.start()
        cfg = load_agent_config(conftest.write_config(
            tmp / "agent.yaml", tmp,
            capture={"mode": "live", "reconnect_initial_s": 0.01, "reconnect_max_s": 0.05},
            inference={"intra_op_threads": 1, "warmup_runs": 1},
            alerts={"k": 3, "n": 5, "clear_after": 5, "cooldown_frames": 10, "snapshot_dir": str(tmp / "snapshots"),
                    "snapshot_max_mb": 50, "min_free_mb": 50},
            sinks={"stdout": False, "jsonl": str(tmp / "alerts.jsonl"),
                   "mqtt": {"enabled": True, "host": "127.0.0.1", "port": broker.port,
                            "spool_path": str(tmp / "spool.sqlite3")}},  # shipped backoff and flush timeout
            logging={"stats_interval_s": 60}))
        counter = Counter(broker.port, cfg.sinks.mqtt.alert_topic.format(camera="soak"))
        watch = Watch(cfg, model, resolve(cfg, sources=[f"soak={source}"]))
        sink = next(s for s in watch.sinks.sinks if isinstance(s, MqttSink))
        runner = threading.Thread(target=watch.run, name="watch")
        runner.start()

        start = time.monotonic()
        end = start + args.minutes * 60
        rss: list[tuple[float, float]] = []
        delays: list[float] = []
        next_outage = start + args.every
        while time.monotonic() < end and runner.is_alive():
            time.sleep(1.0)
            rss.append((time.monotonic() - start, rss_mb()))
            if time.monotonic() >= next_outage and time.monotonic() + args.outage < end:
                broker.stop()
                time.sleep(args.outage)
                broker.start()
                back = time.monotonic()
                while not sink.connected.is_set() and time.monotonic() - back < 120:
                    time.sleep(0.01)
                delays.append(time.monotonic() - back)
                print(f"[{back - start:7.0f} s] outage {len(delays)}: agent reconnected {delays[-1]:.2f} s after "
                      f"the broker was back; raised {watch.summary.alerts}, delivered {counter.count()}", flush=True)
                next_outage = time.monotonic() + args.every
        watch.stop.set()
        runner.join()
        summary = watch.summary
        deadline = time.monotonic() + 60
        while counter.count() < summary.alerts and time.monotonic() < deadline:
            time.sleep(0.1)
        logged = sum(json.loads(line)["event"] == "alert"
                     for line in (tmp / "alerts.jsonl").read_text().splitlines())
        counter.close()
        broker.stop()

    warm = [mb for t, mb in rss if t >= 60] or [mb for _, mb in rss]
    figures = {
        "minutes": round((rss[-1][0] if rss else 0) / 60, 1), "frames": summary.frames, "fps": round(summary.fps, 1),
        "alerts_raised": summary.alerts, "alerts_delivered": counter.count(), "alerts_in_jsonl": logged,
        "outages": len(delays), "outage_s": args.outage,
        "reconnect_delay_s_max": round(max(delays), 2) if delays else None,
        "reconnect_delay_s_mean": round(sum(delays) / len(delays), 2) if delays else None,
        "rss_mb_after_warmup": round(warm[0], 1), "rss_mb_end": round(warm[-1], 1),
        "rss_growth_mb": round(warm[-1] - warm[0], 1), "rss_mb_max": round(max(warm), 1),
        "model": str(args.model or "tests/agent/fixture_model.py fixture"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
    }
    print(json.dumps(figures, indent=2))
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")
    ok = (figures["alerts_delivered"] == figures["alerts_raised"] and figures["rss_growth_mb"] <= 10
          and (not delays or max(delays) <= 5))
    print("targets met" if ok else "TARGETS MISSED")


if __name__ == "__main__":
    main()
