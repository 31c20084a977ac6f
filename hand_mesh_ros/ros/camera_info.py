"""``sensor_msgs/CameraInfo`` (message or calibration YAML) -> ``core.types.CameraIntrinsics``.

Duck-typed on the message fields, so it takes a ROS 2 message (``k``, ``d``, ``p``,
``distortion_model``, ``width``, ``height``, ``binning_x``, ``binning_y``, ``roi``), a ROS 1
message deserialised from a bag (upper-case ``K``, ``D``, ``P``) or any object with those
attributes; importing it needs no ROS. Conventions (REP 104, ``sensor_msgs/CameraInfo``):

* ``K`` describes the raw (distorted) image; ``D`` and ``distortion_model`` its lens. An
  all-zero ``K`` means an uncalibrated camera: no intrinsics (the pipeline then assumes them).
* A rectified image (``image_rect``, from image_proc) shares the raw image's CameraInfo; its
  camera is ``P``'s left 3x3 with no distortion: pass ``rectified=True``.
* Binning and ROI: the image is the ROI of the full-resolution sensor, downsampled by
  ``binning_x`` / ``binning_y``; ``K`` is scaled and shifted accordingly (as image_geometry's
  ``PinholeCameraModel`` does). Distortion acts on normalised coordinates, so ``D`` is unchanged.

The calibration YAML is the file ROS's camera_calibration writes (``image_width``,
``image_height``, ``camera_matrix``, ``distortion_model``, ``distortion_coefficients``,
``projection_matrix``; camera_calibration_parsers' format).
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Optional

import numpy as np

from hand_mesh_ros.core.types import CameraIntrinsics


def _field(msg, name: str, default=None):
    """``msg.name`` (ROS 2, lower case) or ``msg.NAME`` (ROS 1), else ``default``."""
    for attr in (name, name.upper()):
        if hasattr(msg, attr):
            return getattr(msg, attr)
    return default


def intrinsics_from_camera_info(msg, rectified: bool = False) -> Optional[CameraIntrinsics]:
    """Intrinsics (with lens distortion) of the images a CameraInfo describes.

    Args:
        msg: a ``sensor_msgs/CameraInfo`` (ROS 2 or ROS 1 field names) or look-alike.
        rectified: the images are rectified (``image_rect``): use ``P`` and no distortion.

    Returns:
        ``CameraIntrinsics`` (fx, fy, cx, cy [px] of the delivered image, its width and
        height after ROI and binning, ``distortion_model`` and ``D`` as given), or None for
        an uncalibrated camera (all-zero ``K``, or all-zero ``P`` when ``rectified``).
        Unsupported distortion is kept as given: the pipeline falls back to no distortion
        with a counted warning (``CameraIntrinsics.distortion_problem``).

    Raises:
        ValueError: ``K`` / ``P`` of the wrong size, or intrinsics that fail
            ``CameraIntrinsics.validate`` (e.g. a negative focal length).
    """
    if rectified:
        p = np.asarray(_field(msg, "p", ()), np.float64).reshape(-1)
        if p.size != 12:
            raise ValueError(f"CameraInfo P must have 12 values, got {p.size}")
        fx, fy, cx, cy = p[0], p[5], p[2], p[6]
        model, d = "", ()
    else:
        k = np.asarray(_field(msg, "k", ()), np.float64).reshape(-1)
        if k.size != 9:
            raise ValueError(f"CameraInfo K must have 9 values, got {k.size}")
        fx, fy, cx, cy = k[0], k[4], k[2], k[5]
        raw_d = _field(msg, "d", None)  # a list, array.array (rclpy) or numpy array (rosbags)
        d = () if raw_d is None else tuple(float(v) for v in np.asarray(raw_d, np.float64).reshape(-1))
        model = str(_field(msg, "distortion_model", "") or "")
    if fx == 0 and fy == 0 and cx == 0 and cy == 0:
        return None
    bx = int(_field(msg, "binning_x", 0) or 0) or 1
    by = int(_field(msg, "binning_y", 0) or 0) or 1
    width, height = int(_field(msg, "width", 0)), int(_field(msg, "height", 0))
    roi = _field(msg, "roi")
    if roi is not None and int(getattr(roi, "width", 0)) > 0 and int(getattr(roi, "height", 0)) > 0:
        cx -= float(roi.x_offset)
        cy -= float(roi.y_offset)
        width, height = int(roi.width), int(roi.height)
    intr = CameraIntrinsics(float(fx) / bx, float(fy) / by, float(cx) / bx, float(cy) / by,
                            width // bx, height // by, distortion_model=model, distortion=d)
    intr.validate()
    return intr


def load_camera_info_yaml(path, rectified: bool = False) -> Optional[CameraIntrinsics]:
    """Intrinsics from a camera_calibration YAML file (see the module docstring).

    Args:
        path: the ``.yaml`` file (e.g. ``~/.ros/camera_info/<camera>.yaml``).
        rectified: the images are rectified: use ``projection_matrix`` and no distortion.

    Returns:
        As ``intrinsics_from_camera_info``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not YAML, or a key missing / malformed (the message names it and the file).
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"camera info file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not a YAML file ({e})") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a camera_calibration YAML mapping")

    def matrix(key: str, required: bool):
        m = data.get(key)
        if m is None and not required:
            return ()
        if not isinstance(m, dict) or "data" not in m:
            raise ValueError(f"{path}: '{key}' with a 'data' list is missing")
        return list(m["data"] or ())

    try:
        msg = SimpleNamespace(
            width=int(data["image_width"]), height=int(data["image_height"]),
            k=matrix("camera_matrix", not rectified), p=matrix("projection_matrix", rectified),
            distortion_model=data.get("distortion_model", ""),
            d=matrix("distortion_coefficients", False))
        return intrinsics_from_camera_info(msg, rectified=rectified)
    except KeyError as e:
        raise ValueError(f"{path}: key {e} is missing") from e
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: {e}") from e
