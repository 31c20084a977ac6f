"""Hand detectors: images of one or more cameras in, ``types.Detection`` lists out (ROS-free).

``mediapipe``: MediaPipe's CPU graph (``mp.solutions.hands``), one graph per camera.
``mediapipe_torch``: the same networks converted to torch, batched across cameras and hands,
with the tiled palm search for small hands in large frames.
``auto``: ``mediapipe_torch`` on CUDA; on the CPU the graph, or with tiling the graph for the
frames that get no tile and ``mediapipe_torch`` for the others (``FrameSizeRouter``).
"""
from .base import (BY_FRAME_SIZE, DETECTOR_MODELS, DETECTORS, FrameSizeRouter, HandDetector, check_tiling_support,
                   create_detector, resolve_detector)

__all__ = ["BY_FRAME_SIZE", "DETECTORS", "DETECTOR_MODELS", "FrameSizeRouter", "HandDetector",
           "check_tiling_support", "create_detector", "resolve_detector"]
