"""Detector interface and factory."""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Protocol, Sequence, Tuple

import numpy as np

from ...config import BY_NAME, DETECTOR_MODELS, DETECTORS, check_value
from ..types import Detection


class HandDetector(Protocol):
    """Finds hands in RGB images of one or more cameras.

    ``detect_batch(items)`` takes ``(camera key, image)`` pairs, images (H, W, 3) uint8 RGB,
    and returns per item the detections sorted by descending score. The detector keeps
    tracking state per camera key (video mode), so one object serves all cameras.
    """

    def detect_batch(self, items: Sequence[Tuple[str, np.ndarray]]) -> List[List[Detection]]: ...

    def detect(self, image: np.ndarray, camera: str = "default") -> List[Detection]: ...

    def reset(self, camera: Optional[str] = None) -> None: ...

    def close(self) -> None: ...


class PerCameraDetector:
    """The batched ``HandDetector`` API over single-stream detectors, one per camera key
    (e.g. one MediaPipe graph per camera), created on a camera's first image.

    Args:
        factory: makes a new single-stream detector (``detect(image)``, ``close()``).
    """

    def __init__(self, factory: Callable[[], object]):
        self._factory = factory
        self._by_camera: Dict[str, object] = {}

    def _get(self, camera: str):
        if camera not in self._by_camera:
            self._by_camera[camera] = self._factory()
        return self._by_camera[camera]

    def detect_batch(self, items: Sequence[Tuple[str, np.ndarray]]) -> List[List[Detection]]:
        """Each camera's image through that camera's detector, in order."""
        return [self._get(camera).detect(image) for camera, image in items]

    def detect(self, image: np.ndarray, camera: str = "default") -> List[Detection]:
        return self.detect_batch([(camera, image)])[0]

    def reset(self, camera: Optional[str] = None) -> None:
        """Forget the tracking state of ``camera`` (all cameras when None): a detector with
        a ``reset()`` of its own restarts its stream (MediaPipe's graph: 1.6 ms), any other
        is closed and a new one is made on the camera's next image."""
        for key in [k for k in self._by_camera if camera is None or k == camera]:
            if hasattr(self._by_camera[key], "reset"):
                self._by_camera[key].reset()
            else:
                self._by_camera.pop(key).close()

    def close(self) -> None:
        """Close every camera's detector."""
        for key in list(self._by_camera):
            self._by_camera.pop(key).close()


def resolve_detector(name: str, device_type: str) -> str:
    """The detector ``name`` stands for on a device of type ``device_type`` ("cpu" / "cuda"):
    "auto" is "mediapipe_torch" on CUDA and "mediapipe" (MediaPipe's CPU graph) otherwise."""
    check_value(BY_NAME["detector"], name)
    if name == "auto":
        return "mediapipe_torch" if device_type == "cuda" else "mediapipe"
    return name


def create_detector(name: str, max_hands: int = 2, min_score: float = 0.5, mirrored: bool = False,
                    static_image_mode: bool = False, model: str = "full", device="cpu",
                    precision: str = "auto", batch_size: int = 8, **kwargs) -> HandDetector:
    """Build the detector called ``name`` (one of ``DETECTORS``; "auto" resolved for ``device``).

    Args:
        max_hands, min_score, mirrored, static_image_mode: as ``MediaPipeHandDetector``.
        model: "full" / "lite" (``DETECTOR_MODELS``).
        device, precision, batch_size: torch settings (mediapipe_torch only; MediaPipe's
            CPU graph ignores them).
        **kwargs: further ``MediaPipeTorchHandDetector`` arguments (models_dir, cache_dir).

    Raises:
        ValueError: unknown name or model, out-of-range arguments.
        models.ModelFilesError: mediapipe_torch without the mediapipe==0.10.21 model files.
    """
    import torch

    name = resolve_detector(name, torch.device(device).type)
    check_value(BY_NAME["detector_model"], model)
    if name == "mediapipe":
        from .mediapipe_hands import MediaPipeHandDetector

        MediaPipeHandDetector.check_arguments(max_hands, min_score)
        return PerCameraDetector(lambda: MediaPipeHandDetector(
            max_hands=max_hands, min_score=min_score, mirrored=mirrored, static_image_mode=static_image_mode,
            model_complexity=1 if model == "full" else 0))
    from .mediapipe_torch import MediaPipeTorchHandDetector

    return MediaPipeTorchHandDetector(max_hands=max_hands, min_score=min_score, mirrored=mirrored,
                                      static_image_mode=static_image_mode, model=model, device=device,
                                      precision=precision, batch_size=batch_size, **kwargs)
