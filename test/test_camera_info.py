"""CameraInfo (message or camera_calibration YAML) -> CameraIntrinsics with distortion."""
from types import SimpleNamespace

import numpy as np
import pytest

from hand_mesh_ros.core.camera import project, undistort_points
from hand_mesh_ros.ros.camera_info import intrinsics_from_camera_info, load_camera_info_yaml

K9 = [612.3, 0.0, 321.5, 0.0, 615.8, 238.9, 0.0, 0.0, 1.0]
D5 = [-0.28, 0.09, 0.0011, -0.0007, -0.013]
P12 = [590.0, 0.0, 318.0, 0.0, 0.0, 600.0, 241.0, 0.0, 0.0, 0.0, 1.0, 0.0]

#: What ROS's camera_calibration writes (~/.ros/camera_info/<name>.yaml).
CALIBRATION_YAML = """image_width: 640
image_height: 480
camera_name: narrow_stereo
camera_matrix:
  rows: 3
  cols: 3
  data: [612.3, 0, 321.5, 0, 615.8, 238.9, 0, 0, 1]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [-0.28, 0.09, 0.0011, -0.0007, -0.013]
rectification_matrix:
  rows: 3
  cols: 3
  data: [1, 0, 0, 0, 1, 0, 0, 0, 1]
projection_matrix:
  rows: 3
  cols: 4
  data: [590, 0, 318, 0, 0, 600, 241, 0, 0, 0, 1, 0]
"""


def test_ros2_camera_info_message():
    pytest.importorskip("rclpy")
    from sensor_msgs.msg import CameraInfo

    m = CameraInfo()
    m.width, m.height = 640, 480
    m.k, m.d, m.p, m.distortion_model = K9, D5, P12, "plumb_bob"
    intr = intrinsics_from_camera_info(m)
    assert (intr.fx, intr.fy, intr.cx, intr.cy, intr.width, intr.height) == (612.3, 615.8, 321.5, 238.9, 640, 480)
    assert intr.distortion_model == "plumb_bob" and intr.distortion == tuple(D5)
    assert intr.is_distorted and intr.distortion_problem() is None and not intr.assumed
    rect = intrinsics_from_camera_info(m, rectified=True)
    assert (rect.fx, rect.fy, rect.cx, rect.cy) == (590.0, 600.0, 318.0, 241.0) and not rect.is_distorted
    m.k = [0.0] * 9  # uncalibrated (camera_info_manager with no file)
    assert intrinsics_from_camera_info(m) is None


def test_ros1_field_names_binning_and_roi():
    """A ROS 1 CameraInfo from a bag (upper-case K, D), binned 2x2 with an ROI: K is shifted and
    scaled to the delivered image; a raw pixel maps to the same ray as in the full image."""
    roi = SimpleNamespace(x_offset=100, y_offset=40, width=400, height=320, do_rectify=False)
    m = SimpleNamespace(K=K9, D=D5, P=P12, distortion_model="plumb_bob", width=640, height=480,
                        binning_x=2, binning_y=2, roi=roi)
    intr = intrinsics_from_camera_info(m)
    assert (intr.width, intr.height) == (200, 160)
    np.testing.assert_allclose([intr.fx, intr.fy, intr.cx, intr.cy],
                               [612.3 / 2, 615.8 / 2, (321.5 - 100) / 2, (238.9 - 40) / 2])
    full = intrinsics_from_camera_info(SimpleNamespace(k=K9, d=D5, distortion_model="plumb_bob", width=640,
                                                       height=480))
    point = np.array([[0.05, -0.02, 0.6]])
    uv_full = project(point, full)
    uv_binned = project(point, intr)
    np.testing.assert_allclose(uv_binned, (uv_full - [100, 40]) / 2, atol=1e-9)
    np.testing.assert_allclose(undistort_points(uv_binned, intr), (undistort_points(uv_full, full) - [100, 40]) / 2,
                               atol=1e-6)


@pytest.mark.parametrize("msg, match", [
    (SimpleNamespace(k=[1.0] * 4, width=640, height=480), "K must have 9"),
    (SimpleNamespace(k=[-5.0, 0, 1, 0, 5, 1, 0, 0, 1], width=640, height=480), "focal length"),
    (SimpleNamespace(k=K9, width=0, height=480), "empty image size"),
])
def test_bad_messages_raise(msg, match):
    with pytest.raises(ValueError, match=match):
        intrinsics_from_camera_info(msg)
    with pytest.raises(ValueError, match="P must have 12"):
        intrinsics_from_camera_info(SimpleNamespace(k=K9, p=[1.0] * 9, width=640, height=480), rectified=True)


def test_unknown_model_is_kept_for_the_pipeline_to_fall_back():
    intr = intrinsics_from_camera_info(SimpleNamespace(k=K9, d=[0.1, 0.2, 0.0, 0.0], distortion_model="fov",
                                                       width=640, height=480))
    assert intr.distortion_problem() == "distortion_model_unsupported"


def test_calibration_yaml(tmp_path):
    f = tmp_path / "cam.yaml"
    f.write_text(CALIBRATION_YAML)
    intr = load_camera_info_yaml(f)
    assert (intr.fx, intr.fy, intr.cx, intr.cy, intr.width, intr.height) == (612.3, 615.8, 321.5, 238.9, 640, 480)
    assert intr.distortion_model == "plumb_bob" and intr.distortion == tuple(D5)
    rect = load_camera_info_yaml(f, rectified=True)
    assert (rect.fx, rect.cx) == (590.0, 318.0) and not rect.is_distorted


@pytest.mark.parametrize("text, match", [
    ("image_width: [", "not a YAML file"),
    ("- 1\n- 2\n", "mapping"),
    (CALIBRATION_YAML.replace("image_height: 480\n", ""), "image_height"),
    (CALIBRATION_YAML.replace("camera_matrix:", "camera_matrixx:"), "camera_matrix"),
    (CALIBRATION_YAML.replace("data: [612.3, 0, 321.5, 0, 615.8, 238.9, 0, 0, 1]", "data: [1, 2]"), "K must have 9"),
])
def test_calibration_yaml_errors_name_the_file_and_key(tmp_path, text, match):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ValueError, match=match) as e:
        load_camera_info_yaml(f)
    assert "bad.yaml" in str(e.value)
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_camera_info_yaml(tmp_path / "missing.yaml")
