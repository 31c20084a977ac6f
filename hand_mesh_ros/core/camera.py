"""Pinhole projection and metric placement of a hand in the camera optical frame.

Frames: camera optical frame (x right, y down, z forward) [m]; pixels (u right, v down) [px].
Intrinsics come from ``sensor_msgs/CameraInfo.K`` (``types.CameraIntrinsics``), so ``fx != fy``
and an off-centre principal point are handled (HaMeR assumes ``fx = fy`` and the image
centre; see hamer#117/#119).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .types import CameraIntrinsics


def project(points: np.ndarray, K: CameraIntrinsics) -> np.ndarray:
    """Pinhole projection ``u = fx x / z + cx``, ``v = fy y / z + cy`` (Hartley & Zisserman 6.1).

    Args:
        points: (..., 3) points in the optical frame [m], z > 0 for points in front.
        K: intrinsics.

    Returns:
        (..., 2) float64 pixel coordinates [px] (inf/nan where z == 0).
    """
    p = np.asarray(points, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        u = K.fx * p[..., 0] / p[..., 2] + K.cx
        v = K.fy * p[..., 1] / p[..., 2] + K.cy
    return np.stack([u, v], axis=-1)


def solve_translation(joints: np.ndarray, keypoints_2d: np.ndarray, K: CameraIntrinsics,
                      weights: Optional[np.ndarray] = None) -> np.ndarray:
    """Metric translation ``t`` such that ``project(joints + t)`` best matches ``keypoints_2d``.

    For each joint ``X = (x, y, z)`` with pixel ``(u, v)``, ``u = fx (x + tx)/(z + tz) + cx``
    multiplied out is linear in ``t``::

        fx tx - (u - cx) tz = (u - cx) z - fx x
        fy ty - (v - cy) tz = (v - cy) z - fy y

    so ``t`` is the (weighted) linear least-squares solution of 2N equations — the
    algebraic-error form of the perspective alignment used for SMPL/MANO fitting (e.g.
    SMPLify's depth initialisation, Bogo et al. 2016). Exact when the projections are exact.

    Args:
        joints: (N, 3) joints in camera-aligned axes relative to an arbitrary origin [m].
        keypoints_2d: (N, 2) observed pixels [px].
        K: intrinsics (validated).
        weights: optional (N,) non-negative per-joint weights (e.g. keypoint confidence).

    Returns:
        (3,) float64 translation [m] in the optical frame.

    Raises:
        ValueError: mismatched shapes, fewer than 2 weighted joints, or a degenerate system.
    """
    X = np.asarray(joints, np.float64)
    uv = np.asarray(keypoints_2d, np.float64)
    if X.ndim != 2 or X.shape[1] != 3 or uv.shape != (X.shape[0], 2):
        raise ValueError(f"joints (N,3) and keypoints_2d (N,2) expected, got {X.shape} and {uv.shape}")
    w = np.ones(len(X)) if weights is None else np.asarray(weights, np.float64)
    if (w > 0).sum() < 2:
        raise ValueError("solve_translation needs at least 2 joints with positive weight")
    du = uv[:, 0] - K.cx
    dv = uv[:, 1] - K.cy
    n = len(X)
    A = np.zeros((2 * n, 3))
    b = np.empty(2 * n)
    A[:n, 0] = K.fx
    A[:n, 2] = -du
    b[:n] = du * X[:, 2] - K.fx * X[:, 0]
    A[n:, 1] = K.fy
    A[n:, 2] = -dv
    b[n:] = dv * X[:, 2] - K.fy * X[:, 1]
    sw = np.sqrt(np.concatenate([w, w]))
    t, _, rank, _ = np.linalg.lstsq(A * sw[:, None], b * sw, rcond=None)
    if rank < 3:
        raise ValueError("solve_translation: degenerate keypoints (all on one pixel?)")
    return t


def solve_translation_batch(joints: np.ndarray, keypoints_2d: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """``solve_translation`` for B hands.

    Args:
        joints: (B, N, 3) [m]; keypoints_2d: (B, N, 2) [px];
        intrinsics: (B, 4) ``fx, fy, cx, cy`` [px] per hand.

    Returns:
        (B, 3) float64 translations [m].

    Raises:
        ValueError: as ``solve_translation``.
    """
    out = np.empty((len(joints), 3))
    for b, (fx, fy, cx, cy) in enumerate(np.asarray(intrinsics, np.float64)):
        K = CameraIntrinsics(fx, fy, cx, cy, 1, 1)
        out[b] = solve_translation(joints[b], keypoints_2d[b], K)
    return out
