"""Typed records handed from one pipeline stage to the next (``core.pipeline``).

detect -> associate -> regress -> place -> smooth -> finish::

    Frame            one checked image of a batch, its detections (``inputs``, ``detection``)
    TrackedHand      a detection with its track (``association``): what the later stages work on
    RegressedHand    MANO parameters and the posed model of a tracked hand (``regressors``)
    PlacedHand       the tracked hand and its ``types.Hand`` in the camera (``placement``)

Per-track state of a stage (the fit's warm start, a smoother) is keyed by :data:`TrackKey`.
Everything 3D is in the image's camera optical frame (REP 103: x right, y down, z forward),
in metres; pixels as in ``core.types``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np

from .mano_params import ManoParams
from .tracking import Track
from .types import CameraIntrinsics, Detection, Hand

#: ``(camera key, track id)``: one hand track of one camera (ids are per camera).
TrackKey = Tuple[str, int]


@dataclass
class Frame:
    """One image of a batch, checked (``inputs.check_frames``).

    Attributes:
        index: position in the batch given to ``HandMeshPipeline.process_batch``.
        image: (H, W, 3) uint8 RGB.
        intrinsics: the ``CameraIntrinsics`` the hands are placed with (given, or assumed
            when none were; lens distortion dropped on a counted fallback).
        camera: key of the per-camera state (detector tracking, hand tracks).
        stamp: image time [s]; None until detection when the input had none (then the
            monotonic clock when its detections arrived).
        depth_m: (H, W) float32 depth [m] registered to ``image`` (0 or NaN = no
            measurement), or None (none given, or unusable: counted fallback).
        detections: the detector's hands in ``image`` (``detection.DetectionStage``).
    """

    index: int
    image: np.ndarray
    intrinsics: CameraIntrinsics
    camera: str
    stamp: Optional[float]
    depth_m: Optional[np.ndarray]
    detections: List[Detection] = field(default_factory=list)


@dataclass
class TrackedHand:
    """One detected hand with the track it was associated with (``association``).

    Attributes:
        frame: the image it was seen in.
        detection: the detector's output (box, score, 2D keypoints [px] of the raw image,
            3D keypoints [m] or None).
        track: its track (id, side after hysteresis, primary flag) as this frame left it (a copy).
    """

    frame: Frame
    detection: Detection
    track: Track

    @property
    def key(self) -> TrackKey:
        """``(camera, track id)``, the key of this hand's per-track state."""
        return (self.frame.camera, self.track.track_id)

    @property
    def side(self) -> int:
        """``types.LEFT`` / ``types.RIGHT``: the track's side (after hysteresis)."""
        return self.track.side


@dataclass
class RegressedHand:
    """A regressor's answer for one hand (``regressors.Regressor.regress``).

    Attributes:
        params: the MANO parameters for the hand's side (``global_orient`` in the camera
            optical frame) and ``transl`` (3,) [m], the camera translation of the model
            frame; float32 (``fit``) or float64 (``hamer``).
        vertices: (V, 3) float32 model vertices posed with ``params``, model frame [m]
            (add ``params.transl`` for the camera frame).
        joints: (21, 3) float32 joints, OpenPose order, model frame [m].
        joint_rotations: (21, 3, 3) float32 global kinematic-chain rotation of each OpenPose
            joint's bone (``HandModelOutput.joint_rotations``; identity = rest pose).
        error: RMS distance between the joints and the detector's 3D keypoints [m]
            (``fit``), NaN when the regressor has no such residual (``hamer``).
    """

    params: ManoParams
    vertices: np.ndarray
    joints: np.ndarray
    joint_rotations: np.ndarray
    error: float


@dataclass
class PlacedHand:
    """A tracked hand and its ``types.Hand`` in the camera (``placement.Placement``); the
    smoothing stage and ``finish`` update ``hand`` in place."""

    tracked: TrackedHand
    hand: Hand
