#!/usr/bin/env bash
# The main job, offline, on real data (Fashion-MNIST): train -> export -> watch a demo stream and real footage.
# Every step is one of the product's own commands; outputs land in runs/demo/.
# ./scripts/main_job.sh SEED runs the same recipe with another seed into runs/demo-seedSEED/ (benchmarks/seeds.py).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=runs/demo
FIT=(--config configs/demo.yaml)
if [ $# -gt 0 ]; then
  if ! [[ "$1" =~ ^[0-9]+$ ]]; then echo "error: SEED must be a non-negative integer, got '$1'" >&2; exit 2; fi
  RUN=runs/demo-seed$1
  FIT+=(--set "seed=$1" --set "run_dir=$RUN")
fi
FOOTAGE=/tmp/opencv-doc/usr/share/doc/opencv-doc/examples/data  # unpacked by scripts/setup.sh
start=$(date +%s)

echo "== 1/5 trainer fit: classifier, adversarial examples, detector, calibrated threshold, security audit"
trainer fit "${FIT[@]}"

echo "== 2/5 export: one fused ONNX graph, verified against PyTorch, with the audit's worst case in its metadata"
python3 -m export onnx --run "$RUN" --out "$RUN/model.onnx"

echo "== 3/5 demo stream: test images with adversarial bursts at known frames (lossless PNG)"
trainer demo-stream --run "$RUN" --out "$RUN/stream"

echo "== 4/5 agent check, then agent watch: alerts on stdout, closing summary"
agent check --model "$RUN/model.onnx" --source "$RUN/stream/frames/%05d.png" --config configs/agent.yaml --set metrics.port=0 \
  --set alerts.snapshot_dir="$RUN/alerts/snapshots" --set sinks.jsonl="$RUN/alerts/alerts.jsonl" | tee "$RUN/check.log"
agent watch --model "$RUN/model.onnx" --source "$RUN/stream/frames/%05d.png" --labels "$RUN/stream/labels.json" \
  --config configs/agent.yaml --set metrics.port=0 --set logging.level=WARNING \
  --set alerts.snapshot_dir="$RUN/alerts/snapshots" --set sinks.jsonl="$RUN/alerts/alerts.jsonl" \
  --set alerts.evidence.dir="$RUN/alerts/evidence" 2>&1 | tee "$RUN/stream/watch.log"

# One video through `agent watch` to its end; prints frames, alerts raised and the share called unfamiliar.
footage() {
  local log="$RUN/footage/$(basename "$1").log" rc=0
  agent watch --model "$RUN/model.onnx" --source "$1" --config configs/agent.yaml --set metrics.port=0 \
    --set logging.level=WARNING --set sinks.stdout=false --set alerts.snapshot_dir="$RUN/footage/snapshots" \
    --set alerts.evidence.dir="$RUN/footage/evidence" --set sinks.jsonl="$RUN/footage/alerts.jsonl" 2> "$log" || rc=$?
  # Exit 1 with INCOMPLETE: the file ended before the frames it declares, which the line says.
  if [ "$rc" -ne 0 ] && ! grep -q '^INCOMPLETE: ' "$log"; then cat "$log" >&2; return "$rc"; fi
  echo "footage $(basename "$1"): $(sed -nE -e 's/^summary: ([0-9]+) frames.*, ([0-9]+) alert\(s\),.*/\1 frames, \2 alert(s)/p' \
    -e 's/^unfamiliar scenes: ([0-9]+\/[0-9]+) scored frames = ([0-9.]+%).*/\1 scored frames unfamiliar (\2)/p' \
    -e 's/^INCOMPLETE: .* ended early: (.*) \(.*/the file ends early: \1/p' "$log" | paste -sd ';' | sed 's/;/; /g')"
}

echo "== 5/5 real footage through agent watch: unlike the training data, it should raise no alert"
mkdir -p "$RUN/footage"
footage_lines=()
for video in Megamind.avi tree.avi; do
  if [ -f "$FOOTAGE/$video" ]; then
    footage_lines+=("$(footage "$FOOTAGE/$video")")
  else
    footage_lines+=("footage $video: skipped, $FOOTAGE/$video is missing (scripts/setup.sh unpacks it)")
  fi
  echo "${footage_lines[-1]}"
done

echo "== recap"
sed -n 's/^robustness: /audit of the shipped detector: /p' "$RUN/check.log"
# The family table `agent check` printed under it (indented): the alarm per family of perturbation, worst cell last.
awk '/^robustness: /{on=1; next} on && /^           /{sub(/^           /, ""); print; next} {on=0}' "$RUN/check.log"
python3 - "$RUN/audit/audit.json" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))["tpr_by_size"]
fmt = lambda key: ", ".join(f"{r['norm']} {r['eps']:g}: {r[key]:.2f}" for r in rows if r[key] is not None)
print(f"attempt detection (oblivious PGD-10, share of all attacked frames flagged): {fmt('attempts_flagged')}")
if rows and "attempts_judged_flagged" in rows[0]:
    print(f"  of them judged by the agent (familiar and flagged): {fmt('attempts_judged_flagged')}")
print(f"TPR on the frames that fooled the classifier: {fmt('tpr')}")
PY
grep 'bursts: detection' "$RUN/stream/watch.log" || true
grep 'silent misclassifications' "$RUN/stream/watch.log" || echo "silent misclassifications: not counted (labels.json has no classes)"
printf '%s\n' "${footage_lines[@]}"
# The first alert of this run (stream, then footage) whose evidence was written: its `evidence` event
# names the folder and the manifest's sha256; `agent replay` re-scores every frame of it.
evidence=$(python3 - "$start" "$RUN/alerts/alerts.jsonl" "$RUN/footage/alerts.jsonl" <<'PY'
import json, sys
from datetime import datetime
start = float(sys.argv[1])
for path in sys.argv[2:]:
    try:
        events = [json.loads(line) for line in open(path)]
    except OSError:
        continue
    for e in events:  # the alert logs are appended to across runs: only this run's alerts count
        if e["event"] == "evidence" and e["evidence"]["sha256"] and \
                datetime.fromisoformat(e["time"].replace("Z", "+00:00")).timestamp() >= start:
            print(e["evidence"]["path"])
            sys.exit()
PY
)
if [ -n "$evidence" ]; then
  echo "evidence of the first alert: agent replay $evidence"
  agent replay "$evidence"
else
  echo "evidence: no alert carried evidence (no alert of this run had its frames written)"
fi
echo "== main job done in $(( $(date +%s) - start )) s; outputs in $RUN/"
