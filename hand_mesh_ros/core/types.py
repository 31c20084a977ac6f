"""Plain data types passed between the pipeline stages (ROS-free).

Conventions used everywhere in ``hand_mesh_ros.core``:

* Image pixels: ``(u, v)`` with ``u`` to the right, ``v`` down, origin at the top-left
  pixel's top-left corner (OpenCV), float [px].
* 3D: the camera **optical frame** (REP 103 / REP 105 ``*_optical_frame``): x right, y down,
  z forward, metres.
* 21 hand joints in OpenPose / MediaPipe order: 0 wrist; 1-4 thumb CMC, MCP, IP, tip;
  5-8 index MCP, PIP, DIP, tip; 9-12 middle; 13-16 ring; 17-20 pinky.
* Side: ``LEFT = 0``, ``RIGHT = 1`` (same values as ``hand_mesh_msgs/HandMesh``); always the
  true side of the person's hand, never a mirrored-camera label.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import List, Optional, Tuple

import numpy as np

LEFT = 0
RIGHT = 1
SIDE_NAMES = {LEFT: "left", RIGHT: "right"}

TRANSLATION_ASSUMED = 0
TRANSLATION_INTRINSICS = 1
TRANSLATION_DEPTH = 2

NUM_JOINTS = 21


def check_rgb_image(image) -> None:
    """Raise ``ValueError`` unless ``image`` is what every stage takes: a non-empty
    (H, W, 3) uint8 RGB numpy array (the message names the shape and dtype it got)."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got "
                         f"{getattr(image, 'shape', None)} {getattr(image, 'dtype', type(image).__name__)}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"empty image {image.shape[1]}x{image.shape[0]}")


#: 21 joint names in OpenPose/MediaPipe order; used for TF frame names and JSON.
JOINT_NAMES = (
    "wrist",
    "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
    "index_mcp", "index_pip", "index_dip", "index_tip",
    "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
    "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
    "pinky_mcp", "pinky_pip", "pinky_dip", "pinky_tip",
)

#: Parent of each of the 21 OpenPose joints (-1 for the wrist); skeleton lines and TF tree.
JOINT_PARENTS = (-1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19)


@dataclass
class Detection:
    """One hand found by a detector in one image.

    Attributes:
        side: ``LEFT`` (0) or ``RIGHT`` (1), the true side for the camera as configured.
        score: detection confidence in [0, 1].
        bbox: (4,) float32 ``x_min, y_min, x_max, y_max`` [px].
        keypoints_2d: (21, 2) float32 ``(u, v)`` [px], OpenPose order, in the pixels of the
            image as given (a raw image's distorted pixels; the pipeline undistorts a copy
            for the fit and the placement).
        keypoints_3d: (21, 3) float32 metric keypoints [m] in a camera-aligned frame whose
            origin is arbitrary (MediaPipe world landmarks: hand centre), or ``None`` when
            the detector gives none.
    """

    side: int
    score: float
    bbox: np.ndarray
    keypoints_2d: np.ndarray
    keypoints_3d: Optional[np.ndarray] = None


#: ``sensor_msgs/CameraInfo.distortion_model`` names supported, with the coefficient counts
#: accepted for each (OpenCV's order, as ROS's image_geometry passes ``D`` to OpenCV):
#: ``plumb_bob`` = k1 k2 p1 p2 k3 (Brown-Conrady); ``rational_polynomial`` = k1 k2 p1 p2 k3
#: k4 k5 k6 [s1 s2 s3 s4 [tau_x tau_y]]; ``equidistant`` = k1 k2 k3 k4 (OpenCV fisheye,
#: Kannala & Brandt 2006).
DISTORTION_MODELS = {"plumb_bob": (5,), "rational_polynomial": (8, 12, 14), "equidistant": (4,)}


@dataclass
class CameraIntrinsics:
    """Camera model of an image, from ``sensor_msgs/CameraInfo`` ``K``, ``D``, ``distortion_model``.

    Pixel coordinates of the *raw* image are distorted: a point of the optical frame maps to
    the ideal pinhole pixel ``(fx x/z + cx, fy y/z + cy)`` and then through the lens
    distortion (``camera.project``). With no (or all-zero) coefficients the camera is an
    ideal pinhole. For an image that is already rectified (``image_rect``), build the
    intrinsics from ``P`` with no distortion (``ros.camera_info.intrinsics_from_camera_info(
    msg, rectified=True)``).

    Attributes:
        fx, fy: focal lengths [px]; cx, cy: principal point [px].
        width, height: image size [px].
        assumed: True when not measured (no CameraInfo): see ``assumed_for``.
        distortion_model: CameraInfo model name ("" = none); see ``DISTORTION_MODELS``.
        distortion: coefficients ``D`` in OpenCV's order (a tuple of floats; arrays are
            converted). All zero or empty = no distortion, except for ``equidistant``, whose
            zero coefficients are the ideal fisheye ``r = f theta`` (as in ROS's
            image_geometry, which always applies ``cv::fisheye`` to that model).
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    assumed: bool = False
    distortion_model: str = ""
    distortion: Tuple[float, ...] = ()

    #: Horizontal field of view assumed when no CameraInfo is given [deg]: a typical
    #: webcam / RealSense colour stream (60-70 deg); documented in the README.
    ASSUMED_HFOV_DEG = 60.0

    def __post_init__(self):
        self.distortion = tuple(float(c) for c in np.asarray(self.distortion, np.float64).reshape(-1))
        self.distortion_model = str(self.distortion_model or "")

    @classmethod
    def assumed_for(cls, width: int, height: int) -> "CameraIntrinsics":
        """Intrinsics assumed for an image with no CameraInfo: 60 deg horizontal FOV,
        square pixels, principal point at the image centre, no distortion."""
        f = 0.5 * width / np.tan(np.deg2rad(cls.ASSUMED_HFOV_DEG) / 2.0)
        return cls(f, f, width / 2.0, height / 2.0, int(width), int(height), assumed=True)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad value if the intrinsics cannot be used
        (non-finite or non-positive focal length, non-finite principal point, empty size).
        The distortion is not checked here: see ``distortion_problem``."""
        vals = dict(fx=self.fx, fy=self.fy, cx=self.cx, cy=self.cy)
        for k, v in vals.items():
            if not np.isfinite(v):
                raise ValueError(f"camera intrinsics: {k} is not finite ({v})")
        if self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"camera intrinsics: focal length must be > 0 (fx={self.fx}, fy={self.fy})")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"camera intrinsics: empty image size {self.width}x{self.height}")

    @property
    def is_distorted(self) -> bool:
        """False for an ideal pinhole (the fast path): no non-zero coefficient and not the
        ``equidistant`` (fisheye) model."""
        return self.distortion_model == "equidistant" or any(c != 0.0 for c in self.distortion)

    def distortion_problem(self) -> Optional[str]:
        """Why the distortion cannot be used, as a counter name, or None when it can.

        Returns None for no distortion (empty / all-zero coefficients, any model name but
        ``equidistant``) and for a supported model with an accepted number of finite coefficients; otherwise
        ``"distortion_model_unsupported"``, ``"distortion_length_mismatch"`` or
        ``"distortion_not_finite"``.
        """
        if not self.is_distorted:
            return None
        if not all(np.isfinite(self.distortion)):
            return "distortion_not_finite"
        if self.distortion_model not in DISTORTION_MODELS:
            return "distortion_model_unsupported"
        if len(self.distortion) not in DISTORTION_MODELS[self.distortion_model]:
            return "distortion_length_mismatch"
        return None

    def without_distortion(self) -> "CameraIntrinsics":
        """The same camera as an ideal pinhole (same K, no distortion)."""
        return replace(self, distortion_model="", distortion=())

    @property
    def K(self) -> np.ndarray:
        """(3, 3) float64 camera matrix."""
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], np.float64)

    @property
    def pinhole(self) -> np.ndarray:
        """(4,) float64 ``fx, fy, cx, cy`` [px] (the row ``fit`` takes per hand)."""
        return np.array([self.fx, self.fy, self.cx, self.cy], np.float64)


@dataclass
class FrameInput:
    """One image to process, with what the pipeline may use beside it.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        intrinsics: ``CameraIntrinsics`` of the same size, or None (assumed intrinsics,
            ``TRANSLATION_ASSUMED``).
        camera: key of the per-camera state (detector tracking, hand tracks).
        stamp: image time [s] (smoothing, tracking); None = now (monotonic clock).
        depth: optional (H, W) float32 depth registered to ``image`` [m] (0 or NaN =
            no measurement), e.g. a RealSense ``aligned_depth_to_color`` image converted
            from 16UC1 millimetres (uint16 millimetres are accepted too). Registered means
            on the colour image's own pixel grid, lens distortion included (raw pixels).
            Used to place the hands (``core.depth``); unusable depth is a counted fallback
            (``HandMeshPipeline.fallbacks``).
    """

    image: np.ndarray
    intrinsics: Optional["CameraIntrinsics"] = None
    camera: str = "default"
    stamp: Optional[float] = None
    depth: Optional[np.ndarray] = None


@dataclass
class Hand:
    """One hand in 3D, everything in the camera optical frame [m] (see module docstring).

    Attributes:
        side, score, bbox, keypoints_2d: as in ``Detection`` (detector output, pixels of
            the image as given: with lens distortion they are the raw, distorted pixels, so
            they overlay the input image directly; ``camera.undistort_points`` gives the
            ideal pinhole pixels).
        track_id: stable id across frames (``tracking.HandTracker``); 0 before tracking.
        primary: this hand's track is the primary track of its side (``tracking``: kept
            until that track is lost); it gets the TF frames ``<tf_prefix><side>/...``.
        global_orient: (3,) float32 MANO root rotation, axis-angle [rad], camera frame.
        hand_pose: (45,) float32 15 MANO finger rotations, axis-angle [rad].
        betas: (10,) float32 MANO shape coefficients.
        transl: (3,) float32 translation added to the model output (model frame -> camera).
        vertices: (V, 3) float32 mesh vertices [m].
        joints: (21, 3) float32 joints, OpenPose order [m].
        joint_rotations: (21, 3, 3) float32 orientation of each joint's bone-aligned frame
            in the camera frame, columns x, y, z (``joint_frames``: x along the bone, z out
            of the back of the hand, right-handed for both hands).
        translation_source: TRANSLATION_ASSUMED / _INTRINSICS / _DEPTH.
        hand_model: "mano" or "builtin".
        fit_error: RMS distance between the model's joints and the detector's 3D keypoints
            [m] (regressor ``fit``; NaN for ``hamer``).
        reprojection_error: median distance between the published joints projected with the
            intrinsics and the detector's 2D keypoints [px].
    """

    side: int
    score: float
    bbox: np.ndarray
    keypoints_2d: np.ndarray
    global_orient: np.ndarray
    hand_pose: np.ndarray
    betas: np.ndarray
    transl: np.ndarray
    vertices: np.ndarray
    joints: np.ndarray
    joint_rotations: np.ndarray
    translation_source: int
    hand_model: str
    track_id: int = 0
    primary: bool = False
    fit_error: float = float("nan")
    reprojection_error: float = float("nan")


@dataclass
class FrameResult:
    """Output of the pipeline for one image.

    Attributes:
        hands: the hands found (possibly empty), at most ``max_hands``.
        faces: (F, 3) int64 triangle indices of the hand model, right-hand winding; a left
            hand's mesh uses ``faces[:, ::-1]`` (see ``HandModel.faces_for``).
        intrinsics: the intrinsics used to place the hands.
        timings_ms: wall time per stage, e.g. {"detect": 12.1, "regress": 3.2, ...}.
    """

    hands: List[Hand]
    intrinsics: CameraIntrinsics
    timings_ms: dict = field(default_factory=dict)
