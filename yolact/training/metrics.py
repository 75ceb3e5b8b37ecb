"""A run's log: ``metrics.jsonl`` (one JSON row per logged iteration or validation, appended as the run goes and
rewritten to the checkpoint's rows on resume) and ``curves.png`` (its losses and validation AP)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from yolact.io import atomic_write
from yolact.outputs import make_dir

METRICS = "metrics.jsonl"
CURVES = "curves.png"


def append_row(folder: Path, record: dict[str, Any]) -> None:
    with open(folder / METRICS, "a") as f:
        f.write(json.dumps(record) + "\n")


def rewrite_rows(folder: Path, rows: list[dict[str, Any]]) -> None:
    """The log as of a checkpoint: rows a killed run wrote after it are replayed on resume, so they would repeat."""
    make_dir(folder)
    text = "".join(json.dumps(record) + "\n" for record in rows)
    atomic_write(folder / METRICS, lambda f: f.write(text.encode()))


def plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    """Loss terms against iterations, and validation AP where there is any, as one PNG (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in history if "total" in r]
    val = [r for r in history if any(k.startswith("val_") for k in r)]
    fig, axes = plt.subplots(1, 2 if val else 1, figsize=(12 if val else 6, 4), squeeze=False)
    for key in ("total", "class", "box", "mask", "semantic"):
        points = [(r["iteration"], r[key]) for r in train if key in r and math.isfinite(r[key])]
        if points:
            axes[0][0].plot(*zip(*points, strict=True), label=key)
    axes[0][0].set(xlabel="iteration", ylabel="loss", title="training loss", yscale="log")
    if train:
        axes[0][0].legend()
    if val:
        for key in sorted({k for r in val for k in r if k.startswith("val_")}):
            axes[0][1].plot([r["iteration"] for r in val], [r[key] for r in val], marker="o", label=key[4:])
        axes[0][1].set(xlabel="iteration", ylabel="AP", title="validation", ylim=(0, 1))
        axes[0][1].legend()
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
