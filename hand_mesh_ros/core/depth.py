"""A hand's translation from a depth image registered to the colour image (ROS-free).

Without depth the pipeline places a hand from the intrinsics alone: the model's metric size
(from the detector's 3D keypoints or HaMeR) and the hand's size in pixels give its depth, so a
hand 15 % larger than the model is placed 15 % too near. A registered depth image measures it.

What a depth pixel measures is the *front surface* of the hand along that pixel's ray, not a
joint centre (a finger joint lies ~7-10 mm behind the skin the camera sees; the wrist more).
So the measured depth is compared with the model's own surface, not with its joints:

1. the fitted mesh, at its intrinsics-only placement, is rendered into the depth image's pixel
   grid with a z-buffer (``render.render_depth``; lens distortion included, since a registered
   depth image shares the raw colour image's pixels); that placement lies on the hand in the
   image by construction, so the model's silhouette covers the hand's pixels;
2. the silhouette is eroded by ``erode_px`` (its border mixes hand and background);
3. per covered pixel with a measurement (finite, > 0), the depth ratio
   ``q = measured / model``; holes (0 / NaN) are skipped, and fewer than ``min_pixels``
   measured pixels, or less than ``min_coverage`` of the silhouette, is a fallback;
4. robust ratio: ``m = median(q)``; ``|m - 1| > max_relative_shift`` means the depth does
   not see this hand (e.g. a depth image of another moment, or only background): a
   fallback. Inliers ``|q / m - 1| <= 3 * 1.4826 MAD(q) / m``, the band clipped to
   ``[inlier_m / c_z, max_band]`` (``c_z`` = depth of the hand's centre); background seen
   past a finger, an object in front of the hand, flying pixels and noise are outliers;
   ``rho`` = median of the inliers; fewer than ``min_inlier_fraction`` inliers is a
   fallback;
5. the hand is scaled about the camera centre by ``rho``: its centre ``c`` (vertex mean)
   goes to ``rho * c``, i.e. ``t' = t + (rho - 1) c``: it keeps its pixels, and its surface
   lies on the measured one. A ratio, not a difference, because what the intrinsics cannot
   see is the hand's true size: a hand ``s`` times the model's size at ``s`` times the depth
   gives the same image, and then every pixel's depth ratio is exactly ``s`` (a difference
   would vary with the hand's relief and bias the result by ``(s - 1)`` times the
   surface-to-centre offset).

A fallback returns the reason as a counter name (``REASONS``); the pipeline then keeps the
intrinsics-only translation, counts the reason and warns (throttled).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import cv2
import numpy as np

from .render import render_depth
from .types import CameraIntrinsics

#: Counter names of the fallbacks (``HandMeshPipeline.fallbacks``) and what they mean.
REASONS = {
    "depth_size_mismatch": "the depth image's size differs from the colour image's",
    "depth_dtype_unsupported": "depth is neither float metres nor uint16 millimetres",
    "depth_without_camera_info": "no CameraInfo: a depth image needs the real intrinsics",
    "depth_hand_outside_image": "the hand's mesh does not reach the image",
    "depth_too_few_pixels": "too few valid depth pixels on the hand (holes, NaN, all-zero image)",
    "depth_inconsistent": "the depth pixels on the hand do not agree on one surface",
    "depth_disagrees": "the depth is far from the intrinsics-only placement",
}


@dataclass
class DepthConfig:
    """Depth fusion settings (see the module docstring for their role).

    Attributes:
        min_pixels: measured pixels on the (eroded) silhouette at least.
        min_coverage: fraction of the silhouette pixels that must be measured, in [0, 1].
        inlier_m: smallest inlier band around the median [m at the hand's depth].
        max_band: largest inlier band, relative to the hand's depth (sensor noise grows
            with depth: ~1 % of it at 2 m for a stereo / structured-light camera).
        min_inlier_fraction: inliers among the measured pixels at least, in [0, 1].
        max_relative_shift: largest accepted ``|shift| / depth`` of the hand.
        erode_px: silhouette erosion [px] (0 = none); skipped when it would leave fewer
            than ``min_pixels``.
    """

    min_pixels: int = 30
    min_coverage: float = 0.2
    inlier_m: float = 0.012
    max_band: float = 0.05
    min_inlier_fraction: float = 0.3
    max_relative_shift: float = 0.4
    erode_px: int = 1


@dataclass
class DepthResult:
    """Outcome of ``translation_from_depth``.

    Attributes:
        transl: (3,) float64 translation [m] from depth, or None on a fallback.
        reason: None, or the fallback's counter name (a key of ``REASONS``).
        detail: human-readable numbers behind the outcome (for the warning).
        shift_m: depth shift applied (or that would have been) [m]; nan if not computed.
        pixels: measured silhouette pixels; inliers: of them, the inliers.
    """

    transl: Optional[np.ndarray]
    reason: Optional[str]
    detail: str = ""
    shift_m: float = float("nan")
    pixels: int = 0
    inliers: int = 0


def depth_in_metres(depth, width: int, height: int) -> Tuple[Optional[np.ndarray], Optional[str]]:
    """Check a registered depth image and express it in metres.

    Args:
        depth: (H, W) float (metres; 0 / NaN = no measurement) or uint16 (millimetres, ROS
            ``16UC1``; 0 = no measurement), registered to the colour image.
        width, height: the colour image's size [px].

    Returns:
        ``(depth_m, None)`` with (H, W) float32 metres (float32 input is not copied), or
        ``(None, reason)`` with reason ``"depth_size_mismatch"`` / ``"depth_dtype_unsupported"``.
    """
    d = np.asarray(depth)
    if d.ndim == 3 and d.shape[2] == 1:
        d = d[:, :, 0]
    if d.ndim != 2 or d.shape != (height, width):
        return None, "depth_size_mismatch"
    if d.dtype == np.uint16:
        return d.astype(np.float32) * np.float32(1e-3), None
    if d.dtype in (np.float32, np.float64):
        return d.astype(np.float32, copy=False), None
    return None, "depth_dtype_unsupported"


def translation_from_depth(vertices: np.ndarray, faces: np.ndarray, transl: np.ndarray,
                           depth_m: np.ndarray, intrinsics: CameraIntrinsics,
                           config: Optional[DepthConfig] = None) -> DepthResult:
    """The hand's translation corrected by a registered depth image (module docstring).

    Args:
        vertices: (V, 3) model-frame vertices [m] (add ``transl`` to place them).
        faces: (F, 3) outward-winding triangle indices for the hand's side.
        transl: (3,) intrinsics-only translation [m], optical frame.
        depth_m: (H, W) float32 depth [m] registered to the (raw) colour image
            (``depth_in_metres``); 0 / NaN = no measurement.
        intrinsics: the colour image's camera (K and lens distortion), validated.
        config: ``DepthConfig`` (defaults when None).

    Returns:
        ``DepthResult``: the new translation, or None with the fallback reason.
    """
    cfg = config or DepthConfig()
    transl = np.asarray(transl, np.float64)
    placed = np.asarray(vertices, np.float64) + transl
    model, (u0, v0) = render_depth(placed, faces, intrinsics)
    mask = model > 0
    n_model = int(mask.sum())
    if n_model == 0:
        return DepthResult(None, "depth_hand_outside_image", "the mesh covers no pixel of the image")
    if cfg.erode_px > 0:
        size = 2 * int(cfg.erode_px) + 1
        eroded = cv2.erode(mask.astype(np.uint8), np.ones((size, size), np.uint8)) > 0
        if eroded.sum() >= cfg.min_pixels:
            mask, n_model = eroded, int(eroded.sum())
    h, w = model.shape
    measured = depth_m[v0:v0 + h, u0:u0 + w][mask]
    valid = np.isfinite(measured) & (measured > 0)
    n = int(valid.sum())
    if n < cfg.min_pixels or n < cfg.min_coverage * n_model:
        return DepthResult(None, "depth_too_few_pixels", f"{n} of {n_model} hand pixels have a depth "
                           f"(need {cfg.min_pixels} and {100 * cfg.min_coverage:.0f} %)", pixels=n)
    centre = placed.mean(axis=0)
    q = measured[valid].astype(np.float64) / model[mask][valid]
    med = float(np.median(q))
    if abs(med - 1.0) > cfg.max_relative_shift:
        return DepthResult(None, "depth_disagrees", f"depth puts the hand {1e3 * (med - 1) * centre[2]:+.0f} mm "
                           f"from its intrinsics-only placement at {centre[2]:.2f} m", (med - 1) * centre[2], n)
    rel = np.abs(q / med - 1.0)
    floor = cfg.inlier_m / centre[2]
    band = float(np.clip(3.0 * 1.4826 * np.median(rel), floor, max(cfg.max_band, floor)))
    inl = rel <= band
    k = int(inl.sum())
    if k < cfg.min_inlier_fraction * n:
        return DepthResult(None, "depth_inconsistent", f"{k} of {n} depth pixels within "
                           f"{1e3 * band * centre[2]:.0f} mm of their median", pixels=n, inliers=k)
    rho = float(np.median(q[inl]))
    return DepthResult(transl + (rho - 1.0) * centre, None, "", (rho - 1.0) * float(centre[2]), n, k)
