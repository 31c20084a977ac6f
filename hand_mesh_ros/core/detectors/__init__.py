"""Hand detectors: images of one or more cameras in, ``types.Detection`` lists out (ROS-free).

``mediapipe``: MediaPipe's CPU graph (``mp.solutions.hands``), one graph per camera.
``mediapipe_torch``: the same networks converted to torch, batched across cameras and hands.
"""
from .base import (DETECTOR_MODELS, DETECTORS, HandDetector, check_tiling_support, create_detector,
                   resolve_detector)

__all__ = ["DETECTORS", "DETECTOR_MODELS", "HandDetector", "check_tiling_support", "create_detector",
           "resolve_detector"]
