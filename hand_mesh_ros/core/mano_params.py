"""MANO parameters of one hand or of a batch of hands, and the one place that knows their layout.

MANO (Romero et al., "Embodied Hands", SIGGRAPH Asia 2017) poses a hand with 16 joint
rotations in axis-angle and shapes it with 10 PCA coefficients. The flat parameter vector
(58,) that the fit's warm start and the tests exchange is, as smplx and HaMeR lay it out::

    [ global_orient (3) | hand_pose (45) = joints 1..15 x 3 | betas (10) ]
      0:3                 3:48                                48:58

``transl`` is not part of that vector (MANO has no translation): it is where the model's
frame sits in the camera optical frame. Nothing outside this module slices the vector; its
users call :meth:`ManoParams.to_vector` / :meth:`ManoParams.from_vector`, or the named
slices below for arrays whose columns follow the same order (the fit's Jacobian).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Optional, Sequence

import numpy as np

#: Rotations per hand: the root (global_orient) and 15 finger joints (hand_pose).
NUM_ROTATIONS = 16
#: MANO shape coefficients per hand.
NUM_BETAS = 10


@dataclass
class ManoParams:
    """MANO parameters and camera translation of one hand (shapes ``(n,)``) or of B hands
    (shapes ``(B, n)``); any float dtype, kept as given.

    Attributes:
        global_orient: (..., 3) root rotation, axis-angle [rad], in the camera optical frame
            (REP 103 ``*_optical_frame``: x right, y down, z forward).
        hand_pose: (..., 45) the 15 finger joints' rotations, axis-angle [rad], each in its
            parent's frame (MANO joint order 1..15; zero = the flat hand).
        betas: (..., 10) shape coefficients (unitless; zero = the mean hand).
        transl: (..., 3) translation [m] from the model frame to the optical frame (the
            model's vertices plus ``transl`` are the hand in the camera); zeros when omitted.
    """

    global_orient: np.ndarray
    hand_pose: np.ndarray
    betas: np.ndarray
    transl: Optional[np.ndarray] = field(default=None)

    #: Columns of the (..., 58) parameter vector.
    GLOBAL_ORIENT: ClassVar[slice] = slice(0, 3)
    HAND_POSE: ClassVar[slice] = slice(3, 3 * NUM_ROTATIONS)
    BETAS: ClassVar[slice] = slice(3 * NUM_ROTATIONS, 3 * NUM_ROTATIONS + NUM_BETAS)
    #: Length of the parameter vector (58).
    SIZE: ClassVar[int] = 3 * NUM_ROTATIONS + NUM_BETAS

    def __post_init__(self):
        if self.transl is None:
            self.transl = np.zeros(np.shape(self.global_orient), np.asarray(self.global_orient).dtype)

    # -- the flat vector -------------------------------------------------------------------
    def to_vector(self) -> np.ndarray:
        """(..., 58) ``[global_orient, hand_pose, betas]`` (no ``transl``), the fields' dtype."""
        return np.concatenate([self.global_orient, self.hand_pose, self.betas], -1)

    @classmethod
    def from_vector(cls, vector, transl: Optional[np.ndarray] = None) -> "ManoParams":
        """The parameters of a (..., 58) vector (views into it, same dtype), with ``transl``
        (..., 3) [m] or zeros.

        Raises:
            ValueError: the last axis is not 58 long.
        """
        v = np.asarray(vector)
        if v.shape[-1:] != (cls.SIZE,):
            raise ValueError(f"a MANO parameter vector has {cls.SIZE} entries per hand, got shape {v.shape}")
        return cls(v[..., cls.GLOBAL_ORIENT], v[..., cls.HAND_POSE], v[..., cls.BETAS], transl)

    # -- the 16 rotations ------------------------------------------------------------------
    def rotvecs(self) -> np.ndarray:
        """(..., 16, 3) the root and the 15 finger rotations, axis-angle [rad], MANO joint order."""
        go = np.asarray(self.global_orient)
        pose = np.asarray(self.hand_pose).reshape(go.shape[:-1] + (NUM_ROTATIONS - 1, 3))
        return np.concatenate([go[..., None, :], pose], -2)

    @classmethod
    def from_rotvecs(cls, rotvecs, betas, transl: Optional[np.ndarray] = None) -> "ManoParams":
        """The parameters of (..., 16, 3) axis-angle rotations [rad] (MANO joint order, the
        root first), (..., 10) ``betas`` and (..., 3) ``transl`` [m] (zeros if None)."""
        r = np.asarray(rotvecs)
        if r.shape[-2:] != (NUM_ROTATIONS, 3):
            raise ValueError(f"expected (..., {NUM_ROTATIONS}, 3) rotation vectors, got shape {r.shape}")
        return cls(r[..., 0, :], r[..., 1:, :].reshape(r.shape[:-2] + (3 * (NUM_ROTATIONS - 1),)),
                   np.asarray(betas), transl)

    # -- batches ---------------------------------------------------------------------------
    def __getitem__(self, index) -> "ManoParams":
        """Hand(s) ``index`` of a batch (numpy indexing on the first axis)."""
        return ManoParams(self.global_orient[index], self.hand_pose[index], self.betas[index], self.transl[index])

    @classmethod
    def stack(cls, hands: Sequence["ManoParams"]) -> "ManoParams":
        """A batch (B, n) of B single hands (n,)."""
        return cls(*(np.stack([getattr(h, name) for h in hands])
                     for name in ("global_orient", "hand_pose", "betas", "transl")))

    def astype(self, dtype) -> "ManoParams":
        """The same parameters as ``dtype`` arrays (copies)."""
        return ManoParams(*(np.asarray(a).astype(dtype) for a in
                            (self.global_orient, self.hand_pose, self.betas, self.transl)))
