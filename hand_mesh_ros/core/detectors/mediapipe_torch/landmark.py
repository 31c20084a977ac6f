"""Hand landmark model post-processing: landmarks back into the image, world landmarks,
handedness, and the next frame's ROI from the landmarks (tracking mode).

From the mediapipe 0.10.21 graphs ``modules/hand_landmark/hand_landmark_cpu.pbtxt`` and
``hand_landmark_landmarks_to_roi.pbtxt`` and the calculators they configure
(``TensorsToLandmarksCalculator``, ``LandmarkProjectionCalculator``,
``WorldLandmarkProjectionCalculator``, ``TensorsToClassificationCalculator``,
``HandLandmarksToRectCalculator``, ``RectTransformationCalculator``):

* Input: the hand ROI cut to 224 x 224 (replicated border).
* ``Identity`` (63): 21 x (x, y, z) in crop pixels; x, y go back through the ROI
  (rotation, size, centre) into image pixels; z is divided by 224 and by 0.4 (MediaPipe's
  ``normalize_z``) and scaled by the ROI width relative to the image width, giving
  MediaPipe's normalized z.
* ``Identity_1``: hand presence in [0, 1]; ``Identity_2``: handedness in [0, 1], the score
  of the label "Left" (the other label, "Right", scores 1 - h) — labels that assume a
  mirrored (selfie) image.
* ``Identity_3`` (63): world landmarks [m] in the crop's axes, rotated by the ROI rotation
  into the image's axes.
* Next ROI from landmarks 0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18: rotation so that the
  wrist -> middle of the MCPs (mean of the middle MCP and of the index / ring MCP midpoint)
  points up, the landmarks' bounding box in that rotated frame, shifted by -0.1 of its
  height, squared to its long side, scaled by 2.0.
"""
from __future__ import annotations

import math
from typing import Tuple

import numpy as np

from .roi import Roi, normalize_radians, transform_rect

INPUT_SIZE = 224
NUM_LANDMARKS = 21
Z_NORMALIZATION = 0.4
#: Landmarks used for the tracking ROI (HandLandmarksToRectCalculator's partial set).
TRACKING_SUBSET = (0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18)
ROI_SCALE = 2.0
ROI_SHIFT_Y = -0.1


def project_landmarks(raw: np.ndarray, roi: Roi, width: int, height: int) -> np.ndarray:
    """(21, 3) landmarks: x, y in image pixels and MediaPipe's normalized z.

    Args:
        raw: (63,) ``Identity`` output for the crop of ``roi``.
        roi: the crop's ROI [px] in a ``width`` x ``height`` image.
    """
    lm = np.asarray(raw, np.float64).reshape(NUM_LANDMARKS, 3)
    u = (lm[:, 0] / INPUT_SIZE - 0.5) * roi.width
    v = (lm[:, 1] / INPUT_SIZE - 0.5) * roi.height
    c, s = math.cos(roi.rotation), math.sin(roi.rotation)
    x = c * u - s * v + roi.x_center
    y = s * u + c * v + roi.y_center
    z = lm[:, 2] / INPUT_SIZE / Z_NORMALIZATION * (roi.width / width)
    return np.stack([x, y, z], axis=1)


def world_landmarks(raw: np.ndarray, roi: Roi) -> np.ndarray:
    """(21, 3) world landmarks [m] in the image's axes (x right, y down, z away)."""
    w = np.asarray(raw, np.float64).reshape(NUM_LANDMARKS, 3).copy()
    c, s = math.cos(roi.rotation), math.sin(roi.rotation)
    x, y = w[:, 0].copy(), w[:, 1].copy()
    w[:, 0] = c * x - s * y
    w[:, 1] = s * x + c * y
    return w


def handedness(raw: float) -> Tuple[bool, float]:
    """(MediaPipe says "Right", score): label "Left" scores ``raw``, "Right" ``1 - raw``;
    the higher wins, "Left" on a tie (top-1 of the two)."""
    left = float(raw)
    return (1.0 - left > left), max(left, 1.0 - left)


def tracking_roi(landmarks_px: np.ndarray) -> Roi:
    """The next frame's ROI [px] from this frame's (21, >=2) landmarks in pixels."""
    pts = np.asarray(landmarks_px, np.float64)[list(TRACKING_SUBSET), :2]
    wrist = pts[0]
    # subset positions 4, 6, 8 are the index, middle and ring MCPs (landmarks 5, 9, 13)
    mcp = ((pts[4] + pts[8]) / 2.0 + pts[6]) / 2.0
    rotation = normalize_radians(math.pi / 2 - math.atan2(-(mcp[1] - wrist[1]), mcp[0] - wrist[0]))
    # MediaPipe starts its maxima at FLT_MIN (a tiny positive number), not at -inf
    tiny = np.finfo(np.float32).tiny
    centre = (pts.min(0) + np.maximum(pts.max(0), tiny)) / 2.0
    rel = pts - centre
    c, s = math.cos(-rotation), math.sin(-rotation)
    proj = np.stack([c * rel[:, 0] - s * rel[:, 1], s * rel[:, 0] + c * rel[:, 1]], axis=1)
    lo, hi = proj.min(0), np.maximum(proj.max(0), tiny)
    pc = (lo + hi) / 2.0
    cr, sr = math.cos(rotation), math.sin(rotation)
    cx = cr * pc[0] - sr * pc[1] + centre[0]
    cy = sr * pc[0] + cr * pc[1] + centre[1]
    size = hi - lo
    return transform_rect(Roi(cx, cy, size[0], size[1], rotation), ROI_SCALE, shift_y=ROI_SHIFT_Y,
                          square_long=True)
