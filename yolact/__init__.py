"""YOLACT and YOLACT++ real-time instance segmentation (Bolya et al., ICCV 2019 / TPAMI 2020) in PyTorch.

    import yolact
    predictor = yolact.load("yolact_base_54_800000.pth")
    prediction = predictor("image.jpg")   # boxes_xyxy, scores, class_ids, class_names, masks

Importing the package has no side effects: no CUDA calls, no distributed set-up. Device is a parameter.
"""

from yolact.checkpoint import Checkpoint, load_checkpoint, save_checkpoint, save_official
from yolact.config import PRESETS, YolactConfig, get_config
from yolact.errors import CheckpointError, ImageReadError, YolactError
from yolact.inference.predictor import Predictor, load
from yolact.inference.results import Prediction
from yolact.modeling import Yolact, YolactOutput, build_yolact

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "Checkpoint",
    "CheckpointError",
    "ImageReadError",
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
