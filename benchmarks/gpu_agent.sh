#!/usr/bin/env bash
# The agent on a lent GPU (issue 21): ONNX Runtime's CUDA provider against its CPU provider, as the device
# tool runs it from the repository root, in back-to-back calls while the machine stays warm (30 s):
#   benchmarks/gpu_agent.sh receive   after each call that carried a wheel part: the parts there so far, verified
#   benchmarks/gpu_agent.sh install   join and verify the parts, install the wheel into $TARGET, show what imports
#   benchmarks/gpu_agent.sh bench     install, then agent check and benchmarks/agent.py --providers cpu cuda on
#                                     8 looped file cameras, the engine-cache key and the provider failures
# onnxruntime-gpu 1.31.1 (CUDA 13, cp312; 255.6 MB) is bigger than a call's 64 MiB, so it travels in parts
# (benchmarks/wheel_parts.py split WHEEL build/gpu_wheel: four of 55 MiB, one of 24 MiB), one part per call,
# each call carrying only that part and build/gpu_wheel/manifest.json: ignored paths a call does not name stay
# on a warm machine. The last call also carries the wheels the image lacks (build/whl: pydantic, paho-mqtt),
# the footage (build/footage: Megamind.avi, tree.avi) and the main job's model and demo stream (runs/demo).
# The image's CUDA runtime, cuBLAS, cuRAND and cuDNN (its nvidia-* packages, PyTorch's) serve onnxruntime-gpu.
# TensorRT is not carried: onnxruntime-gpu 1.31.1 needs TensorRT 10 (libnvinfer.so.10), and PyPI's
# tensorrt-cu13-libs is a 15 kB stub that fetches the real wheel from NVIDIA's index at install time, which
# neither machine reaches; its size was not found. So `auto` here tries TensorRT, fails, and keeps CUDA.
# A dry run without a GPU, from the CPU onnxruntime wheel split the same way: PARTS=DIR ORT_SHA256=HEX
# benchmarks/gpu_agent.sh install, or with PROVIDERS=cpu BENCH_SECONDS=2 MODEL=... STREAM=... OPENCV_SAMPLES=...
# bench (every CUDA check is then refused: that wheel has no CUDA provider); tests/benchmarks runs `install`
# with a stand-in wheel. Logs land in $OUT (default /tmp/gpu_agent): at most 8 files, as the device tool returns.
set -uo pipefail
mode=${1:?usage: benchmarks/gpu_agent.sh receive|install|bench}
out=${OUT:-/tmp/gpu_agent}
parts=${PARTS:-build/gpu_wheel}
wheels=${WHEELS:-build/whl}
target=$(realpath -m "${TARGET:-/tmp/ort-gpu}")
# onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl as PyPI lists it
sha=${ORT_SHA256:-05d548956197b9d01f59b625de740e0d6be3593f874e241a12dc0362650ecdf7}
model=${MODEL:-runs/demo/model.onnx}
stream=${STREAM:-runs/demo/stream}
mkdir -p "$out"
export PYTHONUNBUFFERED=1

install() {  # join, verify, install into $target and put it ahead of the image's CPU onnxruntime; exit 2 if not
    local joined wheel extra=() rc
    joined=$(mktemp -d)
    wheel=$(python3 benchmarks/wheel_parts.py join "$parts" "$joined" --sha256 "$sha") || exit 2
    if [ -d "$wheels" ] && ! python3 -c "import pydantic, paho.mqtt" 2>/dev/null; then extra=("$wheels"/*.whl); fi
    python3 -m pip install -q --root-user-action=ignore --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$target" "$wheel" "${extra[@]}"
    rc=$?
    rm -rf "$joined"
    [ $rc -eq 0 ] || exit 2
    export PYTHONPATH=$target:$PWD
    # onnxruntime-gpu links libcudart, libcublas(Lt) and libcurand and loads libcudnn by name: every lib folder
    # of the nvidia namespace package (nvidia/cu13/lib, nvidia/cudnn/lib, ...) goes on the loader path.
    local libs nvidia_libs=
    libs=$(python3 -c "import importlib.util as u; s = u.find_spec('nvidia'); print(*(s.submodule_search_locations if s else []))")
    if [ -n "$libs" ]; then nvidia_libs=$(find $libs -maxdepth 3 -type d -name lib | sort | paste -sd:); fi
    export LD_LIBRARY_PATH=$nvidia_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    local where
    where=$(python3 -c "import onnxruntime as o; print(o.__file__)") || exit 2
    if [[ $where != "$target"/* ]]; then echo "error: onnxruntime imports from $where, not $target" >&2; exit 2; fi
    python3 -c "import onnxruntime as o; print('onnxruntime', o.__version__, 'from', o.__file__, o.get_available_providers())"
    echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
}

stage() {  # stage NAME SECONDS CMD...: run CMD with a time limit, log to $out/NAME.log, print its tail and wall time
    local name=$1 limit=$2; shift 2
    local began=$EPOCHREALTIME
    timeout "$limit" "$@" > "$out/$name.log" 2>&1
    local rc=$?
    tail -n 40 "$out/$name.log"
    echo "== stage $name: rc $rc, $(awk "BEGIN {print $EPOCHREALTIME - $began}") s"
}

refused() {  # refused NAME CMD...: CMD must end with exit code 2 and one `error:` line, as a misconfigured agent does
    local name=$1 rc lines verdict; shift
    timeout 120 "$@" > "$out/$name.log" 2>&1
    rc=$?
    lines=$(wc -l < "$out/$name.log")
    if [ $rc -eq 2 ] && [ "$lines" -eq 1 ] && grep -q '^error: ' "$out/$name.log"; then verdict=ok; else verdict=UNEXPECTED; fi
    echo "== $name: $verdict (rc $rc, $lines line(s)): $(head -c 400 "$out/$name.log")"
}

case $mode in
receive) python3 benchmarks/wheel_parts.py check "$parts" || exit 2 ;;
install) install ;;
bench)
    install
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
    export OPENCV_SAMPLES=${OPENCV_SAMPLES:-$PWD/build/footage}
    work=/tmp/gpu_agent-work
    sources=()
    for i in 0 1 2 3 4 5 6 7; do
        clip=$([ $((i % 2)) -eq 0 ] && echo Megamind.avi || echo tree.avi)
        sources+=(--source "cam$i=$OPENCV_SAMPLES/$clip")
    done
    quiet=(--set metrics.port=0 --set sinks.jsonl=null --set "alerts.snapshot_dir=$work/snapshots")
    check=(python3 -m agent check --model "$model" "${sources[@]}" "${quiet[@]}")
    stage check_cuda 120 "${check[@]}" --set inference.provider=cuda
    stage providers 300 python3 benchmarks/agent.py --model "$model" --providers ${PROVIDERS:-cpu cuda} --cameras 8 \
        --seconds "${BENCH_SECONDS:-15}" --iters "${BENCH_ITERS:-200}" --stream "$stream" --work "$work"
    # auto tries TensorRT first: its engine cache folder is made under the key (model sha256, GPU, TensorRT
    # version); without TensorRT it stays empty and CUDA is kept.
    stage check_auto 120 "${check[@]}" --set inference.provider=auto --set "inference.trt_cache_dir=$work/trt"
    find "$work/trt" | tee "$out/trt_cache.txt"
    refused tensorrt_missing "${check[@]}" --set inference.provider=tensorrt
    refused cuda_no_device env CUDA_VISIBLE_DEVICES= "${check[@]}" --set inference.provider=cuda
    # Without the nvidia lib folders the provider library may still find a system CUDA: then it loads.
    refused cuda_no_libs env LD_LIBRARY_PATH= "${check[@]}" --set inference.provider=cuda
    ls -la "$out"
    ;;
*) echo "usage: benchmarks/gpu_agent.sh receive|install|bench"; exit 2 ;;
esac
