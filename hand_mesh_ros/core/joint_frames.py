"""Bone-aligned joint frames: an orientation per hand joint that a robot can use.

The hand model's kinematic chain gives each joint a rotation *relative to the model's rest
pose* (identity = MANO's flat rest hand, whose axes are the model's, mirrored for a left
hand): useless to a grasp planner. The frames here are defined by the hand itself, the same
way for both hands, and all right-handed:

* finger joint (CMC/MCP, PIP/IP, DIP of each finger): **x** along the bone towards the next
  joint; the fingertip continues its last bone (DIP -> tip);
* wrist: **x** from the wrist towards the middle finger's MCP;
* **z**: the normal of the back of the hand (dorsal side, out of the back), made
  orthogonal to x; it turns with each phalanx, so on a bent finger it points out of that
  phalanx's nail side;
* **y** = z x x: towards the thumb side on a right hand, towards the little finger on a
  left hand (what right-handed frames with the same x and z give on a mirrored hand).

They are defined on the hand's shaped rest pose and carried by the chain: a joint's frame
is ``G_j C_j``, with ``G_j`` the chain's global rotation that moves the joint's bone and
``C_j`` the frame above at rest. So x is exactly along the posed bone for every bone between
two joints (the fingertip's last bone follows the skinned tip vertex up to blending), and
the frames rotate with each phalanx, including its twist.

The rest palm normal: with ``f = middle_mcp - wrist`` and ``u = index_mcp - pinky_mcp``,
the back of a right hand faces ``f x u`` (fingers up, back towards you: the thumb side is
on your left), of a left hand ``u x f``.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from .types import LEFT, RIGHT

#: OpenPose index of the point each joint's x axis points to (wrist -> middle MCP, a
#: finger joint -> the next joint, a tip -> itself from its DIP: handled by FROM below).
_TO = np.array([9, 2, 3, 4, 4, 6, 7, 8, 8, 10, 11, 12, 12, 14, 15, 16, 16, 18, 19, 20, 20])
#: ... and the point it points from (the joint itself, or the DIP for a tip).
_FROM = np.array([0, 1, 2, 3, 3, 5, 6, 7, 7, 9, 10, 11, 11, 13, 14, 15, 15, 17, 18, 19, 19])
WRIST, INDEX_MCP, MIDDLE_MCP, PINKY_MCP = 0, 5, 9, 17


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True).clip(1e-12)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a x b`` of (..., 3) arrays (np.cross costs several times more on small arrays)."""
    return np.stack([a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1],
                     a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
                     a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]], -1)


def back_normal(keypoints: np.ndarray, side: np.ndarray) -> np.ndarray:
    """(B, 3) unit normals of the back of the hand (module docstring).

    Args:
        keypoints: (B, 21, 3) joints [m], OpenPose order, any frame.
        side: (B,) ``LEFT`` (0) or ``RIGHT`` (1).
    """
    f = keypoints[:, MIDDLE_MCP] - keypoints[:, WRIST]
    u = keypoints[:, INDEX_MCP] - keypoints[:, PINKY_MCP]
    sign = np.where(np.asarray(side) == RIGHT, 1.0, -1.0)[:, None]
    return _unit(sign * _cross(f, u))


def rest_frames(rest_keypoints: np.ndarray, side: np.ndarray) -> np.ndarray:
    """(B, 21, 3, 3) frames (columns x, y, z) of the joints at rest (module docstring).

    Args:
        rest_keypoints: (B, 21, 3) the hand model's joints at zero pose [m], OpenPose order.
        side: (B,) ``LEFT`` (0) or ``RIGHT`` (1).
    """
    x = _unit(rest_keypoints[:, _TO] - rest_keypoints[:, _FROM])             # (B, 21, 3)
    n = back_normal(rest_keypoints, side)[:, None]                           # (B, 1, 3)
    z = _unit(n - (n * x).sum(-1, keepdims=True) * x)
    y = _cross(z, x)
    return np.stack([x, y, z], -1)


def joint_frames(chain_rotations: np.ndarray, rest_keypoints: np.ndarray, side: np.ndarray) -> np.ndarray:
    """(B, 21, 3, 3) float32 bone-aligned joint frames in the frame of the chain rotations
    (the camera optical frame for a placed hand): column 0 = x, 1 = y, 2 = z.

    Args:
        chain_rotations: (B, 21, 3, 3) global kinematic-chain rotation that moves each
            joint's bone, relative to the rest pose (``HandModelOutput.joint_rotations``).
        rest_keypoints: (B, 21, 3) the same hands' joints at zero pose [m].
        side: (B,) ``LEFT`` (0) or ``RIGHT`` (1).

    Raises:
        ValueError: shapes that do not match, or a side other than LEFT / RIGHT.
    """
    chain = np.asarray(chain_rotations, np.float64)
    rest = np.asarray(rest_keypoints, np.float64)
    side = np.asarray(side).reshape(-1)
    if chain.shape != (len(side), 21, 3, 3) or rest.shape != (len(side), 21, 3):
        raise ValueError(f"chain_rotations (B,21,3,3), rest_keypoints (B,21,3), side (B,) expected, "
                         f"got {chain.shape}, {rest.shape}, {side.shape}")
    if not np.isin(side, (LEFT, RIGHT)).all():
        raise ValueError(f"side must be LEFT (0) or RIGHT (1), got {side}")
    return (chain @ rest_frames(rest, side)).astype(np.float32)


def rotations_to_quaternions(rotations: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotation matrices -> (N, 4) float64 unit quaternions ``x, y, z, w`` (the
    order of ``geometry_msgs/Quaternion`` and scipy; the nearest rotation is taken for
    slightly non-orthonormal input)."""
    return Rotation.from_matrix(np.asarray(rotations, np.float64).reshape(-1, 3, 3)).as_quat()
