#!/usr/bin/env bash
# The main job on bundled data: set up, write a randomly initialised yolact_resnet50 in the authors' checkpoint
# format, and segment the bundled sample images with it. The weights are random, so the detections are
# meaningless (usually none at all); the point is the whole pipeline, end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT="${1:-runs/demo}"
.venv/bin/yolact export --config yolact_resnet50 --random-init --seed 0 --output "$OUT/yolact_resnet50_0_0.pth"
.venv/bin/yolact predict yolact/assets --weights "$OUT/yolact_resnet50_0_0.pth" --device cpu \
  --output "$OUT/overlays" --json "$OUT/detections.json"
