#!/usr/bin/env bash
# The main job, offline, on real data (Fashion-MNIST): train -> export -> watch a demo stream.
# Every step is one of the product's own commands; outputs land in runs/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=runs/demo
start=$(date +%s)

echo "== 1/4 trainer fit: classifier, adversarial examples, detector, calibrated threshold, security audit"
trainer fit --config configs/demo.yaml

echo "== 2/4 export: one fused ONNX graph, verified against PyTorch, with the audit's worst case in its metadata"
python3 -m export onnx --run "$RUN" --out "$RUN/model.onnx"

echo "== 3/4 demo stream: test images with adversarial bursts at known frames (lossless PNG)"
trainer demo-stream --run "$RUN" --out "$RUN/stream"

echo "== 4/4 agent check, then agent watch: alerts on stdout, closing summary"
agent check --model "$RUN/model.onnx" --source "$RUN/stream/frames/%05d.png" --config configs/agent.yaml --set metrics.port=0
agent watch --model "$RUN/model.onnx" --source "$RUN/stream/frames/%05d.png" --labels "$RUN/stream/labels.json" \
  --config configs/agent.yaml --set metrics.port=0 --set logging.level=WARNING \
  --set alerts.snapshot_dir="$RUN/alerts/snapshots" --set sinks.jsonl="$RUN/alerts/alerts.jsonl"

echo "== main job done in $(( $(date +%s) - start )) s; outputs in $RUN/"
