"""/tf of the node read by real tf2 in another process: a ``tf2_ros.Buffer`` with a
``TransformListener`` in this test process looks up every joint frame of the hand the node
(its own process) published, in the image's optical frame at the image's stamp, and gets the
HandMesh's ``joints`` (within 1e-6 m) and ``joint_orientations``; with a static transform
``base_link -> camera_color_optical_frame`` from a ``StaticTransformBroadcaster``, the lookup
in ``base_link`` equals the joints transformed by it. Both with the node's
``tf2_ros.TransformBroadcaster`` and with its stand-in TFMessage publisher (``ros_packages``).
"""
import time

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from rclpy.duration import Duration  # noqa: E402
from rclpy.time import Time  # noqa: E402
from scipy.spatial.transform import Rotation  # noqa: E402

from hand_mesh_ros.core.types import JOINT_NAMES, LEFT  # noqa: E402
from hand_mesh_ros.ros.camera_publisher import camera_info_msg  # noqa: E402
from test_node import FRAME, VIA, _img_msg, _ns, _wait, _wait_for_result_of, node_process  # noqa: E402

#: base_link -> optical frame: the optical frame (z forward, x right, y down) of a camera
#: 1.2 m up, 0.1 m forward, looking ahead and 20 deg down (REP 103 body frame: x forward, z up)
BASE_T = np.array([0.1, -0.05, 1.2])
BASE_R = Rotation.from_euler("y", 20, degrees=True) * Rotation.from_quat([-0.5, 0.5, -0.5, 0.5])


def _static_transform():
    from geometry_msgs.msg import TransformStamped

    t = TransformStamped()
    t.header.frame_id, t.child_frame_id = "base_link", FRAME
    t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = BASE_T.tolist()
    q = t.transform.rotation
    q.x, q.y, q.z, q.w = BASE_R.as_quat().tolist()
    return t


def _same_rotation(q, want, atol=1e-6):
    """Quaternions ``q`` and ``want`` (x, y, z, w) are the same rotation (either sign)."""
    q, want = np.asarray(q, float), np.asarray(want, float)
    return min(np.abs(q - want).max(), np.abs(q + want).max()) <= atol


def test_tf2_lookups_equal_the_published_joints(tmp_path, hands_data, ros_packages):
    from conftest import require_ros2_tools

    require_ros2_tools()  # tf2_ros in this process, whichever /tf sender the node uses
    import tf2_ros

    bgr = cv2.imread(str(hands_data / "mediapipe_samples" / "hand_landmarker_test_image.jpg"))
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    # node_process waits until the listener's publishers are matched by the node (a sample
    # sent before that comes seconds late, on a heartbeat); camera_info_timeout 10 s is margin
    # on a loaded machine: a CameraInfo later than it no longer brings its image back
    with node_process(tmp_path / "node.log", "input_reliability:=reliable", "camera_info_timeout:=10.0") \
            as (listener, proc, env, log):
        _wait(lambda: "ready:" in log.read_text(), 60, "the node's ready line", proc, log)
        assert VIA[ros_packages] in log.read_text()
        buffer = tf2_ros.Buffer(cache_time=Duration(seconds=120))
        tf_listener = tf2_ros.TransformListener(buffer, listener.node, spin_thread=False)  # noqa: F841
        tf2_ros.StaticTransformBroadcaster(listener.node).sendTransform(_static_transform())

        img = _img_msg(rgb, time.time_ns())
        listener.image_pub.publish(img)
        listener.info_pub.publish(camera_info_msg(rgb.shape[1], rgb.shape[0], img.header, fx=600.0, fy=600.0))
        _wait_for_result_of(listener, _ns(img.header.stamp), proc, log)
        mesh = next(m for m in list(listener.meshes) if _ns(m.header.stamp) == _ns(img.header.stamp))
        assert len(mesh.hands) == 1, [h.side for h in mesh.hands]
        hand = mesh.hands[0]
        side = "left" if hand.side == LEFT else "right"
        joints = np.asarray(hand.joints, np.float64).reshape(21, 3)
        quats = np.asarray(hand.joint_orientations, np.float64).reshape(21, 4)
        stamp = Time.from_msg(img.header.stamp)

        for j, name in enumerate(JOINT_NAMES):
            t = buffer.lookup_transform(FRAME, f"hand_{side}/{name}", stamp, timeout=Duration(seconds=30))
            assert t.header.frame_id == FRAME and _ns(t.header.stamp) == _ns(img.header.stamp)
            tr, q = t.transform.translation, t.transform.rotation
            np.testing.assert_allclose([tr.x, tr.y, tr.z], joints[j], rtol=0, atol=1e-6, err_msg=name)
            assert _same_rotation([q.x, q.y, q.z, q.w], quats[j]), name

            tb = buffer.lookup_transform("base_link", f"hand_{side}/{name}", stamp, timeout=Duration(seconds=30))
            tr, q = tb.transform.translation, tb.transform.rotation
            np.testing.assert_allclose([tr.x, tr.y, tr.z], BASE_R.apply(joints[j]) + BASE_T, rtol=0, atol=1e-6,
                                       err_msg=name)
            assert _same_rotation([q.x, q.y, q.z, q.w], (BASE_R * Rotation.from_quat(quats[j])).as_quat()), name
        # the index tip as a robot asks for it: in base_link, at the image's time
        tip = buffer.lookup_transform("base_link", f"hand_{side}/index_tip", stamp).transform.translation
        assert 0.0 < tip.x < 3.0  # in front of the robot
