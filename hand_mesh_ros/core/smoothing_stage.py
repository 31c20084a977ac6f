"""Smoothing stage: One Euro smoothing of placed hands, one ``smoothing.HandSmoother`` per track.

Each track's filter smooths the hand's rotations (on SO(3)), betas and translation over the
image stamps; the hand model posed with the filtered parameters (``kinematics``, all hands
at once) then gives the joints, vertices and chain rotations, so they stay consistent with
the published MANO parameters. A track's smoother is created on its first hand and dropped
(``forget``) when the track ends or changes side.
"""
from __future__ import annotations

from typing import Dict, Iterable, Sequence

import numpy as np
from scipy.spatial.transform import Rotation

from .hand_model import JOINT_ROTATION_SOURCE
from .kinematics import JointKinematics
from .mano_params import NUM_ROTATIONS, ManoParams
from .records import PlacedHand, TrackKey
from .smoothing import HandSmoother


class SmoothingStage:
    """One Euro smoothing of tracked hands.

    Args:
        kinematics: ``JointKinematics`` of the regressor's hand model.
        min_cutoff: One Euro cutoff at rest [Hz] (``smoothing_min_cutoff``), > 0.
        beta: One Euro speed coefficient (``smoothing_beta``), >= 0.

    Attributes:
        smoothers: the ``HandSmoother`` of each live track that has had a hand.
    """

    def __init__(self, kinematics: JointKinematics, min_cutoff: float, beta: float):
        self.kinematics = kinematics
        self.min_cutoff, self.beta = min_cutoff, beta
        self.smoothers: Dict[TrackKey, HandSmoother] = {}

    def smooth(self, placed: Sequence[PlacedHand]) -> None:
        """Smooth ``placed`` in place: each ``Hand``'s global_orient, hand_pose, betas, transl
        (float32, filtered at its frame's stamp [s]), and its joints, vertices [m] and
        chain rotations re-posed from them (optical frame)."""
        if not placed:
            return
        filtered = []
        for p in placed:
            hand, key = p.hand, p.tracked.key
            if key not in self.smoothers:
                self.smoothers[key] = HandSmoother(self.min_cutoff, self.beta)
            params = ManoParams(hand.global_orient, hand.hand_pose, hand.betas, hand.transl)
            filtered.append(self.smoothers[key](params, p.tracked.frame.stamp))
        batch = ManoParams.stack(filtered).astype(np.float64)
        side = np.array([p.hand.side for p in placed])
        rotations = Rotation.from_rotvec(batch.rotvecs().reshape(-1, 3)).as_matrix().reshape(-1, NUM_ROTATIONS, 3, 3)
        ks = self.kinematics.forward(rotations, batch.betas, side)
        verts = self.kinematics.vertices(ks, batch.betas)
        chain = ks.global_rotations[:, JOINT_ROTATION_SOURCE]
        for k, p in enumerate(placed):
            hand, out = p.hand, batch[k].astype(np.float32)
            hand.global_orient, hand.hand_pose, hand.betas, hand.transl = (out.global_orient, out.hand_pose,
                                                                           out.betas, out.transl)
            hand.joints = (ks.keypoints[k] + out.transl).astype(np.float32)
            hand.vertices = verts[k] + out.transl
            hand.joint_rotations = chain[k]

    def forget(self, keys: Iterable[TrackKey]) -> None:
        """Drop the smoothers of these tracks."""
        for key in keys:
            self.smoothers.pop(key, None)
