"""Placement stage: a regressed hand becomes a ``types.Hand`` in the camera optical frame.

The regressor's camera translation (from the real intrinsics, lens distortion included, or
assumed ones) is range-checked (``DEPTH_RANGE_M``; outside it the hand is skipped,
``depth_out_of_range``). With a registered depth image the translation comes from the depth
pixels under the hand (``depth.translation_from_depth``); where that fails (no CameraInfo,
too few pixels, depth that disagrees, out of range) the hand keeps the intrinsics-only
translation, a counted fallback. The ``Hand``'s ``joint_rotations`` are still the
regressor's kinematic-chain rotations: ``finish`` turns them into joint frames.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from .counters import StageCounters
from .depth import REASONS as DEPTH_REASONS
from .depth import DepthConfig, translation_from_depth
from .records import RegressedHand, TrackedHand
from .types import TRANSLATION_ASSUMED, TRANSLATION_DEPTH, TRANSLATION_INTRINSICS, Hand

#: A hand placed nearer or farther than this from the camera is rejected (counted) [m].
DEPTH_RANGE_M = (0.05, 20.0)


class Placement:
    """Places regressed hands in their cameras.

    Args:
        hand_model: the regressor's ``HandModel`` (its name, its faces per side).
        counters: where skipped hands and depth fallbacks are counted.
        depth_config: ``depth.DepthConfig`` (defaults when None).
    """

    def __init__(self, hand_model, counters: StageCounters, depth_config: Optional[DepthConfig] = None):
        self.hand_model = hand_model
        self.depth_config = depth_config or DepthConfig()
        self._counters = counters

    def place(self, tracked: TrackedHand, regressed: Optional[RegressedHand]) -> Optional[Hand]:
        """The ``Hand`` (float32 arrays, optical frame [m]) of a tracked hand, or None when
        the regressor gave none or its translation is out of ``DEPTH_RANGE_M``."""
        if regressed is None:
            return None
        frame, det, track = tracked.frame, tracked.detection, tracked.track
        transl = np.asarray(regressed.params.transl, np.float64)
        if not (np.isfinite(transl).all() and DEPTH_RANGE_M[0] < transl[2] < DEPTH_RANGE_M[1]):
            self._counters.skip("depth_out_of_range")
            return None
        source = TRANSLATION_ASSUMED if frame.intrinsics.assumed else TRANSLATION_INTRINSICS
        if frame.depth_m is not None:
            transl, source = self._depth_translation(tracked, regressed, transl, source)
        transl = transl.astype(np.float32)
        params = regressed.params.astype(np.float32)
        return Hand(side=track.side, score=det.score, bbox=det.bbox, keypoints_2d=det.keypoints_2d,
                    global_orient=params.global_orient, hand_pose=params.hand_pose, betas=params.betas,
                    transl=transl, vertices=(regressed.vertices + transl).astype(np.float32),
                    joints=(regressed.joints + transl).astype(np.float32),
                    joint_rotations=regressed.joint_rotations, translation_source=source,
                    hand_model=self.hand_model.name, track_id=track.track_id, primary=track.primary,
                    fit_error=regressed.error)

    def _depth_translation(self, tracked: TrackedHand, regressed: RegressedHand, transl: np.ndarray,
                           source: int) -> Tuple[np.ndarray, int]:
        """(translation [m], translation_source) from the frame's depth image, or the given
        ones on a counted fallback."""
        intr = tracked.frame.intrinsics
        if intr.assumed:
            reason, detail = "depth_without_camera_info", DEPTH_REASONS["depth_without_camera_info"]
        else:
            res = translation_from_depth(regressed.vertices, self.hand_model.faces_for(tracked.side), transl,
                                         tracked.frame.depth_m, intr, self.depth_config)
            if res.reason is None and DEPTH_RANGE_M[0] < res.transl[2] < DEPTH_RANGE_M[1]:
                return res.transl, TRANSLATION_DEPTH
            reason, detail = res.reason or "depth_disagrees", res.detail or "depth out of range"
        self._counters.fallback(reason, f"hand placed from the intrinsics only: {detail}")
        return transl, source
