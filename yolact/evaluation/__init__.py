"""Evaluation: COCO box and mask AP, and latency benchmarks.

- ``job``: :func:`~yolact.evaluation.job.run_evaluation` (``yolact eval``) and ``run_benchmark_job``
  (``yolact benchmark``), the entry points (read them first)
- ``evaluator``: ``Evaluator`` and ``evaluate_records`` (pycocotools), also used by training's validation
- ``benchmark``: per-stage timings, throughput, memory, FLOPs
"""
