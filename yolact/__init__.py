"""YOLACT and YOLACT++ real-time instance segmentation (Bolya et al., ICCV 2019 / TPAMI 2020) in PyTorch.

    import yolact
    predictor = yolact.load("yolact_base_54_800000.pth")
    prediction = predictor("image.jpg")   # boxes_xyxy, scores, class_ids, class_names, masks

Importing the package has no side effects: no CUDA calls, no distributed set-up, and no heavy import until a name
below is first used (so that ``yolact --help`` starts at once). Device is a parameter.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the module that defines it, imported on first use.
_EXPORTS = {
    "Checkpoint": "yolact.checkpoint",
    "load_checkpoint": "yolact.checkpoint",
    "save_checkpoint": "yolact.checkpoint",
    "save_official": "yolact.checkpoint",
    "PRESETS": "yolact.config",
    "YolactConfig": "yolact.config",
    "get_config": "yolact.config",
    "CheckpointError": "yolact.errors",
    "ImageReadError": "yolact.errors",
    "YolactError": "yolact.errors",
    "InferenceOptions": "yolact.inference.options",
    "Predictor": "yolact.inference.predictor",
    "load": "yolact.inference.predictor",
    "Prediction": "yolact.inference.results",
    "Yolact": "yolact.modeling",
    "YolactOutput": "yolact.modeling",
    "build_yolact": "yolact.modeling",
}

# Literal, for linters and IDEs; a test checks it names exactly _EXPORTS.
__all__ = [
    "PRESETS",
    "Checkpoint",
    "CheckpointError",
    "ImageReadError",
    "InferenceOptions",
    "Prediction",
    "Predictor",
    "Yolact",
    "YolactConfig",
    "YolactError",
    "YolactOutput",
    "build_yolact",
    "get_config",
    "load",
    "load_checkpoint",
    "save_checkpoint",
    "save_official",
]

if TYPE_CHECKING:
    from yolact.checkpoint import Checkpoint, load_checkpoint, save_checkpoint, save_official
    from yolact.config import PRESETS, YolactConfig, get_config
    from yolact.errors import CheckpointError, ImageReadError, YolactError
    from yolact.inference.options import InferenceOptions
    from yolact.inference.predictor import Predictor, load
    from yolact.inference.results import Prediction
    from yolact.modeling import Yolact, YolactOutput, build_yolact


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'yolact' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
