"""Detector interface and factory."""
from __future__ import annotations

from typing import List, Protocol

import numpy as np

from ..types import Detection

#: Allowed values of the ``detector`` parameter.
DETECTORS = ("mediapipe",)


class HandDetector(Protocol):
    """Finds hands in one RGB image.

    ``detect(image)`` takes an (H, W, 3) uint8 RGB array and returns the detections sorted
    by descending score. A detector may keep state between calls (tracking mode), so use
    one instance per camera stream.
    """

    def detect(self, image: np.ndarray) -> List[Detection]: ...

    def close(self) -> None: ...


def create_detector(name: str, **kwargs) -> HandDetector:
    """Build the detector called ``name`` (one of ``DETECTORS``) with ``kwargs``.

    Raises:
        ValueError: unknown name.
    """
    if name == "mediapipe":
        from .mediapipe_hands import MediaPipeHandDetector

        return MediaPipeHandDetector(**kwargs)
    raise ValueError(f"parameter 'detector': {name!r} is not one of {list(DETECTORS)}")
