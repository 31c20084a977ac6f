"""Detection stage: the hands of a batch of frames, all cameras in one ``detect_batch``,
with re-detection of images whose detector slots a duplicate filled.

In static-image mode the detector is asked for ``EXTRA_DETECTOR_CANDIDATES`` hands more than
``max_hands`` (when ``max_hands`` >= 2), so that a duplicate detection cannot push a real
hand out before de-duplication. Palm detection runs on every image in that mode anyway, so
the extra slot costs a landmark pass only when a further palm is found.

In tracking (video) mode the detector is asked for ``max_hands`` exactly, and a duplicate is
handled when it happens (``DetectionStage.redetections``): when the detector's slots were
full and de-duplication left fewer than ``max_hands`` hands, the camera's detector tracking
is reset and the same image detected again, from palm detection. One slot more would cost
on every frame: MediaPipe runs its palm detector while it tracks fewer hands than asked, so
with two hands in view 3 asked instead of 2 costs +70 % (measured on this project's 2-core
machines, 640x360 two-hand frames: p50 13.1 -> 21.9 ms/frame; and MediaPipe asked for 2 gave
both hands, no duplicate, in 202 of 202 frames of each two-hand test video). A reset costs
1.6 ms and the next detection ~20 ms more.
"""
from __future__ import annotations

import logging
import time
from typing import List, Sequence, Tuple

import numpy as np

from .detectors import HandDetector
from .records import Frame
from .tracking import suppress_duplicates
from .types import Detection

_LOG = logging.getLogger(__name__)

#: Hands asked of the detector beyond ``max_hands`` in static-image mode (module docstring).
EXTRA_DETECTOR_CANDIDATES = 1


def detector_max_hands(max_hands: int, static_image_mode: bool) -> int:
    """Hands the detector is asked for per image (module docstring)."""
    extra = EXTRA_DETECTOR_CANDIDATES if static_image_mode and max_hands >= 2 else 0
    return int(max_hands) + extra


class DetectionStage:
    """Runs a ``HandDetector`` on the frames of a batch.

    Args:
        detector: built for ``detector_max_hands(max_hands, static_image_mode)`` hands.
        max_hands, static_image_mode, nms_iou, nms_keypoint_distance: as ``PipelineConfig``.

    Attributes:
        redetections: images detected a second time because a duplicate filled the
            detector's slots (tracking mode).
    """

    def __init__(self, detector: HandDetector, max_hands: int, static_image_mode: bool, nms_iou: float,
                 nms_keypoint_distance: float):
        self.detector = detector
        self.max_hands = int(max_hands)
        self.max_detections = detector_max_hands(max_hands, static_image_mode)
        self.static_image_mode = static_image_mode
        self.nms_iou, self.nms_keypoint_distance = nms_iou, nms_keypoint_distance
        self.redetections = 0

    def detect(self, frames: Sequence[Frame]) -> None:
        """Fill ``Frame.detections`` of every frame (sorted by descending score); a frame
        without a stamp gets the monotonic clock's time [s] now that its hands are seen."""
        pairs = [(frame.camera, frame.image) for frame in frames]
        detections = self._redetect_duplicates(pairs, self.detector.detect_batch(pairs))
        for frame, dets in zip(frames, detections):
            frame.detections = dets
            if frame.stamp is None:
                frame.stamp = time.monotonic()

    def warm_up(self, cameras: Sequence[str], size: Tuple[int, int]) -> None:
        """Build and run each camera's detector once on a black (height, width) image
        [px], then forget the tracking state that left."""
        black = np.zeros((int(size[0]), int(size[1]), 3), np.uint8)
        self.detector.detect_batch([(camera, black) for camera in cameras])
        for camera in cameras:
            self.detector.reset(camera)

    def _redetect_duplicates(self, pairs: Sequence[Tuple[str, np.ndarray]],
                             detections: List[List[Detection]]) -> List[List[Detection]]:
        """Detect again, from palm detection, the images whose detector slots a duplicate
        filled (tracking mode): all ``max_detections`` slots taken and fewer than
        ``max_hands`` distinct hands after ``suppress_duplicates``. The camera's detector
        tracking is reset first, so the duplicate is not tracked on into the next frame.

        Args:
            pairs: ``(camera key, image)`` as given to ``detect_batch``.
            detections: its result, one list per pair.

        Returns:
            ``detections`` with the re-detected images' lists replaced.
        """
        if self.static_image_mode:
            return detections
        redo = []
        for k, dets in enumerate(detections):
            if len(dets) >= self.max_detections:
                kept = suppress_duplicates(dets, self.nms_iou, self.nms_keypoint_distance)
                if len(kept) < min(len(dets), self.max_hands):
                    redo.append(k)
        if not redo:
            return detections
        for k in redo:
            self.detector.reset(pairs[k][0])
        again = self.detector.detect_batch([pairs[k] for k in redo])
        self.redetections += len(redo)
        _LOG.debug("duplicate detections filled the detector's slots: re-detected %d image(s)", len(redo))
        out = list(detections)
        for k, dets in zip(redo, again):
            out[k] = dets
        return out
