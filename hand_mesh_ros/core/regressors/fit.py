"""Regressor "fit": the hand model fitted to the detector's keypoints (``core.fit``), warm-started
from the previous good fit of the same track.

Per batch of ``batch_size`` hands: the detector's 21 metric 3D keypoints, its 2D keypoints
undistorted to ideal pinhole pixels (``camera.undistort_points``) and each image's
``fx, fy, cx, cy`` go to ``ManoFitter.fit``, so the fit's offset is the hand's translation in
the camera optical frame. Keypoints the fit rejects (degenerate) skip the batch's hands
(``degenerate_keypoints``); a fit that misses the quality bounds (``FitResult.poor``) is
counted (``fit_poor``) and still returned with its residual, but never kept as a warm start.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ..camera import project, undistort_points
from ..counters import StageCounters
from ..fit import FitConfig, ManoFitter
from ..mano_params import NUM_BETAS, ManoParams
from ..records import RegressedHand, TrackedHand, TrackKey
from ..types import LEFT, RIGHT, CameraIntrinsics

#: The warm start of a track without one: NaN rows start from the closed-form guess.
_COLD = np.full(ManoParams.SIZE, np.nan)


class FitRegressor:
    """``regressors.Regressor`` "fit".

    Args:
        hand_model: ``hand_model.HandModel`` to fit (MANO or the built-in hand).
        batch_size: hands per ``ManoFitter.fit`` call (>= 1).
        counters: where skipped and poor fits are counted.
        config: ``fit.FitConfig`` (default settings when None).

    Attributes:
        warm_starts: per track, the (58,) float32 parameter vector (``ManoParams.to_vector``)
            of its last fit that met the quality bounds.
    """

    def __init__(self, hand_model, batch_size: int, counters: StageCounters, config: Optional[FitConfig] = None):
        self.hand_model = hand_model
        self.fitter = ManoFitter(hand_model, config or FitConfig())
        self.kinematics = self.fitter.kin
        self.batch_size = int(batch_size)
        self._counters = counters
        self.warm_starts: Dict[TrackKey, np.ndarray] = {}

    def regress(self, hands: Sequence[TrackedHand]) -> List[Optional[RegressedHand]]:
        """Fit ``hands``, ``batch_size`` at a time; ``params.transl`` is the fitted camera
        translation (float32 [m], optical frame)."""
        out: List[Optional[RegressedHand]] = []
        for s in range(0, len(hands), self.batch_size):
            out += self._fit(hands[s:s + self.batch_size])
        return out

    def forget(self, keys: Iterable[TrackKey]) -> None:
        """Drop the warm starts of these tracks."""
        for key in keys:
            self.warm_starts.pop(key, None)

    def warm_up(self, size: Tuple[int, int]) -> None:
        """Solve the hand model's own rest pose once per side, 0.5 m ahead of a camera with
        the intrinsics assumed for a (height, width) [px] image, 2D term included."""
        side = np.array([LEFT, RIGHT])
        kp = self.kinematics.rest_keypoints(np.zeros((2, NUM_BETAS)), side) + [0.0, 0.0, 0.5]
        intr = CameraIntrinsics.assumed_for(int(size[1]), int(size[0]))
        uv = project(kp.reshape(-1, 3), intr).reshape(2, 21, 2)
        self.fitter.fit(kp - kp.mean(1, keepdims=True), side == RIGHT, keypoints_2d=uv,
                        intrinsics=np.tile(intr.pinhole, (2, 1)))

    def _fit(self, hands: Sequence[TrackedHand]) -> List[Optional[RegressedHand]]:
        kp = np.stack([h.detection.keypoints_3d for h in hands])
        # 2D keypoints as ideal pinhole pixels, to go with the pinhole intrinsics
        kp2d = np.stack([undistort_points(h.detection.keypoints_2d, h.frame.intrinsics) for h in hands])
        K = np.stack([h.frame.intrinsics.pinhole for h in hands])
        is_right = np.array([h.side == RIGHT for h in hands])
        init = np.stack([self.warm_starts.get(h.key, _COLD) for h in hands])
        try:
            res = self.fitter.fit(kp, is_right, init=init, keypoints_2d=kp2d, intrinsics=K)
        except ValueError:  # degenerate keypoints (e.g. all on one pixel)
            self._counters.skip("degenerate_keypoints", len(hands))
            return [None] * len(hands)
        if res.poor.any():  # returned with its residual, never a warm start
            self._counters.skip("fit_poor", int(res.poor.sum()))
        params = res.params
        out = []
        for k, h in enumerate(hands):
            if res.poor[k]:
                self.warm_starts.pop(h.key, None)
            else:
                self.warm_starts[h.key] = params[k].to_vector()
            out.append(RegressedHand(params[k], res.vertices[k], res.joints[k], res.joint_rotations[k],
                                     float(res.error[k])))
        return out
