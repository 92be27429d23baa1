#!/usr/bin/env bash
# The full-size protocol (configs/fashion-mnist-full.yaml) on a lent GPU, as the device tool runs it
# from the repository root:
#   benchmarks/gpu_protocol.sh probe [FIT_ARGS...]  every GPU code path on a few images, with stage times:
#                                                   2 classifier epochs, one epoch of each detector mode on a
#                                                   subset, the audit's attacks at 20 steps x 1 restart
#   benchmarks/gpu_protocol.sh full [FIT_ARGS...]   the protocol itself: training cut at $FIT_BUDGET seconds
#                                                   (default 270), then the audit, cut at $AUDIT_BUDGET (265)
# FIT_ARGS go to `trainer fit`. A dry run on a CPU: PROBE_TRAIN=128 PROBE_EVAL=64 AUDIT_IMAGES=20
# benchmarks/gpu_protocol.sh probe --set train.epochs=1 --set data.train_limit=500.
# Results land in $OUT (default /tmp/gpu_protocol): the logs and the run directory as run.tgz, which
# `tar xzf run.tgz -C runs` unpacks here for `python -m export onnx` and docs/RESULTS.md.
# The device machine has no package index and no apt: wheels the image lacks travel in .whl/
# (pydantic, paho-mqtt) and the data and footage in .gpu/, copied to where the trainer looks by default.
set -uo pipefail
mode=${1:?usage: benchmarks/gpu_protocol.sh probe|full [FIT_ARGS...]}; shift
out=${OUT:-/tmp/gpu_protocol}
run=runs/fashion-mnist-full
footage=/tmp/opencv-doc/usr/share/doc/opencv-doc/examples/data
mkdir -p "$out"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 TQDM_DISABLE=1
if [ -d .whl ] && ! python3 -c "import pydantic, paho.mqtt" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
fi
if [ -d .gpu/fmnist ]; then mkdir -p /usr/share/datasets/fashion-mnist && cp -n .gpu/fmnist/* /usr/share/datasets/fashion-mnist/; fi
if [ -d .gpu/footage ]; then mkdir -p $footage && cp -n .gpu/footage/* $footage/; fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
python3 -c "import torch, onnxruntime as o; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'onnxruntime', o.__version__, o.get_available_providers())"

stage() {  # stage NAME SECONDS CMD...: run CMD with a time limit, log to $out/NAME.log, print its wall time
    local name=$1 limit=$2; shift 2
    local began=$EPOCHREALTIME
    timeout "$limit" "$@" > "$out/$name.log" 2>&1
    local rc=$?
    tr '\r' '\n' < "$out/$name.log" | grep -v '%|' | tail -n 40
    echo "== stage $name: rc $rc, $(awk "BEGIN {print $EPOCHREALTIME - $began}") s"
}
fit=(python3 -m trainer fit --config configs/fashion-mnist-full.yaml)

case $mode in
probe)
    # One short epoch of each mode; named apart from the full config's detectors so neither reuses the other's.
    train=${PROBE_TRAIN:-5120} eval=${PROBE_EVAL:-1000}
    probes="[{name: probe-static, adversary: {name: iterative_linf, eps: 4}, point: 2, mode: static, epochs: 1, batch_size: 128,
              train_limit: $train, val_limit: $eval, test_limit: $eval, eval_batch_size: 1000},
             {name: probe-dynamic, adversary: {name: dynamic, eps: 4}, point: 2, mode: dynamic, epochs: 1, batch_size: 256,
              train_limit: $((train / 2)), val_limit: $eval, test_limit: $eval, eval_batch_size: 1000},
             {name: probe-adaptive, adversary: {name: adaptive, eps: 4, threshold: 0.5, steps: 10, restarts: 1}, point: 2, mode: adaptive,
              init_from: probe-static, eps_range: [2, 16], paper_adversary: {name: iterative_linf, eps: 4}, epochs: 1, lr: 0.00001,
              batch_size: 256, train_limit: $((train / 2)), val_limit: $eval, test_limit: $eval, eval_batch_size: 1000}]"
    stage probe_fit 240 "${fit[@]}" --set train.epochs=2 --set "detectors=$probes" --set deploy=probe-adaptive \
        --set audit.enabled=false "$@"
    device=$(python3 -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
    stage probe_audit 120 python3 benchmarks/audit.py --run $run --device "$device" --images "${AUDIT_IMAGES:-1000}" --eps 4 \
        --set audit.steps=20 --set audit.restarts=1 --set audit.batch_size=1000
    ;;
full)
    # The audit runs as its own stage, so a detector that does not finish in FIT_BUDGET (the detectors train
    # in config order) leaves its per-epoch metrics and the audit of the deployed one still runs.
    stage full_fit "${FIT_BUDGET:-270}" "${fit[@]}" --set audit.enabled=false "$@"
    # The deployed detector if it finished, else the first one that did.
    audited=$(python3 -c "import os, yaml; c = yaml.safe_load(open('configs/fashion-mnist-full.yaml'))
print(next((n for n in [c['deploy']] + [d['name'] for d in c['detectors']] if os.path.exists('$run/detectors/' + n + '/detector.pt')), ''))")
    stage full_audit "${AUDIT_BUDGET:-265}" python3 -m trainer audit --run $run --set audit.enabled=true --set "audit.detector=$audited"
    ;;
*) echo "usage: benchmarks/gpu_protocol.sh probe|full [FIT_ARGS...]"; exit 2 ;;
esac
# The cached adversarial twins (runs/*/attacks) are regenerated from the run and the resume state is
# of no use elsewhere; everything else comes back.
tar czf "$out/run.tgz" --exclude=attacks --exclude=train_state.pt -C runs "$(basename $run)" && ls -la "$out"
