"""Evaluation: COCO box and mask AP, and latency benchmarks."""
