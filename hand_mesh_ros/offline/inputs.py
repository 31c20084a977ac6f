"""What each colour frame of ``hand-mesh run`` is processed with besides its pixels: the
camera intrinsics (:class:`FrameIntrinsics`) and a registered depth frame (:class:`DepthPairing`)."""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np

from hand_mesh_ros.core.types import CameraIntrinsics
from hand_mesh_ros.frames import Frame, FrameStream, InputError
from hand_mesh_ros.ros.camera_info import intrinsics_from_camera_info, load_camera_info_yaml


class FrameIntrinsics:
    """The intrinsics a frame is placed with: a camera_calibration YAML (``--camera-info``),
    else ``--fx/--fy/--cx/--cy``, else the frame's own CameraInfo (a bag's, lens distortion
    included), else None (the pipeline assumes them: 60 deg horizontal field of view).

    Args:
        camera_info: path of a camera_calibration YAML, or "" for none.
        rectified: the images are rectified (``image_rect``): intrinsics from the
            CameraInfo's projection matrix P, no lens distortion (YAML and bag alike).
        fx, fy, cx, cy: [px], None where not given; ``fy`` defaults to ``fx`` and ``fx`` to
            ``fy``, ``cx`` / ``cy`` to the image centre (``width / 2``, ``height / 2``).

    Calling it with a frame returns its ``CameraIntrinsics`` (the given ones are made once
    per image size) or None, and raises:
        InputError: both the YAML and fx / fy given; cx / cy without fx / fy; a YAML that is
            missing, malformed or for another image size.
        ValueError: fx / fy / cx / cy that ``CameraIntrinsics.validate`` refuses.
    """

    def __init__(self, camera_info: str = "", rectified: bool = False, fx: Optional[float] = None,
                 fy: Optional[float] = None, cx: Optional[float] = None, cy: Optional[float] = None):
        self.camera_info, self.rectified = camera_info, rectified
        self.fx, self.fy, self.cx, self.cy = fx, fy, cx, cy
        self._given: Dict[Tuple[int, int], Optional[CameraIntrinsics]] = {}

    def __call__(self, frame: Frame) -> Optional[CameraIntrinsics]:
        h, w = frame.image.shape[:2]
        if (w, h) not in self._given:
            self._given[(w, h)] = self._from_flags(w, h)
        k = self._given[(w, h)]
        if k is None and frame.camera_info is not None:
            k = intrinsics_from_camera_info(frame.camera_info, rectified=self.rectified)
        return k

    def _from_flags(self, width: int, height: int) -> Optional[CameraIntrinsics]:
        if self.camera_info:
            if self.fx is not None or self.fy is not None:
                raise InputError("give either --camera-info or --fx/--fy, not both")
            try:
                k = load_camera_info_yaml(self.camera_info, rectified=self.rectified)
            except (FileNotFoundError, ValueError) as e:
                raise InputError(str(e)) from e
            if k is not None and (k.width, k.height) != (width, height):
                raise InputError(f"{self.camera_info} is for {k.width}x{k.height} images, "
                                 f"the input is {width}x{height}")
            return k
        if self.fx is None and self.fy is None:
            if self.cx is not None or self.cy is not None:
                raise InputError("--cx/--cy given without --fx/--fy")
            return None
        fx = self.fx if self.fx is not None else self.fy
        fy = self.fy if self.fy is not None else self.fx
        cx = self.cx if self.cx is not None else width / 2.0
        cy = self.cy if self.cy is not None else height / 2.0
        k = CameraIntrinsics(fx, fy, cx, cy, width, height, assumed=False)
        k.validate()
        return k


class DepthPairing:
    """``--depth``: the depth frame registered to each colour frame, paired by index
    (``depth_frames.DepthSource``: a folder, a file or a 16-bit video).

    Args:
        path: the depth input.
        colour: the colour frames it goes with (for the length check).

    Raises:
        InputError: the depth input cannot be used (see ``DepthSource``), or a depth folder
            holds fewer frames than a colour folder (message "<path> holds N depth frames for
            M colour frames"). Calling it raises InputError when the depth input ends before
            the colour one ("<path> ends before colour frame <index>").
    """

    def __init__(self, path, colour: FrameStream):
        from hand_mesh_ros.depth_frames import DepthSource

        self.path = path
        source = DepthSource(path)
        if not source.is_video and not colour.is_video and len(source) < len(colour):
            raise InputError(f"{path} holds {len(source)} depth frames for {len(colour)} colour frames")
        self._frames = iter(source)

    def __call__(self, frame: Frame) -> np.ndarray:
        """The next depth frame, (H, W) uint16 [mm] or float32 [m], for colour ``frame``."""
        depth = next(self._frames, None)
        if depth is None:
            raise InputError(f"{self.path} ends before colour frame {frame.index}")
        return depth
