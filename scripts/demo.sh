#!/usr/bin/env bash
# The main job on bundled data, on a fresh machine: set up, generate synthetic scenes (the generator is part of the
# package), train the light yolact_resnet18 preset on them for a few minutes on the CPU, evaluate it on held-out
# scenes, and write overlays of its predictions on them. Everything lands in runs/demo (or the folder given).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT="${1:-runs/demo}"
ITERATIONS="${ITERATIONS:-300}"
Y=.venv/bin/yolact
$Y synthetic --output "$OUT/data/train" --num-images 200 --seed 0
$Y synthetic --output "$OUT/data/heldout" --num-images 12 --seed 1
$Y train --train-ann "$OUT/data/train/annotations.json" --train-images "$OUT/data/train/images" \
  --config yolact_resnet18 --iterations "$ITERATIONS" --batch-size 4 --checkpoint-every 100 \
  --output "$OUT/train" --device cpu --workers 1
$Y eval --weights "$OUT/train/last.pth" --ann "$OUT/data/heldout/annotations.json" \
  --images "$OUT/data/heldout/images" --device cpu --per-class --save-metrics "$OUT/heldout_metrics.json"
$Y predict "$OUT/data/heldout/images" --weights "$OUT/train/last.pth" --device cpu --score-threshold 0.3 \
  --output "$OUT/overlays" --json "$OUT/heldout_detections.json"
