#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one run: the GPU-marked tests, then the GPU benchmarks.
#
#   YOLACT_SHARED=../shared bash scripts/gpu_checks.sh [OUTPUT_DIR]
#
# Runs from the repository root with whatever python3 holds torch + torchvision (the package itself is used from
# the source tree). Logs go to OUTPUT_DIR (default: gpu-checks/), one file per step; a failing step does not stop
# the later ones, and the script exits non-zero if any failed.
set -u -o pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu-checks}
shared=${YOLACT_SHARED:-../shared}
image=$shared/data/coco128-seg/images/000000000009.jpg
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 YOLACT_SHARED=$shared
status=0
step() {  # step NAME COMMAND...: run, log to $out/NAME.log, remember a failure
    local name=$1
    shift
    echo "== $name: $*"
    local start=$SECONDS
    "$@" 2>&1 | tee "$out/$name.log" || { echo "!! $name failed"; status=1; }
    echo "== $name took $((SECONDS - start)) s"
}
step environment python3 -c "import torch, torchvision; print(torch.__version__, torchvision.__version__, \
torch.cuda.get_device_name(0), 'cudnn', torch.backends.cudnn.version())"
step gpu_fps_base python3 benchmarks/gpu_fps.py --config yolact_base --image "$image"
step gpu_fps_plus python3 benchmarks/gpu_fps.py --config yolact_plus_base --image "$image" --cuda-graph off
step scale_out python3 benchmarks/scale_out.py --no-ray
step gpu_tests python3 -m pytest -q -m gpu -p no:cacheprovider tests/ops tests/inference tests/training tests/evaluation tests/losses tests/test_parity.py
exit $status
