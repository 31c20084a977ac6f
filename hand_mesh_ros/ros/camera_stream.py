"""One camera's inputs on the ROS graph: subscriptions, pairing, and every image accounted for.

A :class:`CameraStream` subscribes a camera's image (raw or compressed), its CameraInfo
(paired by stamp: ``message_filters.ApproximateTimeSynchronizer`` where installed, else
``ros.sync.StampPairSynchronizer``, same semantics) and optionally its depth image, and puts
each complete frame into the node's :class:`~hand_mesh_ros.ros.camera_inputs.LatestFrames`.

Every image that arrives is counted as received and ends as exactly one of: processed,
dropped (a newer frame replaced it while it waited: latest frame wins), or skipped with a
reason. An image whose CameraInfo never pairs is skipped as ``no_camera_info`` once a newer
frame of the camera goes on or after ``camera_info_timeout`` seconds, never lost silently.

:meth:`CameraStream.decode` turns a frame into the pipeline's input (RGB image, intrinsics,
depth) or raises :class:`FrameSkip` with the reason.
"""
from __future__ import annotations

import time
from typing import Callable, Optional

import numpy as np
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from hand_mesh_ros.config import NodeParams
from hand_mesh_ros.core.types import FrameInput
from hand_mesh_ros.ros import diagnostics, real_packages
from hand_mesh_ros.ros.camera_info import intrinsics_from_camera_info
from hand_mesh_ros.ros.camera_inputs import (AwaitingCameraInfo, CameraInfoWatch, Frame, LatestFrames,
                                             StampBuffer)
from hand_mesh_ros.ros.diagnostics import CameraTopics, NodeDiagnostics
from hand_mesh_ros.ros.image_conversion import ImageDecodeError, to_depth_metres, to_rgb
from hand_mesh_ros.ros.sync import StampPairSynchronizer, stamp_ns

#: messages kept per input by the (image, camera_info) synchronizer (and of depth).
SYNC_QUEUE_SIZE = 10

#: Sensor-data QoS with a depth-1 keep-last queue: old frames are dropped, never queued.
SENSOR_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                        reliability=ReliabilityPolicy.BEST_EFFORT,
                        durability=DurabilityPolicy.VOLATILE)
#: ``input_reliability: reliable``: same depth-1 keep-last queue, reliable delivery. Matches
#: only reliable publishers, but large images are not lost to dropped DDS fragments (measured
#: with Fast DDS on loopback: a best-effort reader got 7 of 20 640x360 rgb8 frames at 5 Hz
#: and 1 of 20 at 20 Hz; a reliable reader got 20 of 20).
RELIABLE_INPUT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                                reliability=ReliabilityPolicy.RELIABLE,
                                durability=DurabilityPolicy.VOLATILE)


class FrameSkip(ValueError):
    """A frame that cannot be processed: ``reason`` (a counter name) and the message."""

    def __init__(self, reason: str, text: str):
        super().__init__(text)
        self.reason = reason


class CameraStream:
    """The subscriptions of one camera and the bookkeeping of its images.

    Args:
        node: the node that owns the subscriptions (its logger is used).
        topics: the camera's topics as resolved on the graph (remapped, transport suffix).
        params: the node's parameters.
        frames: where complete frames go.
        counters: the node's counters (received, skipped, depth outcomes, CameraInfo state).
        skip: ``skip(camera, reason, text)`` counts and logs a skipped frame.
        warn: ``warn(key, text)`` logs a warning, throttled per ``key``.
    """

    def __init__(self, node: Node, topics: CameraTopics, params: NodeParams, frames: LatestFrames,
                 counters: NodeDiagnostics, skip: Callable[[str, str, str], None],
                 warn: Callable[[tuple, str], None]):
        self.topics, self.key = topics, topics.key
        self._node, self._p, self._frames, self._counters = node, params, frames, counters
        self._skip, self._warn = skip, warn
        self._watch = CameraInfoWatch(params.camera_info_timeout)
        self._awaiting = AwaitingCameraInfo(params.camera_info_timeout)
        self._depth = StampBuffer(SYNC_QUEUE_SIZE, params.sync_slop) if topics.depth else None
        # the real message_filters where installed (unless HAND_MESH_ROS_STANDINS=1), else the stand-in
        message_filters = real_packages.load("message_filters")
        self.sync_via = "message_filters" if message_filters is not None else "StampPairSynchronizer"
        self._subs = []  # subscriptions and synchronizers, kept alive
        self._subscribe(message_filters)

    # -- subscriptions ---------------------------------------------------------------------------
    def _subscribe(self, message_filters) -> None:
        n, t = self._node, self.topics
        qos = RELIABLE_INPUT_QOS if self._p.input_reliability == "reliable" else SENSOR_QOS
        image_type = CompressedImage if self._p.image_transport == "compressed" else Image
        if self._depth is not None:
            self._subs.append(n.create_subscription(image_type, t.depth, self._depth.add, qos))
        if not t.camera_info:
            self._counters.set_camera_info(self.key, diagnostics.CAMERA_INFO_UNUSED)
            self._subs.append(n.create_subscription(image_type, t.image, self.on_image, qos))
            return
        if message_filters is not None:
            subs = [message_filters.Subscriber(n, image_type, t.image, qos_profile=qos),
                    message_filters.Subscriber(n, CameraInfo, t.camera_info, qos_profile=qos)]
            sync = message_filters.ApproximateTimeSynchronizer(subs, SYNC_QUEUE_SIZE, self._p.sync_slop)
            sync.registerCallback(self.on_pair)
            subs[0].registerCallback(self.on_image)  # after the synchronizer's: a pair it completes comes first
            self._subs += subs + [sync]
            return
        sync = StampPairSynchronizer(2, SYNC_QUEUE_SIZE, self._p.sync_slop)
        sync.register_callback(self.on_pair)

        def on_image(img):
            sync.add(0, img)  # a pair it completes comes first
            self.on_image(img)
        self._subs += [n.create_subscription(image_type, t.image, on_image, qos),
                       n.create_subscription(CameraInfo, t.camera_info, sync.input_callback(1), qos), sync]

    # -- callbacks: only bookkeeping, the worker does the rest -----------------------------------
    def on_image(self, image) -> None:
        """Every image of the camera, after the synchronizer has seen it."""
        now = time.monotonic()
        self._counters.received(self.key)
        if not self.topics.camera_info:
            self._go(image, None, now)
            return
        if self._watch.image(now) == "missing":
            self._warn_missing()
        stamp = stamp_ns(image)
        if not self._awaiting.arrived(stamp, now):
            return  # paired already
        if self._watch.missing:
            self._awaiting.went_alone(stamp)
            self._go(image, None, now)
        self.sweep(now)

    def sweep(self, now: Optional[float] = None) -> None:
        """Skip (count) the images that waited ``camera_info_timeout`` for their CameraInfo
        (also called by the node's diagnostics timer, for a stream that stopped)."""
        self._give_up(self._awaiting.expired(time.monotonic() if now is None else now),
                      f"no CameraInfo paired to it within camera_info_timeout={self._p.camera_info_timeout:g} s")

    def on_pair(self, image, info: CameraInfo) -> None:
        """An (image, CameraInfo) pair from the synchronizer."""
        state = self._watch.paired(time.monotonic())
        if state is not None:
            again = " again" if state == "started" else ""
            self._node.get_logger().info(f"CameraInfo of '{self.topics.image}' arrives on "
                                         f"'{self.topics.camera_info}': using its intrinsics{again}")
        self._counters.set_camera_info(self.key, diagnostics.CAMERA_INFO_OK)
        stamp = stamp_ns(image)
        if not self._awaiting.resolve(stamp):
            return  # given up (counted as skipped), or went on alone, before its CameraInfo came
        self._go(image, info, None)

    def _go(self, image, info: Optional[CameraInfo], received: Optional[float]) -> None:
        """The frame goes to the worker; older images still waiting for CameraInfo are skipped."""
        self._frames.put(self.key, Frame(image, info, received if received is not None else time.monotonic()))
        if self.topics.camera_info:
            self._give_up(self._awaiting.overtaken(stamp_ns(image)),
                          f"no CameraInfo within sync_slop={self._p.sync_slop:g} s of it before a newer frame")

    def _give_up(self, stamps, why: str) -> None:
        for s in stamps:
            self._skip(self.key, "no_camera_info", f"image of stamp {s * 1e-9:.9f} s: {why}")

    def _warn_missing(self) -> None:
        p, t = self._p, self.topics
        then = ("frames are skipped (require_camera_info)" if p.require_camera_info else
                "frames are processed with assumed intrinsics (60 deg horizontal FOV, TRANSLATION_ASSUMED)")
        self._node.get_logger().warning(
            f"images arrive on '{t.image}' but no CameraInfo on '{t.camera_info}' within "
            f"sync_slop={p.sync_slop} s of them for {p.camera_info_timeout} s (check the camera_info "
            f"remapping and the driver); {then} until it arrives")
        self._counters.set_camera_info(self.key, diagnostics.CAMERA_INFO_REQUIRED if p.require_camera_info
                                       else diagnostics.CAMERA_INFO_ASSUMED)

    # -- worker side -----------------------------------------------------------------------------
    def decode(self, frame: Frame) -> FrameInput:
        """The pipeline's input for ``frame``: RGB image, intrinsics (None = assumed), depth.

        Raises:
            FrameSkip: ``no_camera_info`` (``require_camera_info``), an image that cannot be
                decoded (``ImageDecodeError.reason``) or ``bad_camera_info``.
        """
        p = self._p
        if frame.info is None and p.require_camera_info and p.use_camera_info:
            raise FrameSkip("no_camera_info", "no CameraInfo and require_camera_info is true")
        try:
            rgb = to_rgb(frame.image)
        except ImageDecodeError as e:
            raise FrameSkip(e.reason, str(e)) from None
        intr = None
        if frame.info is not None:
            try:  # K, D, distortion_model (P, no distortion for rectified images); None if uncalibrated
                intr = intrinsics_from_camera_info(frame.info, rectified=p.image_rectified)
            except ValueError as e:
                raise FrameSkip("bad_camera_info", str(e)) from None
            # the decoded size: a CompressedImage has no width / height fields
            if intr is not None and (intr.width, intr.height) != (rgb.shape[1], rgb.shape[0]):
                raise FrameSkip("bad_camera_info", f"image is {rgb.shape[1]}x{rgb.shape[0]} but its CameraInfo "
                                                   f"says {intr.width}x{intr.height}")
        stamp = stamp_ns(frame.image)
        return FrameInput(rgb, intr, self.key, stamp * 1e-9, self._depth_for(stamp))

    def _depth_for(self, stamp: int) -> Optional[np.ndarray]:
        """The depth [m] paired with the frame of ``stamp`` [ns], waiting at most ``depth_wait``;
        None (counted) without depth."""
        if self._depth is None:
            return None
        msg = self._depth.take(stamp, timeout=self._p.depth_wait)
        if msg is None:
            self._counters.depth(self.key, "unsynchronized")
            return None
        try:
            depth = to_depth_metres(msg)
        except ImageDecodeError as e:
            self._counters.depth(self.key, "undecodable")
            self._warn((self.key, "depth_" + e.reason), f"depth of '{self.topics.image}' not used ({e.reason}): "
                                                        f"{e}; processing without depth")
            return None
        self._counters.depth(self.key, "paired")
        return depth
