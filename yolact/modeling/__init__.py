"""The YOLACT network and its parts."""

from yolact.modeling.yolact import Yolact, YolactOutput, build_yolact

__all__ = ["Yolact", "YolactOutput", "build_yolact"]
