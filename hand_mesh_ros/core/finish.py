"""Last stage: the bone-aligned joint frames and the reprojection error of placed hands.

Up to here a ``Hand``'s ``joint_rotations`` are the kinematic chain's rotations (the
regressor's, or the smoothing stage's); ``finish`` turns them into the published joint
frames (``joint_frames.joint_frames``: x along the bone, z out of the back of the hand, the
same right-handed convention for both hands), all hands at once, and sets the median
reprojection error of the published joints.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .camera import project
from .joint_frames import joint_frames
from .kinematics import JointKinematics
from .records import PlacedHand
from .types import CameraIntrinsics, Hand


def finish(placed: Sequence[PlacedHand], kinematics: JointKinematics) -> None:
    """In place, for each placed (and smoothed) hand: ``joint_rotations`` become its (21, 3, 3)
    joint frames in the optical frame, and ``reprojection_error`` is set [px].

    Args:
        placed: the hands, each with the frame it was seen in.
        kinematics: ``JointKinematics`` of the hand model (rest keypoints of each hand's
            betas and side).
    """
    if not placed:
        return
    side = np.array([p.hand.side for p in placed])
    betas = np.stack([p.hand.betas for p in placed]).astype(np.float64)
    chain = np.stack([p.hand.joint_rotations for p in placed])
    frames = joint_frames(chain, kinematics.rest_keypoints(betas, side), side)
    for p, F in zip(placed, frames):
        p.hand.joint_rotations = F
        p.hand.reprojection_error = reprojection_error(p.hand, p.tracked.frame.intrinsics)


def reprojection_error(hand: Hand, intr: CameraIntrinsics) -> float:
    """Median distance [px] between the hand's joints projected with ``intr`` (lens
    distortion included) and the detector's raw 2D keypoints."""
    return float(np.median(np.linalg.norm(project(hand.joints, intr) - hand.keypoints_2d, axis=1)))
