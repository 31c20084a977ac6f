"""Detector interface and factory."""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Protocol, Sequence, Tuple

import numpy as np

from ...config import BY_NAME, DETECTOR_MODELS, DETECTORS, check_together, check_value
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


class FrameSizeRouter:
    """``detector: auto`` on the CPU with tiling on: MediaPipe's CPU graph for the images that
    tiling cuts no tile from (``detection_tiling: auto``: long side up to 640 px), so these get
    exactly the detections and the speed they had before tiling existed, and ``mediapipe_torch``,
    which searches tiles, for the larger ones. A camera whose image size moves to the other
    side is reset in both, so its tracking state lives in one of them only.

    Args:
        whole: the detector of images without tiles (MediaPipe's graph, per camera).
        tiled: the detector of the others (``MediaPipeTorchHandDetector`` with tiling).
        needs_tiles: ``needs_tiles(width, height)`` -> True when tiles are cut from such an image.
    """

    def __init__(self, whole: HandDetector, tiled: HandDetector, needs_tiles: Callable[[int, int], bool]):
        self.whole, self.tiled, self._needs_tiles = whole, tiled, needs_tiles
        self._route: Dict[str, bool] = {}

    def detect_batch(self, items: Sequence[Tuple[str, np.ndarray]]) -> List[List[Detection]]:
        """Each image through the detector of its size (one ``detect_batch`` call each)."""
        routes = []
        for camera, image in items:
            shape = getattr(image, "shape", ())
            tiled = len(shape) >= 2 and bool(self._needs_tiles(int(shape[1]), int(shape[0])))
            if self._route.setdefault(camera, tiled) != tiled:
                self.reset(camera)
                self._route[camera] = tiled
            routes.append(tiled)
        out: List[List[Detection]] = [[] for _ in items]
        for tiled, detector in ((False, self.whole), (True, self.tiled)):
            ks = [k for k, r in enumerate(routes) if r == tiled]
            if ks:
                for k, dets in zip(ks, detector.detect_batch([items[k] for k in ks])):
                    out[k] = dets
        return out

    def detect(self, image: np.ndarray, camera: str = "default") -> List[Detection]:
        return self.detect_batch([(camera, image)])[0]

    def reset(self, camera: Optional[str] = None) -> None:
        """Forget the tracking state of ``camera`` (all cameras when None) in both."""
        self.whole.reset(camera)
        self.tiled.reset(camera)

    def close(self) -> None:
        self.whole.close()
        self.tiled.close()


#: What ``detector: auto`` runs on the CPU with tiling on (``FrameSizeRouter``).
BY_FRAME_SIZE = "mediapipe+mediapipe_torch"


def resolve_detector(name: str, device_type: str, detection_tiling="off") -> str:
    """The detector ``name`` stands for on a device of type ``device_type`` ("cpu" / "cuda").

    "auto" is "mediapipe_torch" on CUDA; on the CPU, "mediapipe" (MediaPipe's CPU graph)
    with ``detection_tiling`` off, else ``BY_FRAME_SIZE``: the graph for the images that get
    no tile and "mediapipe_torch" for the ones that do (``FrameSizeRouter``; the frame size is
    unknown at start-up). MediaPipe's graph cannot search tiles: in the mediapipe 0.10.21
    wheel, ``hand_landmark_tracking_cpu.binarypb`` feeds the whole image to
    ``PalmDetectionCpu`` (input ``IMAGE`` only, letterboxed inside it), and
    ``mp.solutions.hands`` exposes only the side packets ``num_hands``, ``model_complexity``,
    ``use_prev_landmarks`` and two score thresholds; tiles would need a graph per tile (each
    also tracking and running landmarks on its own) or a new graph around the palm model,
    i.e. this package's ``mediapipe_torch`` again.
    """
    check_value(BY_NAME["detector"], name)
    if name == "auto":
        if device_type == "cuda":
            return "mediapipe_torch"
        return "mediapipe" if detection_tiling == "off" else BY_FRAME_SIZE
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
    check_together({"detector": name, "detection_tiling": detection_tiling})  # the rule refusing a tile side
    return ("detector 'mediapipe': detection_tiling 'auto' has no effect (MediaPipe's CPU graph searches "
            "whole frames only); detector 'mediapipe_torch' or 'auto' finds small hands in large frames")


def create_detector(name: str, max_hands: int = 2, min_score: float = 0.5, mirrored: bool = False,
                    static_image_mode: bool = False, model: str = "full", device="cpu",
                    precision: str = "auto", batch_size: int = 8, detection_tiling="off",
                    tile_scan: str = "round_robin", **kwargs) -> HandDetector:
    """Build the detector called ``name`` (one of ``DETECTORS``, "auto" resolved for ``device``;
    or ``BY_FRAME_SIZE``, what ``resolve_detector`` made of it).

    Args:
        max_hands, min_score, mirrored, static_image_mode: as ``MediaPipeHandDetector``.
        model: "full" / "lite" (``DETECTOR_MODELS``).
        device, precision, batch_size: torch settings (mediapipe_torch only; MediaPipe's
            CPU graph ignores them).
        detection_tiling, tile_scan: tiled palm search (mediapipe_torch; see
            ``mediapipe_torch.tiling``); with tiling on, ``name`` "auto" on the CPU is a
            ``FrameSizeRouter`` (``resolve_detector``), and "mediapipe" takes only "off" or
            "auto" (``check_tiling_support``).
        **kwargs: further ``MediaPipeTorchHandDetector`` arguments (models_dir, cache_dir).

    Raises:
        ValueError: unknown name or model, out-of-range arguments.
        models.ModelFilesError: mediapipe_torch without the mediapipe==0.10.21 model files.
    """
    import torch

    from .mediapipe_torch import tiling

    detection_tiling = tiling.parse_tiling(detection_tiling)
    tiling.check_tile_scan(tile_scan)
    if name != BY_FRAME_SIZE:  # (already resolved)
        name = resolve_detector(name, torch.device(device).type, detection_tiling)
    check_tiling_support(name, detection_tiling)
    check_value(BY_NAME["detector_model"], model)
    if name == BY_FRAME_SIZE:
        args = dict(max_hands=max_hands, min_score=min_score, mirrored=mirrored, static_image_mode=static_image_mode,
                    model=model, device=device, precision=precision, batch_size=batch_size, tile_scan=tile_scan)
        return FrameSizeRouter(create_detector("mediapipe", detection_tiling="off", **args),
                               create_detector("mediapipe_torch", detection_tiling=detection_tiling, **args, **kwargs),
                               lambda w, h: tiling.tile_side_for(detection_tiling, w, h) is not None)
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
