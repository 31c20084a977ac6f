"""Hand detectors: image in, ``types.Detection`` list out (ROS-free)."""
from .base import HandDetector, create_detector

__all__ = ["HandDetector", "create_detector"]
