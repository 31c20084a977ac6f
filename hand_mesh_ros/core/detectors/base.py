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


def resolve_detector(name: str, device_type: str, detection_tiling="off") -> str:
    """The detector ``name`` stands for on a device of type ``device_type`` ("cpu" / "cuda").

    "auto" is "mediapipe_torch" on CUDA, and on the CPU whenever ``detection_tiling`` is not
    "off" (the frame size, and so whether tiles will be cut, is unknown at start-up);
    "mediapipe" (MediaPipe's CPU graph) on the CPU with tiling off. MediaPipe's graph cannot
    search tiles: in the mediapipe 0.10.21 wheel, ``hand_landmark_tracking_cpu.binarypb``
    feeds the whole image to ``PalmDetectionCpu`` (input ``IMAGE`` only, letterboxed inside
    it), and ``mp.solutions.hands`` exposes only the side packets ``num_hands``,
    ``model_complexity``, ``use_prev_landmarks`` and two score thresholds; tiles would need a
    graph per tile (each also tracking and running landmarks on its own) or a new graph
    around the palm model, i.e. this package's ``mediapipe_torch`` again.
    """
    check_value(BY_NAME["detector"], name)
    if name == "auto":
        return "mediapipe_torch" if device_type == "cuda" or detection_tiling != "off" else "mediapipe"
    return name


def check_tiling_support(name: str, detection_tiling) -> Optional[str]:
    """Whether the resolved detector ``name`` can honour ``detection_tiling``.

    Returns:
        None, or for "mediapipe" with tiling "auto" a one-line note for the start-up log
        (tiling then has no effect: MediaPipe's graph searches whole frames only).

    Raises:
        ValueError: "mediapipe" with an explicit tile side (asked for, cannot be done).
    """
    if name != "mediapipe" or detection_tiling == "off":
        return None
    if detection_tiling == "auto":
        return ("detector 'mediapipe': detection_tiling 'auto' has no effect (MediaPipe's CPU graph searches "
                "whole frames only); detector 'mediapipe_torch' or 'auto' finds small hands in large frames")
    raise ValueError(f"parameter 'detection_tiling': {detection_tiling!r} needs detector 'mediapipe_torch' or "
                     f"'auto' (MediaPipe's CPU graph searches whole frames only); with detector 'mediapipe' "
                     f"allowed: 'auto' (no effect) or 'off'")


def create_detector(name: str, max_hands: int = 2, min_score: float = 0.5, mirrored: bool = False,
                    static_image_mode: bool = False, model: str = "full", device="cpu",
                    precision: str = "auto", batch_size: int = 8, detection_tiling="off",
                    tile_scan: str = "round_robin", **kwargs) -> HandDetector:
    """Build the detector called ``name`` (one of ``DETECTORS``; "auto" resolved for ``device``).

    Args:
        max_hands, min_score, mirrored, static_image_mode: as ``MediaPipeHandDetector``.
        model: "full" / "lite" (``DETECTOR_MODELS``).
        device, precision, batch_size: torch settings (mediapipe_torch only; MediaPipe's
            CPU graph ignores them).
        detection_tiling, tile_scan: tiled palm search (mediapipe_torch; see
            ``mediapipe_torch.tiling``); "auto" resolves ``name`` "auto" to mediapipe_torch,
            and "mediapipe" takes only "off" or "auto" (``check_tiling_support``).
        **kwargs: further ``MediaPipeTorchHandDetector`` arguments (models_dir, cache_dir).

    Raises:
        ValueError: unknown name or model, out-of-range arguments.
        models.ModelFilesError: mediapipe_torch without the mediapipe==0.10.21 model files.
    """
    import torch

    from .mediapipe_torch import tiling

    detection_tiling = tiling.parse_tiling(detection_tiling)
    tiling.check_tile_scan(tile_scan)
    name = resolve_detector(name, torch.device(device).type, detection_tiling)
    check_tiling_support(name, detection_tiling)
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
                                      precision=precision, batch_size=batch_size,
                                      detection_tiling=detection_tiling, tile_scan=tile_scan, **kwargs)
