"""Rotated regions of interest in image pixels, as MediaPipe's hand graphs compute them.

A ``Roi`` is MediaPipe's ``NormalizedRect`` expressed in pixels of the image it lies in:
centre, width, height [px] and rotation [rad]. A point ``(u, v)`` of the rectangle's own
frame (origin at the centre, ``u`` along its width) is at
``(x, y) = (cx + cos(r) u - sin(r) v, cy + sin(r) u + cos(r) v)`` in the image (x right,
y down), so a positive rotation turns the rectangle clockwise on screen.

Sources (mediapipe v0.10.21): ``calculators/util/rect_transformation_calculator.cc``
(shift / square / scale), ``calculators/util/association_norm_rect_calculator.cc`` with
``util/rectangle_util.cc`` (axis-aligned IoU association), ``calculators/tensor/
image_to_tensor_converter_opencv.cc`` (how a rectangle maps onto the network input).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, List, Sequence, TypeVar

import numpy as np

T = TypeVar("T")


@dataclass(frozen=True)
class Roi:
    """A rotated rectangle in image pixels (see module docstring)."""

    x_center: float
    y_center: float
    width: float
    height: float
    rotation: float = 0.0

    def is_valid(self) -> bool:
        """Finite, with a positive size (a crop can be cut from it)."""
        v = (self.x_center, self.y_center, self.width, self.height, self.rotation)
        return all(math.isfinite(x) for x in v) and self.width > 0 and self.height > 0


def normalize_radians(angle: float) -> float:
    """``angle`` wrapped to [-pi, pi) (MediaPipe's NormalizeRadians)."""
    return angle - 2.0 * math.pi * math.floor((angle + math.pi) / (2.0 * math.pi))


def transform_rect(roi: Roi, scale: float, shift_x: float = 0.0, shift_y: float = 0.0,
                   square_long: bool = True) -> Roi:
    """Shift (in units of the rectangle's size, along its rotated axes), square to the long
    side, then scale — MediaPipe's RectTransformationCalculator in pixels."""
    c, s = math.cos(roi.rotation), math.sin(roi.rotation)
    dx = roi.width * shift_x * c - roi.height * shift_y * s
    dy = roi.width * shift_x * s + roi.height * shift_y * c
    w, h = roi.width, roi.height
    if square_long:
        w = h = max(w, h)
    return replace(roi, x_center=roi.x_center + dx, y_center=roi.y_center + dy, width=w * scale, height=h * scale)


def iou(a: Roi, b: Roi) -> float:
    """IoU of the axis-aligned boxes of ``a`` and ``b`` (rotation ignored, as MediaPipe)."""
    ax0, ay0, ax1, ay1 = a.x_center - a.width / 2, a.y_center - a.height / 2, a.x_center + a.width / 2, a.y_center + a.height / 2
    bx0, by0, bx1, by1 = b.x_center - b.width / 2, b.y_center - b.height / 2, b.x_center + b.width / 2, b.y_center + b.height / 2
    iw, ih = min(ax1, bx1) - max(ax0, bx0), min(ay1, by1) - max(ay0, by0)
    if iw < 0 or ih < 0:
        return 0.0
    inter = iw * ih
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union > 0 else 0.0


def inside_share(a: Roi, b: Roi) -> float:
    """Share of the area of ``a``'s axis-aligned box that lies inside ``b``'s (rotation
    ignored, as in ``iou``); 0 for an empty ``a``."""
    iw = min(a.x_center + a.width / 2, b.x_center + b.width / 2) - max(a.x_center - a.width / 2, b.x_center - b.width / 2)
    ih = min(a.y_center + a.height / 2, b.y_center + b.height / 2) - max(a.y_center - a.height / 2, b.y_center - b.height / 2)
    area = a.width * a.height
    return max(iw, 0.0) * max(ih, 0.0) / area if area > 0 else 0.0


def associate(*streams: Sequence[T], min_iou: float = 0.5,
              key: Callable[[T], Roi] = lambda roi: roi) -> List[T]:
    """Merge lists of ROIs (or of items whose ROI is ``key(item)``) in order; an item whose
    ROI overlaps (IoU > ``min_iou``) a later one's is dropped, so later items win
    (MediaPipe's AssociationNormRectCalculator: palm ROIs first, then the ROIs tracked from
    the previous frame's landmarks)."""
    out: List[T] = []
    for stream in streams:
        for item in stream:
            out = [o for o in out if iou(key(item), key(o)) <= min_iou]
            out.append(item)
    return out


def crop_affine(roi: Roi, out_width: int, out_height: int) -> np.ndarray:
    """(2, 3) float64 map from a crop pixel ``(i, j, 1)`` to the image point it samples.

    MediaPipe's CPU ImageToTensor maps the rectangle's corners onto the crop's corners
    (``cv::getPerspectiveTransform`` + ``cv::warpPerspective``): crop pixel ``(i, j)``
    samples the image at the rectangle point ``(u, v) = (-w/2 + i w / out_w, -h/2 + j h / out_h)``,
    in OpenCV's convention (integer coordinates at pixel centres). Landmarks come back the
    same way (``x_crop / out_w`` across the rectangle), so the two stay consistent.
    """
    c, s = math.cos(roi.rotation), math.sin(roi.rotation)
    sx, sy = roi.width / out_width, roi.height / out_height
    return np.array([
        [c * sx, -s * sy, roi.x_center - c * roi.width / 2 + s * roi.height / 2],
        [s * sx, c * sy, roi.y_center - s * roi.width / 2 - c * roi.height / 2],
    ], np.float64)
