"""Input checks of the pipeline: ``FrameInput`` in, ``records.Frame`` out.

An image the pipeline cannot use at all (wrong shape or dtype, empty, invalid intrinsics,
intrinsics of another size) is a ``ValueError`` naming what is wrong. Inputs it can use in
a reduced way are counted fallbacks (``counters.StageCounters.fallback``): lens distortion
it does not support (the image is treated as undistorted) and an unusable depth image (the
hands are placed from the intrinsics only).
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from .counters import StageCounters
from .depth import REASONS as DEPTH_REASONS
from .depth import depth_in_metres
from .records import Frame
from .types import CameraIntrinsics, FrameInput, check_rgb_image


def check_frames(items: Sequence[FrameInput], counters: StageCounters) -> List[Frame]:
    """Check a batch: every image and its intrinsics first (so a bad image raises before
    anything runs), then every depth image.

    Args:
        items: the batch; ``Frame.index`` is the position in it.
        counters: where fallbacks are counted.

    Raises:
        ValueError: see :func:`check_image`.
    """
    intrinsics = [check_image(item.image, item.intrinsics, item.camera, counters) for item in items]
    return [Frame(k, item.image, intr, item.camera, item.stamp, check_depth(item.depth, intr, item.camera, counters))
            for k, (item, intr) in enumerate(zip(items, intrinsics))]


def check_image(image: np.ndarray, intr: Optional[CameraIntrinsics], camera: str,
                counters: StageCounters) -> CameraIntrinsics:
    """The intrinsics to place the hands of ``image`` with.

    Args:
        image: (H, W, 3) uint8 RGB.
        intr: its intrinsics, or None (then ``CameraIntrinsics.assumed_for`` its size).
        camera: camera key (named in warnings).
        counters: unsupported lens distortion is a counted fallback, the intrinsics are
            then used without it.

    Raises:
        ValueError: not an (H, W, 3) uint8 array, an empty image, invalid intrinsics
            (``CameraIntrinsics.validate``), or intrinsics of another image size.
    """
    check_rgb_image(image)
    h, w = image.shape[:2]
    if intr is None:
        return CameraIntrinsics.assumed_for(w, h)
    intr.validate()
    if (intr.width, intr.height) != (w, h):
        raise ValueError(f"image is {w}x{h} but its CameraInfo says {intr.width}x{intr.height}")
    problem = intr.distortion_problem()
    if problem is not None:
        counters.fallback(problem, f"camera '{camera}': lens distortion ignored (model "
                                   f"{intr.distortion_model!r}, {len(intr.distortion)} coefficients; "
                                   f"supported: plumb_bob 5, rational_polynomial 8/12/14, equidistant 4)")
        intr = intr.without_distortion()
    return intr


def check_depth(depth, intr: CameraIntrinsics, camera: str, counters: StageCounters) -> Optional[np.ndarray]:
    """The frame's depth in metres, (H, W) float32 (``depth.depth_in_metres``), or None: no
    depth given, or an unusable one (wrong size or dtype: counted fallback, named warning)."""
    if depth is None:
        return None
    depth_m, problem = depth_in_metres(depth, intr.width, intr.height)
    if problem is not None:
        counters.fallback(problem, f"camera '{camera}': depth image ignored: {DEPTH_REASONS[problem]} "
                                   f"(depth {getattr(depth, 'shape', None)} {getattr(depth, 'dtype', type(depth))}, "
                                   f"image {intr.width}x{intr.height})")
    return depth_m
