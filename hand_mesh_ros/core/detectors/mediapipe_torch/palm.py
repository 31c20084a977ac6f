"""Palm detector post-processing: SSD anchors, box decoding, weighted NMS, hand ROIs.

The numbers are those of the mediapipe 0.10.21 graphs ``modules/palm_detection/
palm_detection_cpu.pbtxt`` and ``modules/hand_landmark/palm_detection_detection_to_roi.pbtxt``;
the algorithms follow the calculators they configure (``SsdAnchorsCalculator``,
``TensorsToDetectionsCalculator``, ``NonMaxSuppressionCalculator`` (WEIGHTED),
``DetectionLetterboxRemovalCalculator``, ``DetectionsToRectsCalculator``,
``RectTransformationCalculator``).

* Input: the whole image letterboxed (aspect kept, centred, zero border) to 192 x 192.
* 2016 anchors: 4 layers, strides 8, 16, 16, 16 (feature maps 24 x 24 and 12 x 12), two
  anchors per cell and layer (aspect ratio 1 and the interpolated scale), fixed anchor size
  (w = h = 1), centres at cell centres; layers of equal stride share their cells.
* Regressors per anchor (18): box centre x, y, width, height, then 7 keypoints (x, y), in
  input pixels relative to the anchor centre: value / 192 (+ anchor centre).
* Score: sigmoid of the logit clipped to [-100, 100]; candidates with score >= threshold.
* Weighted NMS (IoU > 0.3): each cluster's box and keypoints are the score-weighted mean,
  its score the best one's.
* Hand ROI: the palm box rotated so that keypoint 0 (wrist centre) -> keypoint 2 (middle
  finger MCP) points up (90 deg), shifted by -0.5 of its height towards the fingers,
  squared to its long side and scaled by 2.6.
"""
from __future__ import annotations

import math
from typing import List, NamedTuple, Tuple

import numpy as np
import torch

from .roi import Roi, crop_affine, normalize_radians, transform_rect

INPUT_SIZE = 192
NUM_ANCHORS = 2016
NUM_KEYPOINTS = 7
STRIDES = (8, 16, 16, 16)
ANCHOR_OFFSET = 0.5
SCORE_CLIP = 100.0
NMS_IOU = 0.3
#: Palm keypoints defining the hand's up direction: wrist centre -> middle finger MCP.
ROTATION_KEYPOINTS = (0, 2)
ROI_SCALE = 2.6
ROI_SHIFT_Y = -0.5


class Palm(NamedTuple):
    """One palm detection, normalized to the (un-letterboxed) image: ``box`` (4,)
    ``x_min, y_min, x_max, y_max`` and ``keypoints`` (7, 2) ``(x, y)`` in [0, 1] units of
    the image width / height; ``score`` in [0, 1]."""

    score: float
    box: np.ndarray
    keypoints: np.ndarray


def ssd_anchors() -> np.ndarray:
    """(2016, 2) float32 anchor centres ``(x, y)`` in [0, 1] of the 192 x 192 input.

    ``SsdAnchorsCalculator`` with fixed anchor size: per run of layers with equal stride,
    for each cell (row-major), 2 anchors per layer (aspect ratio 1.0 and the interpolated
    scale, also aspect 1.0), all at the cell centre.
    """
    centres = []
    layer = 0
    while layer < len(STRIDES):
        stride = STRIDES[layer]
        last = layer
        while last < len(STRIDES) and STRIDES[last] == stride:
            last += 1
        per_cell = 2 * (last - layer)
        n = math.ceil(INPUT_SIZE / stride)
        ys, xs = np.meshgrid((np.arange(n) + ANCHOR_OFFSET) / n, (np.arange(n) + ANCHOR_OFFSET) / n, indexing="ij")
        cells = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(cells, per_cell, axis=0))
        layer = last
    out = np.concatenate(centres).astype(np.float32)
    assert out.shape == (NUM_ANCHORS, 2)
    return out


def letterbox(width: int, height: int) -> Tuple[Roi, Tuple[float, float]]:
    """The square ROI around the image centre that the 192 x 192 input shows, and the
    letterbox padding (horizontal, vertical) as fractions of that input on each side."""
    side = float(max(width, height))
    pad_x = (1.0 - width / side) / 2.0
    pad_y = (1.0 - height / side) / 2.0
    return Roi(width / 2.0, height / 2.0, side, side, 0.0), (pad_x, pad_y)


def letterbox_affine(width: int, height: int) -> np.ndarray:
    """(2, 3) crop map (``roi.crop_affine``) of the palm detector input for a W x H image."""
    return crop_affine(letterbox(width, height)[0], INPUT_SIZE, INPUT_SIZE)


def decode(regressors: torch.Tensor, logits: torch.Tensor, anchors: torch.Tensor,
           min_score: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Decode on the device and keep the candidates.

    Args:
        regressors: (N, 2016, 18) raw box / keypoint regressors (``Identity``).
        logits: (N, 2016, 1) raw scores (``Identity_1``).
        anchors: (2016, 2) anchor centres (``ssd_anchors``) on the same device.
        min_score: score threshold (MediaPipe's min_detection_confidence).

    Returns:
        ``index`` (K,) int64 image of each candidate and ``rows`` (K, 19) float32
        ``score, x_min, y_min, x_max, y_max, kp0 x, kp0 y, ..., kp6 y`` normalized to the
        letterboxed input; candidates with a negative or NaN box size are dropped.
    """
    r = regressors.float() / INPUT_SIZE
    scores = torch.sigmoid(logits.float()[..., 0].clamp(-SCORE_CLIP, SCORE_CLIP))
    ax, ay = anchors[:, 0], anchors[:, 1]
    cx, cy, w, h = r[..., 0] + ax, r[..., 1] + ay, r[..., 2], r[..., 3]
    kx = r[..., 4::2] + ax[:, None]
    ky = r[..., 5::2] + ay[:, None]
    keep = (scores >= min_score) & (w >= 0) & (h >= 0)  # NaN compares false: dropped
    box = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)
    kps = torch.stack([kx, ky], dim=-1).reshape(*kx.shape[:2], 2 * NUM_KEYPOINTS)
    rows = torch.cat([scores.unsqueeze(-1), box, kps], dim=-1)
    index = keep.nonzero()
    return index[:, 0], rows[index[:, 0], index[:, 1]]


def iou_one_to_many(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(K,) IoU of ``box`` (4,) ``x_min, y_min, x_max, y_max`` with each of ``boxes`` (K, 4)."""
    iw = np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0])
    ih = np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1])
    inter = np.where((iw >= 0) & (ih >= 0), iw * ih, 0.0)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def weighted_nms(rows: np.ndarray, iou_threshold: float = NMS_IOU) -> List[np.ndarray]:
    """MediaPipe's WEIGHTED non-maximum suppression.

    Args:
        rows: (K, 19) candidates as returned by ``decode`` (one image).

    Returns:
        One (19,) row per cluster, best first: the best candidate's score, and the
        score-weighted mean of the box corners and keypoints of all candidates whose IoU
        with it exceeds ``iou_threshold`` (the best one included).
    """
    order = np.argsort(-rows[:, 0], kind="stable")
    remaining = rows[order].astype(np.float64)
    out = []
    while len(remaining):
        best = remaining[0]
        overlap = iou_one_to_many(best[1:5], remaining[:, 1:5]) > iou_threshold
        cluster = remaining[overlap]
        weights = cluster[:, 0:1]
        merged = best.copy()
        if len(cluster):
            merged[1:] = (cluster[:, 1:] * weights).sum(0) / weights.sum()
        out.append(merged.astype(np.float32))
        if overlap.sum() == 0:  # cannot happen for finite boxes (IoU with itself is 1)
            break
        remaining = remaining[~overlap]
    return out


def remove_letterbox(row: np.ndarray, pad: Tuple[float, float]) -> Palm:
    """A decoded row on the letterboxed input -> a ``Palm`` normalized to the image."""
    px, py = pad
    sx, sy = 1.0 - 2.0 * px, 1.0 - 2.0 * py
    box = np.array([(row[1] - px) / sx, (row[2] - py) / sy, (row[3] - px) / sx, (row[4] - py) / sy])
    kps = row[5:].reshape(NUM_KEYPOINTS, 2).astype(np.float64)
    kps = np.stack([(kps[:, 0] - px) / sx, (kps[:, 1] - py) / sy], axis=1)
    return Palm(float(row[0]), box, kps)


def hand_roi(palm: Palm, width: int, height: int) -> Roi:
    """The hand ROI [px] MediaPipe derives from a palm detection in a W x H image."""
    x0, y0, x1, y1 = palm.box
    a, b = ROTATION_KEYPOINTS
    kx, ky = palm.keypoints[:, 0] * width, palm.keypoints[:, 1] * height
    rotation = normalize_radians(math.pi / 2 - math.atan2(-(ky[b] - ky[a]), kx[b] - kx[a]))
    box = Roi((x0 + x1) / 2 * width, (y0 + y1) / 2 * height, (x1 - x0) * width, (y1 - y0) * height, rotation)
    return transform_rect(box, ROI_SCALE, shift_y=ROI_SHIFT_Y, square_long=True)
