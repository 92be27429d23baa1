"""The main job's chain at a tiny size: trainer fit -> export onnx -> demo-stream -> agent watch."""
import json
import re
import subprocess
import sys

from synthetic import tiny_overrides, write_learnable_cifar


def run(*args, timeout=400):
    proc = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args[:2]} failed:\n{proc.stderr[-3000:]}"
    return proc


def test_train_export_stream_watch(tmp_path):
    data = write_learnable_cifar(tmp_path / "cifar")
    run_dir = tmp_path / "run"
    detector = {"point": 2, "batch_size": 50, "lr": 0.001, "train_limit": 200, "val_limit": 100, "test_limit": 64}
    overrides = [o for o in tiny_overrides(data, run_dir, epochs=3) if not o.startswith(("detectors=", "deploy="))] + [
        "detectors=" + json.dumps([
            {"name": "static", "adversary": {"name": "iterative_linf", "eps": 8}, "mode": "static", "epochs": 2, **detector},
            {"name": "dynamic", "adversary": {"name": "dynamic", "eps": 8, "alpha": 2}, "mode": "dynamic",
             "init_from": "static", "epochs": 1, **detector},
        ]),
        "deploy=dynamic",
        # The demo config's audit stage at a seconds-long size (tests/audit covers what it measures).
        "audit.images=24", "audit.steps=2", "audit.restarts=1", "audit.tpr_eps={linf: [32]}", "audit.footage=[]",
    ]
    run("trainer", "fit", "--config", "configs/demo.yaml", *[a for o in overrides for a in ("--set", o)])
    assert (run_dir / "detectors" / "dynamic" / "detector.pt").is_file()

    model = tmp_path / "model.onnx"
    exported = run("export", "onnx", "--run", str(run_dir), "--out", str(model))
    assert "robustness: worst-case undetected error" in exported.stdout  # the audit of `trainer fit` ships
    run("export", "verify", str(model))

    stream = tmp_path / "stream"
    run("trainer", "demo-stream", "--run", str(run_dir), "--out", str(stream), "--frames", "60", "--burst", "5", "--period", "30")
    labels = json.loads((stream / "labels.json").read_text())
    assert labels["adversarial"] == [15, 16, 17, 18, 19, 45, 46, 47, 48, 49] and labels["detector"] == "dynamic"
    assert labels["kinds"] == {"oblivious": [15, 16, 17, 18, 19], "adaptive": [45, 46, 47, 48, 49]}
    assert labels["attacks"]["adaptive"]["name"] == "adaptive" and 0 < labels["attacks"]["adaptive"]["threshold"] < 1
    assert len(labels["classes"]) == 60 and len(labels["class_names"]) == 10

    watched = run("agent", "watch", "--model", str(model), "--source", str(stream / "frames" / "%05d.png"),
                  "--labels", str(stream / "labels.json"), "--set", "metrics.port=0",
                  "--set", f"alerts.snapshot_dir={tmp_path / 'snapshots'}", "--set", f"sinks.jsonl={tmp_path / 'alerts.jsonl'}")
    assert "summary: 60 frames" in watched.stderr
    # Frames the familiarity score calls unfamiliar are not judged, so up to all 10 adversarial and
    # all 50 clean frames are.
    for line, frames in (("detection rate on adversarial frames: ", 10), ("false alarms on clean frames:         ", 50)):
        judged = re.search(re.escape(line) + r"\d+/(\d+) = ", watched.stderr)
        assert judged and 0 < int(judged.group(1)) <= frames, watched.stderr
    assert "oblivious bursts: detection " in watched.stderr and "adaptive bursts: detection " in watched.stderr
    for kind in ("oblivious", "adaptive"):
        assert re.search(rf"^{kind}: \d+ frames, \d+ fooled the classifier, \d+ of them flagged, \d+ silent "
                         "misclassifications", watched.stderr, re.M), watched.stderr
    events = [json.loads(line) for line in watched.stdout.splitlines() if line.startswith("{")]
    alerts = [e for e in events if e["event"] == "alert"]  # the others: scene_unfamiliar, camera_degraded, ...
    assert all(a["model_sha256"] and a["frame_index"] < 60 for a in alerts)
