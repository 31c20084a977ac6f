"""The node's outputs: ``hands/mesh``, ``hands/markers``, ``/tf`` and ``hands/overlay``.

Everything is stamped with the source image's header (its stamp, never "now", and its optical
frame). Markers and the overlay cost more than the regression (the mesh marker of one
built-in hand: ~10 ms to build, 6 ms to serialize), so they are built only while someone
subscribes. ``/tf`` goes through ``tf2_ros.TransformBroadcaster`` where installed, else a
``tf2_msgs/TFMessage`` publisher with the broadcaster's QoS.
"""
from __future__ import annotations

from typing import Callable, Optional

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from hand_mesh_ros.config import NodeParams
from hand_mesh_ros.core.types import FrameResult
from hand_mesh_ros.ros import messages, real_packages
from hand_mesh_ros.ros.image_conversion import rgb_to_image

#: tf2_ros.TransformBroadcaster's QoS (DynamicBroadcasterQoS).
TF_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.VOLATILE)


class TfSender:
    """``/tf`` sender: ``tf2_ros.TransformBroadcaster`` where installed (unless
    ``HAND_MESH_ROS_STANDINS=1``, ``ros.real_packages``), else a ``TFMessage`` publisher with
    the same QoS."""

    def __init__(self, node: Node):
        tf2_ros = real_packages.load("tf2_ros")
        self.via = "tf2_ros" if tf2_ros is not None else "TFMessage publisher"
        self._br = tf2_ros.TransformBroadcaster(node) if tf2_ros is not None else None
        if self._br is None:
            from tf2_msgs.msg import TFMessage

            self._msg = TFMessage
            self._pub = node.create_publisher(TFMessage, "/tf", TF_QOS)

    def send(self, transforms) -> None:
        if not transforms:
            return
        if self._br is not None:
            self._br.sendTransform(transforms)
        else:
            self._pub.publish(self._msg(transforms=transforms))


class HandPublishers:
    """Publishes one frame's results.

    Args:
        node: the publishing node.
        params: ``publish_markers``, ``publish_overlay``, ``publish_faces``, ``tf_prefix``.
        faces_for: ``faces_for(side)`` -> (F, 3) faces of the hand model for a side.
        render: ``render(rgb, hands, intrinsics, faces_for)`` -> RGB overlay (``core.render``),
            needed with ``publish_overlay``.
    """

    def __init__(self, node: Node, params: NodeParams, faces_for: Callable, render: Optional[Callable] = None):
        from hand_mesh_msgs.msg import HandMeshArray

        self._p, self._faces_for, self._render = params, faces_for, render
        self._mesh = node.create_publisher(HandMeshArray, "hands/mesh", 10)
        self._markers = None
        if params.publish_markers:
            from visualization_msgs.msg import MarkerArray

            self._markers = node.create_publisher(MarkerArray, "hands/markers", 10)
        self._overlay = node.create_publisher(Image, "hands/overlay", 2) if params.publish_overlay else None
        self.tf = TfSender(node)

    def publish(self, rgb, header, result: FrameResult) -> None:
        """``hands/mesh`` (always, also with no hand), ``/tf``, and markers / overlay while
        subscribed, for the frame of ``header`` (its image ``rgb``, (H, W, 3) uint8)."""
        p, hands = self._p, result.hands
        self._mesh.publish(messages.hand_mesh_array(hands, header, self._faces_for if p.publish_faces else None))
        if self._markers is not None and self._markers.get_subscription_count() > 0:
            self._markers.publish(messages.marker_array(hands, header, self._faces_for))
        self.tf.send(messages.joint_transforms(hands, header, p.tf_prefix))
        if self._overlay is not None and self._overlay.get_subscription_count() > 0:
            over = self._render(rgb, hands, result.intrinsics, self._faces_for)
            self._overlay.publish(rgb_to_image(over, header))
