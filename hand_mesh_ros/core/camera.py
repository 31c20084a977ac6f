"""Camera model: projection with lens distortion, undistortion, metric placement of a hand.

Frames: camera optical frame (x right, y down, z forward) [m]; pixels (u right, v down) [px],
OpenCV's convention (integer = pixel centre). Intrinsics come from ``sensor_msgs/CameraInfo``
(``types.CameraIntrinsics``: ``K``, ``D``, ``distortion_model``), so ``fx != fy``, an
off-centre principal point and lens distortion are handled (HaMeR assumes ``fx = fy``, the
image centre and no distortion; see hamer#117/#119).

Pixels come in two kinds:

* *raw* pixels: where the lens puts a point in the image as the camera delivers it
  (``image_raw``); what the detector sees, what overlays and a registered depth image use;
* *ideal* pixels: the same rays through an ideal pinhole with the same ``K``
  (``u = fx x/z + cx``), what ``solve_translation`` and the fit's reprojection term use.

``project`` maps points to raw pixels, ``undistort_points`` raw -> ideal, ``distort_points``
ideal -> raw. The distortion maths is OpenCV's (``cv2.projectPoints`` /
``cv2.undistortPointsIter`` for ``plumb_bob`` and ``rational_polynomial``, ``cv2.fisheye`` for
``equidistant``). With no distortion these are the identity / plain pinhole (fast path).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional, Tuple

import cv2
import numpy as np

from .types import CameraIntrinsics

#: Undistortion iterations / tolerance: OpenCV's default 5 iterations leave up to 0.03 px on a
#: strong plumb_bob lens; 50 reach 1e-10 px (measured, round trip through ``project``).
_UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-12)
_ZERO3 = np.zeros(3)


def _coefficients(K: CameraIntrinsics) -> Optional[np.ndarray]:
    """OpenCV ``D`` of ``K``, or None for an ideal pinhole; ValueError for unusable ones."""
    if not K.is_distorted:
        return None
    problem = K.distortion_problem()
    if problem is not None:
        raise ValueError(f"camera intrinsics: {problem}: model {K.distortion_model!r} with "
                         f"{len(K.distortion)} coefficients (supported: plumb_bob 5, "
                         f"rational_polynomial 8/12/14, equidistant 4)")
    return np.asarray(K.distortion, np.float64)


@lru_cache(maxsize=64)
def valid_radius(model: str, coeffs: Tuple[float, ...]) -> float:
    """Largest normalised radius ``sqrt(x^2 + y^2)`` (``x = X/Z``) up to which the model's
    radial mapping increases monotonically [unitless, = tan of the off-axis angle].

    Polynomial lens models are fitted to the image area; beyond it they can fold back and map
    a point far outside the field of view into the image. ``project`` returns NaN there.
    Tangential / thin-prism terms are ignored for this bound. Scanned up to 89.9 deg off axis.
    """
    theta = np.linspace(0.0, np.deg2rad(89.9), 20001)
    r = np.tan(theta)
    k = np.zeros(14)
    k[:len(coeffs)] = coeffs
    if model == "equidistant":
        t2 = theta ** 2
        rd = theta * (1 + t2 * (k[0] + t2 * (k[1] + t2 * (k[2] + t2 * k[3]))))
        ok = np.ones_like(r, bool)
    else:
        r2 = r ** 2
        num = 1 + r2 * (k[0] + r2 * (k[1] + r2 * k[4]))
        den = 1 + r2 * (k[5] + r2 * (k[6] + r2 * k[7]))
        ok = den > 0
        rd = np.divide(r * num, den, out=np.zeros_like(r), where=ok)
    bad = np.flatnonzero(~ok[1:] | (np.diff(rd) <= 0))
    return float(r[bad[0]] if len(bad) else r[-1])


def _distort_normalized(xy: np.ndarray, K: CameraIntrinsics, D: np.ndarray) -> np.ndarray:
    """(N, 2) normalised ``x/z, y/z`` -> (N, 2) raw pixels (points beyond ``valid_radius`` NaN)."""
    out = np.full(xy.shape, np.nan)
    ok = np.isfinite(xy).all(1) & ((xy ** 2).sum(1) <= valid_radius(K.distortion_model, K.distortion) ** 2)
    if ok.any():
        pts = np.concatenate([xy[ok], np.ones((int(ok.sum()), 1))], 1)
        if K.distortion_model == "equidistant":
            uv, _ = cv2.fisheye.projectPoints(pts[:, None, :], _ZERO3, _ZERO3, K.K, D)
        else:
            uv, _ = cv2.projectPoints(pts, _ZERO3, _ZERO3, K.K, D)
        out[ok] = uv.reshape(-1, 2)
    return out


def project(points: np.ndarray, K: CameraIntrinsics) -> np.ndarray:
    """Raw pixels of points of the optical frame: pinhole ``u = fx x/z + cx``, ``v = fy y/z + cy``
    (Hartley & Zisserman 6.1), then ``K``'s lens distortion (OpenCV's models).

    Args:
        points: (..., 3) points in the optical frame [m], z > 0 for points in front.
        K: intrinsics (distortion, if any, usable: see ``CameraIntrinsics.distortion_problem``).

    Returns:
        (..., 2) float64 raw pixel coordinates [px]. Ideal pinhole: inf/nan where z == 0
        (points behind the camera are projected through the centre, as the formula gives).
        With distortion: NaN for z <= 0, non-finite points and points beyond ``valid_radius``.

    Raises:
        ValueError: distortion that cannot be used (unsupported model, wrong length).
    """
    p = np.asarray(points, np.float64)
    D = _coefficients(K)
    if D is None:
        with np.errstate(divide="ignore", invalid="ignore"):
            u = K.fx * p[..., 0] / p[..., 2] + K.cx
            v = K.fy * p[..., 1] / p[..., 2] + K.cy
        return np.stack([u, v], axis=-1)
    flat = p.reshape(-1, 3)
    with np.errstate(divide="ignore", invalid="ignore"):
        xy = np.where(flat[:, 2:3] > 0, flat[:, :2] / flat[:, 2:3], np.nan)
    return _distort_normalized(xy, K, D).reshape(p.shape[:-1] + (2,))


def distort_points(uv: np.ndarray, K: CameraIntrinsics) -> np.ndarray:
    """Ideal pinhole pixels -> raw pixels of the same rays (inverse of ``undistort_points``).

    Args:
        uv: (..., 2) ideal pixels [px] (pinhole with ``K``'s fx, fy, cx, cy).
        K: intrinsics.

    Returns:
        (..., 2) float64 raw pixels [px]; a copy of ``uv`` with no distortion; NaN beyond
        ``valid_radius`` or for non-finite input.

    Raises:
        ValueError: distortion that cannot be used.
    """
    uv = np.asarray(uv, np.float64)
    D = _coefficients(K)
    if D is None:
        return uv.copy()
    xy = (uv.reshape(-1, 2) - [K.cx, K.cy]) / [K.fx, K.fy]
    return _distort_normalized(xy, K, D).reshape(uv.shape)


def undistort_points(uv: np.ndarray, K: CameraIntrinsics) -> np.ndarray:
    """Raw pixels -> ideal pinhole pixels with the same ``K`` (OpenCV ``undistortPoints`` with
    ``P = K``; iterated to 1e-10 px, see ``_UNDISTORT_CRITERIA``).

    Args:
        uv: (..., 2) raw pixels [px] (e.g. detector keypoints in ``image_raw``).
        K: intrinsics.

    Returns:
        (..., 2) float64 ideal pixels [px]; a copy of ``uv`` with no distortion; NaN where
        the input is not finite.

    Raises:
        ValueError: distortion that cannot be used.
    """
    uv = np.asarray(uv, np.float64)
    D = _coefficients(K)
    if D is None:
        return uv.copy()
    flat = uv.reshape(-1, 2)
    out = np.full(flat.shape, np.nan)
    ok = np.isfinite(flat).all(1)
    if ok.any():
        src = np.ascontiguousarray(flat[ok].reshape(-1, 1, 2))
        if K.distortion_model == "equidistant":
            und = cv2.fisheye.undistortPoints(src, K.K, D, R=np.eye(3), P=K.K, criteria=_UNDISTORT_CRITERIA)
        else:
            und = cv2.undistortPointsIter(src, K.K, D, None, K.K, _UNDISTORT_CRITERIA)
        out[ok] = und.reshape(-1, 2)
    return out.reshape(uv.shape)


def undistortion_scale(uv: np.ndarray, K: CameraIntrinsics) -> np.ndarray:
    """Local scale of the undistortion: ideal pixels per raw pixel around raw pixels.

    ``sqrt(|det J|)`` of the Jacobian of ``undistort_points`` (central differences, +-0.5 px):
    how much larger a small raw-image patch (e.g. a hand crop) is in the ideal pinhole image.

    Args:
        uv: (N, 2) raw pixels [px]; K: intrinsics.

    Returns:
        (N,) float64 [ideal px / raw px]; ones with no distortion.

    Raises:
        ValueError: distortion that cannot be used.
    """
    uv = np.asarray(uv, np.float64).reshape(-1, 2)
    if not K.is_distorted:
        return np.ones(len(uv))
    h = 0.5
    offsets = np.array([[-h, 0], [h, 0], [0, -h], [0, h]])
    q = undistort_points(uv[:, None, :] + offsets, K)
    ju, jv = (q[:, 1] - q[:, 0]) / (2 * h), (q[:, 3] - q[:, 2]) / (2 * h)
    return np.sqrt(np.abs(ju[:, 0] * jv[:, 1] - ju[:, 1] * jv[:, 0]))


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
    w = None if weights is None else np.asarray(weights, np.float64)[None]
    return solve_translation_batch(X[None], uv[None], np.array([[K.fx, K.fy, K.cx, K.cy]]), w)[0]


def solve_translation_batch(joints: np.ndarray, keypoints_2d: np.ndarray, intrinsics: np.ndarray,
                            weights: Optional[np.ndarray] = None) -> np.ndarray:
    """``solve_translation`` for B hands at once (the 3 x 3 normal equations per hand).

    Args:
        joints: (B, N, 3) [m]; keypoints_2d: (B, N, 2) [px];
        intrinsics: (B, 4) ``fx, fy, cx, cy`` [px] per hand;
        weights: optional (B, N) non-negative per-joint weights.

    Returns:
        (B, 3) float64 translations [m].

    Raises:
        ValueError: mismatched shapes, fewer than 2 weighted joints, or a degenerate system.
    """
    X = np.asarray(joints, np.float64)
    uv = np.asarray(keypoints_2d, np.float64)
    B, n = X.shape[:2]
    intr = np.asarray(intrinsics, np.float64).reshape(B, 4)
    w = np.ones((B, n)) if weights is None else np.asarray(weights, np.float64).reshape(B, n)
    if ((w > 0).sum(1) < 2).any():
        raise ValueError("solve_translation needs at least 2 joints with positive weight")
    fx, fy, cx, cy = (intr[:, k, None] for k in range(4))
    du, dv = uv[..., 0] - cx, uv[..., 1] - cy
    bu = du * X[..., 2] - fx * X[..., 0]           # rows  fx tx - du tz = bu
    bv = dv * X[..., 2] - fy * X[..., 1]           #       fy ty - dv tz = bv
    sw, swu, swv = w.sum(1), (w * du).sum(1), (w * dv).sum(1)
    f_x, f_y = fx[:, 0], fy[:, 0]
    AtA = np.zeros((B, 3, 3))
    AtA[:, 0, 0], AtA[:, 1, 1] = f_x ** 2 * sw, f_y ** 2 * sw
    AtA[:, 0, 2] = AtA[:, 2, 0] = -f_x * swu
    AtA[:, 1, 2] = AtA[:, 2, 1] = -f_y * swv
    AtA[:, 2, 2] = (w * (du ** 2 + dv ** 2)).sum(1)
    Atb = np.stack([f_x * (w * bu).sum(1), f_y * (w * bv).sum(1), -(w * (du * bu + dv * bv)).sum(1)], 1)
    # degenerate: all weighted keypoints on one pixel leaves tz undetermined
    scale = np.abs(AtA).max((1, 2))
    if (np.abs(np.linalg.det(AtA / scale[:, None, None])) < 1e-12).any():
        raise ValueError("solve_translation: degenerate keypoints (all on one pixel?)")
    return np.linalg.solve(AtA, Atb[..., None])[..., 0]


def viewing_ray_rotation(uv, fx, fy, cx, cy) -> np.ndarray:
    """Smallest rotations taking the optical axis (0, 0, 1) onto the viewing rays of pixels.

    With ``d = normalise((u - cx)/fx, (v - cy)/fy, 1)``, ``k = z x d`` (``|k| = sin theta``)
    and ``c = z . d = cos theta``: ``R = I + [k]x + [k]x^2 / (1 + c)`` (Rodrigues' formula for
    the rotation about ``k`` by ``theta``; the axis lies in the image plane, so the crop's x
    and y axes keep their directions as seen in the image: no roll). Exactly the identity at
    the principal point.

    Args:
        uv: (N, 2) ideal pinhole pixels [px] (e.g. crop or box centres, undistorted).
        fx, fy, cx, cy: intrinsics [px], scalars or (N,).

    Returns:
        (N, 3, 3) float64 rotation matrices (optical frame).
    """
    uv = np.asarray(uv, np.float64).reshape(-1, 2)
    fx, fy, cx, cy = (np.broadcast_to(np.asarray(v, np.float64), (len(uv),)) for v in (fx, fy, cx, cy))
    d = np.stack([(uv[:, 0] - cx) / fx, (uv[:, 1] - cy) / fy, np.ones(len(uv))], axis=1)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    kx, ky, c = -d[:, 1], d[:, 0], d[:, 2]  # k = z x d = (-dy, dx, 0)
    zero = np.zeros(len(uv))
    k_hat = np.stack([np.stack([zero, zero, ky], 1), np.stack([zero, zero, -kx], 1),
                      np.stack([-ky, kx, zero], 1)], 1)
    return np.eye(3) + k_hat + (k_hat @ k_hat) / (1.0 + c)[:, None, None]
