#!/usr/bin/env bash
# Set up, then run the whole test suite (pytest), ruff included, and the numerics tests again under AVX2 code paths.
# Extra arguments go to pytest (and skip the AVX2 pass).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/python -m pytest -q "$@"
if [ "$#" -eq 0 ]; then
  # The learning and parity tests again on another CPU's code path: oneDNN, MKL and ATen's own kernels limited to
  # AVX2 (no AVX-512, no AMX), as on older Intel and on AMD CPUs. A test that holds only by one CPU's rounding
  # fails here. The slow YOLACT++ learning test, the bf16 one (AVX2 has no bf16 units: emulated, minutes long) and
  # the parity runs through the default backend (OpenVINO, which picks its own kernels) run on the default path only.
  ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 ATEN_CPU_CAPABILITY=avx2 \
    .venv/bin/python -m pytest -q -m "numerics and not slow" -k "not bf16 and not auto" -p no:cacheprovider
fi
