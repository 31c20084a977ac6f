"""``hand_mesh_node``: the ROS 2 adapter around ``core.pipeline.HandMeshPipeline``.

Subscribes (per camera, sensor-data QoS, depth 1; ``input_reliability: reliable`` for a
reliable depth-1 queue):
    ``image`` (sensor_msgs/Image; rgb8, bgr8, mono8, rgba8, bgra8, ... see
    ``ros.image_conversion``; with ``image_transport: compressed`` sensor_msgs/CompressedImage
    on ``<image>/compressed``, JPEG or PNG) and ``camera_info`` (sensor_msgs/CameraInfo),
    paired by stamp (``message_filters.ApproximateTimeSynchronizer`` where installed, else
    ``ros.sync.StampPairSynchronizer``, same semantics; ``sync_slop`` seconds).
    With ``image_topics: [T1, T2, ...]`` each ``T`` is a camera whose info is on
    ``<namespace of T>/camera_info`` (``/cam0/color/image_raw`` -> ``/cam0/color/camera_info``).
    With ``use_camera_info: false`` only images are subscribed and the intrinsics are
    assumed (60 deg horizontal FOV; ``translation_source = TRANSLATION_ASSUMED``).
    With ``use_depth: true`` also a registered depth image per camera (``depth``, or
    ``depth_topics`` / the RealSense layout for ``image_topics``; 16UC1 mm, 32FC1 m, or
    ``<depth>/compressedDepth`` with ``image_transport: compressed``), paired with the colour
    frame by stamp within ``sync_slop``; a colour frame waits at most ``depth_wait`` for its
    depth (aligned depth is published a few ms after colour), then goes on without it.

Missing CameraInfo: when images arrive for ``camera_info_timeout`` seconds without a
CameraInfo paired to them, one warning names both topics; then frames are processed with
assumed intrinsics (``TRANSLATION_ASSUMED``), or skipped and counted when
``require_camera_info`` is true; an info line says when CameraInfo starts again.

Publishes, all stamped with the source image's stamp in its optical frame:
    ``hands/mesh`` (hand_mesh_msgs/HandMeshArray, one per processed image, empty when no
    hand), ``hands/markers`` (visualization_msgs/MarkerArray, if ``publish_markers``),
    ``/tf`` (21 joint frames per hand, names in ``ros.messages``; via
    ``tf2_ros.TransformBroadcaster`` where installed, else a tf2_msgs/TFMessage publisher
    with the broadcaster's QoS: reliable, volatile, depth 100),
    ``hands/overlay`` (sensor_msgs/Image rgb8, if ``publish_overlay``). Markers and overlay
    are built only while they have a subscriber (they cost more than the regression).
    ``/diagnostics`` (diagnostic_msgs/DiagnosticArray, 1 Hz, ``ros.diagnostics``: rates,
    drops, skips by reason, per-stage latency, device and models, OK / WARN / ERROR).

Threading: subscription callbacks only store the latest (image, info) pair per camera; a
worker thread takes the pending frame of every camera, runs ``pipe.process_batch`` on them
and publishes. A frame replaced before the worker took it is counted as dropped
(``stats['dropped']``): processing never falls behind on old frames.

Bad input (unsupported encoding, empty or corrupt image, image size != CameraInfo size, NaN
/ zero intrinsics, a frame with the stamp of the last processed one) logs a warning
throttled per (camera, reason), is counted in ``stats['skipped']`` and by reason on
``/diagnostics``, and the node goes on.

Composable: ``HandMeshNode(**node_kwargs)`` never calls ``rclpy.init``/``spin``/``shutdown``;
``main()`` is the console-script wrapper (``hand_mesh_node`` / ``python -m hand_mesh_ros.node``).
"""
from __future__ import annotations

import collections
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Dict, List, NamedTuple, Optional

import numpy as np
import rclpy
import rclpy.executors
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                ParameterType)
from rclpy.exceptions import (InvalidParameterTypeException, InvalidParameterValueException,
                              ParameterUninitializedException)
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy)
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from hand_mesh_ros.core.detectors import DETECTOR_MODELS, DETECTORS
from hand_mesh_ros.core.pipeline import DEVICES, PRECISIONS, HandMeshPipeline, PipelineConfig
from hand_mesh_ros.core.tracking import SMOOTHING
from hand_mesh_ros.core.types import FrameInput
from hand_mesh_ros.ros import camera_inputs, dds_profile, diagnostics, messages, real_packages
from hand_mesh_ros.ros.camera_info import intrinsics_from_camera_info
from hand_mesh_ros.ros.camera_inputs import TRANSPORTS, CameraInfoWatch, StampBuffer, transport_topic
from hand_mesh_ros.ros.diagnostics import CameraTopics, DiagnosticsPublisher, NodeDiagnostics
from hand_mesh_ros.ros.image_conversion import ImageDecodeError, rgb_to_image, to_depth_metres, to_rgb
from hand_mesh_ros.ros.sync import StampPairSynchronizer, stamp_ns
from hand_mesh_ros.ros.throttle import ReasonThrottle, with_held_count

NODE_NAME = "hand_mesh_node"

INPUT_RELIABILITY = ("best_effort", "reliable")
#: messages kept per input by the (image, camera_info) synchronizer (and of depth).
SYNC_QUEUE_SIZE = 10
#: shortest time between two warnings of the same (camera, reason) [s].
WARN_THROTTLE_S = 5.0
#: /diagnostics period [s] and the window of its rates and latency statistics [s].
DIAGNOSTICS_PERIOD_S = 1.0
DIAGNOSTICS_WINDOW_S = 5.0
#: a camera with no image for this long is WARN on /diagnostics [s].
STALE_AFTER_S = 2.0

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
#: tf2_ros.TransformBroadcaster's QoS (DynamicBroadcasterQoS).
TF_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                    reliability=ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.VOLATILE)


def _desc(text: str, ptype: int, constraints: str = "", **ranges) -> ParameterDescriptor:
    return ParameterDescriptor(description=text, type=ptype, read_only=True,
                               additional_constraints=constraints, **ranges)


_S, _I, _D, _B, _SA = (ParameterType.PARAMETER_STRING, ParameterType.PARAMETER_INTEGER,
                       ParameterType.PARAMETER_DOUBLE, ParameterType.PARAMETER_BOOL,
                       ParameterType.PARAMETER_STRING_ARRAY)

_TYPE_NAMES = {_S: "string", _I: "integer", _D: "double", _B: "bool", _SA: "string array"}

#: name -> (default, descriptor). Order = config/hands.yaml. All read-only (set at start-up).
PARAMETERS = {
    "detector": ("auto", _desc("hand detector", _S, "one of " + ", ".join(DETECTORS)
                               + " (auto: mediapipe_torch on CUDA, mediapipe on the CPU)")),
    "detector_model": ("full", _desc("MediaPipe hand networks", _S, "one of " + ", ".join(DETECTOR_MODELS))),
    "regressor": ("fit", _desc("MANO regressor", _S, "see PipelineConfig (e.g. fit, hamer)")),
    "device": ("auto", _desc("compute device", _S, "one of " + ", ".join(DEVICES))),
    "batch_size": (8, _desc("largest number of hand crops regressed at once", _I, ">= 1",
                            integer_range=[IntegerRange(from_value=1, to_value=1024, step=1)])),
    "max_hands": (2, _desc("most hands kept per image", _I, ">= 1",
                           integer_range=[IntegerRange(from_value=1, to_value=64, step=1)])),
    "min_score": (0.5, _desc("detection score threshold", _D, "in [0, 1]",
                             floating_point_range=[FloatingPointRange(from_value=0.0, to_value=1.0)])),
    "mano_model_dir": ("", _desc("folder with MANO_RIGHT.pkl / MANO_LEFT.pkl; empty = built-in hand", _S)),
    "checkpoint": ("", _desc("HaMeR checkpoint file (regressor hamer), model_config.yaml next to it "
                             "or two folders up; empty = none", _S)),
    "precision": ("auto", _desc("compute precision of hamer and mediapipe_torch", _S,
                                "one of " + ", ".join(PRECISIONS) + " (auto: bf16/fp16 on CUDA, fp32 on CPU)")),
    "publish_faces": (False, _desc("fill HandMesh.faces (F x 3 vertex indices) in every message", _B)),
    "publish_markers": (True, _desc("publish hands/markers (MarkerArray for RViz)", _B)),
    "publish_overlay": (False, _desc("publish hands/overlay (mesh drawn over the input image)", _B)),
    "tf_prefix": ("hand_", _desc("TF frame prefix: <prefix><side>/<joint>", _S)),
    "smoothing": ("none", _desc("temporal smoothing of tracked hands", _S, "one of " + ", ".join(SMOOTHING))),
    "smoothing_min_cutoff": (2.0, _desc("One Euro cutoff at rest [Hz] (lower = less jitter, more lag)", _D, "> 0",
                                        floating_point_range=[FloatingPointRange(from_value=1e-3, to_value=1e3)])),
    "smoothing_beta": (0.5, _desc("One Euro speed coefficient (per rad/s; per 0.1 m/s of translation)", _D, ">= 0",
                                  floating_point_range=[FloatingPointRange(from_value=0.0, to_value=1e3)])),
    "track_max_missed": (5, _desc("frames a track keeps its id while its hand is not seen", _I, ">= 0",
                                  integer_range=[IntegerRange(from_value=0, to_value=1000, step=1)])),
    "side_hysteresis": (10, _desc("consecutive frames of the other side label needed to change a track's side", _I,
                                 ">= 1", integer_range=[IntegerRange(from_value=1, to_value=1000, step=1)])),
    "nms_iou": (0.5, _desc("two detections whose boxes overlap by this IoU or more are one hand", _D, "in (0, 1]",
                           floating_point_range=[FloatingPointRange(from_value=1e-3, to_value=1.0)])),
    "nms_keypoint_distance": (0.2, _desc("two detections whose mean keypoint distance is at most this many box "
                                         "diagonals are one hand", _D, ">= 0",
                                         floating_point_range=[FloatingPointRange(from_value=0.0, to_value=10.0)])),
    "image_topics": (Parameter.Type.STRING_ARRAY,
                     _desc("image topics, one per camera; empty = one camera on 'image' + 'camera_info'", _SA,
                           "camera info of topic T on <namespace of T>/camera_info")),
    "mirrored": (False, _desc("images are mirrored (selfie view): swap left/right", _B)),
    "use_camera_info": (True, _desc("use CameraInfo intrinsics; false = assumed 60 deg HFOV", _B)),
    "image_rectified": (False, _desc("the images are rectified (image_rect from image_proc): intrinsics from "
                                     "CameraInfo P, no lens distortion; false = raw images, K and D", _B)),
    "input_reliability": ("best_effort", _desc(
        "QoS reliability of the image / camera_info subscriptions (depth 1, keep last)", _S,
        "one of best_effort (sensor-data QoS, matches every publisher), reliable (only reliable "
        "publishers; no lost fragments of large images)")),
    "sync_slop": (0.05, _desc("largest image / camera_info (and image / depth) stamp difference paired [s]",
                              _D, "> 0", floating_point_range=[FloatingPointRange(from_value=1e-6, to_value=10.0)])),
    "image_transport": ("raw", _desc("image input transport: raw (sensor_msgs/Image on <image>) or compressed "
                                     "(sensor_msgs/CompressedImage on <image>/compressed; depth on "
                                     "<depth>/compressedDepth)", _S, "one of " + ", ".join(TRANSPORTS))),
    "camera_info_timeout": (2.0, _desc("images without a paired CameraInfo for this long: one warning, then "
                                       "assumed intrinsics (or skipped with require_camera_info) [s]", _D, "> 0",
                                       floating_point_range=[FloatingPointRange(from_value=1e-3, to_value=3600.0)])),
    "require_camera_info": (False, _desc("skip (and count) frames without CameraInfo instead of assuming "
                                         "intrinsics", _B)),
    "use_depth": (False, _desc("subscribe a depth image registered to each colour image (16UC1 mm, 32FC1 m)", _B)),
    "depth_wait": (0.05, _desc("longest a colour frame waits for its depth image (use_depth) before it is "
                               "processed without depth [s]; 0 = never wait", _D, ">= 0",
                               floating_point_range=[FloatingPointRange(from_value=0.0, to_value=1.0)])),
    "depth_topics": (Parameter.Type.STRING_ARRAY,
                     _desc("with image_topics and use_depth: the depth topic of each camera, in the same order; "
                           "empty = RealSense layout <ns>/color/image_raw -> <ns>/aligned_depth_to_color/image_raw",
                           _SA, "as many as image_topics, or empty")),
}


@dataclass
class NodeParams:
    """Validated node parameters (see ``PARAMETERS`` and config/hands.yaml)."""

    detector: str
    detector_model: str
    regressor: str
    device: str
    batch_size: int
    max_hands: int
    min_score: float
    mano_model_dir: str
    checkpoint: str
    precision: str
    publish_faces: bool
    publish_markers: bool
    publish_overlay: bool
    tf_prefix: str
    smoothing: str
    smoothing_min_cutoff: float
    smoothing_beta: float
    track_max_missed: int
    side_hysteresis: int
    nms_iou: float
    nms_keypoint_distance: float
    image_topics: List[str]
    mirrored: bool
    use_camera_info: bool
    image_rectified: bool
    input_reliability: str
    sync_slop: float
    image_transport: str
    camera_info_timeout: float
    require_camera_info: bool
    use_depth: bool
    depth_wait: float
    depth_topics: List[str]


def declare_parameters(node: Node) -> NodeParams:
    """Declare every node parameter on ``node`` (with descriptors) and return them validated.

    Raises:
        ValueError: a value of the wrong type or outside its allowed values; the message
            names the parameter and what is allowed.
    """
    for name, (default, desc) in PARAMETERS.items():
        try:
            node.declare_parameter(name, default, desc)
        except (InvalidParameterValueException, InvalidParameterTypeException) as e:
            allowed = " ".join(filter(None, ["a " + _TYPE_NAMES[desc.type], desc.additional_constraints]))
            raise ValueError(f"parameter '{name}': invalid value ({e}); allowed: {allowed}") from None
    values = {}
    for name in PARAMETERS:
        try:
            values[name] = node.get_parameter(name).value
        except ParameterUninitializedException:  # string array declared without a default
            values[name] = []
    p = NodeParams(**values)
    p.image_topics = [t for t in (p.image_topics or []) if t]
    p.depth_topics = [t for t in (p.depth_topics or []) if t]

    def check(ok: bool, name: str, allowed: str):
        if not ok:
            raise ValueError(f"parameter '{name}': {getattr(p, name)!r} is not allowed; allowed: {allowed}")

    check(p.detector in DETECTORS, "detector", "one of " + ", ".join(DETECTORS))
    check(p.detector_model in DETECTOR_MODELS, "detector_model", "one of " + ", ".join(DETECTOR_MODELS))
    check(p.device in DEVICES, "device", "one of " + ", ".join(DEVICES))
    check(p.precision in PRECISIONS, "precision", "one of " + ", ".join(PRECISIONS))
    check(p.smoothing in SMOOTHING, "smoothing", "one of " + ", ".join(SMOOTHING))
    check(p.batch_size >= 1, "batch_size", ">= 1")
    check(p.max_hands >= 1, "max_hands", ">= 1")
    check(0.0 <= p.min_score <= 1.0, "min_score", "in [0, 1]")
    check(p.smoothing_min_cutoff > 0.0, "smoothing_min_cutoff", "> 0 Hz")
    check(p.smoothing_beta >= 0.0, "smoothing_beta", ">= 0")
    check(p.track_max_missed >= 0, "track_max_missed", ">= 0")
    check(p.side_hysteresis >= 1, "side_hysteresis", ">= 1")
    check(0.0 < p.nms_iou <= 1.0, "nms_iou", "in (0, 1]")
    check(p.nms_keypoint_distance >= 0.0, "nms_keypoint_distance", ">= 0")
    check(p.input_reliability in INPUT_RELIABILITY, "input_reliability", "one of " + ", ".join(INPUT_RELIABILITY))
    check(p.sync_slop > 0.0, "sync_slop", "> 0 s")
    check(len(set(p.image_topics)) == len(p.image_topics), "image_topics", "distinct topic names")
    check(p.image_transport in TRANSPORTS, "image_transport", "one of " + ", ".join(TRANSPORTS))
    check(p.camera_info_timeout > 0.0, "camera_info_timeout", "> 0 s")
    check(p.depth_wait >= 0.0, "depth_wait", ">= 0 s")
    camera_topics(p)  # depth_topics of the wrong length
    return p


def camera_topics(params: NodeParams) -> List[CameraTopics]:
    """The topics of every camera, as subscribed before remapping and transport suffix
    (``ros.camera_inputs.camera_topics``)."""
    return camera_inputs.camera_topics(params.image_topics, params.depth_topics or [],
                                       params.use_camera_info, params.use_depth)


class Pending(NamedTuple):
    """The latest frame of a camera waiting for the worker."""

    image: object  # sensor_msgs/Image or CompressedImage
    info: Optional[CameraInfo]
    received: Optional[float] = None  # time.monotonic() when the callback stored it


class _TfPublisher:
    """``/tf`` sender: tf2_ros.TransformBroadcaster when installed, else a TFMessage publisher."""

    def __init__(self, node: Node):
        tf2_ros = real_packages.load("tf2_ros")  # None: not installed, or HAND_MESH_ROS_STANDINS=1
        self.via = "tf2_ros" if tf2_ros is not None else "TFMessage publisher"
        if tf2_ros is not None:
            self._br = tf2_ros.TransformBroadcaster(node)
            self._pub = None
        else:
            from tf2_msgs.msg import TFMessage
            self._br = None
            self._msg = TFMessage
            self._pub = node.create_publisher(TFMessage, "/tf", TF_QOS)

    def send(self, transforms) -> None:
        if not transforms:
            return
        if self._br is not None:
            self._br.sendTransform(transforms)
        else:
            self._pub.publish(self._msg(transforms=transforms))


class HandMeshNode(Node):
    """Camera images in, hand meshes out (see the module docstring for topics and threading).

    Args:
        node_name: default ``hand_mesh_node`` (the key in config/hands.yaml).
        **kwargs: standard ``rclpy.node.Node`` arguments (namespace, context,
            parameter_overrides, ...).

    Raises (at construction, before anything is subscribed):
        ValueError: an invalid parameter (message names it and the allowed values), or a
            pipeline configuration error; FileNotFoundError: e.g. a missing MANO folder.
    """

    def __init__(self, node_name: str = NODE_NAME, **kwargs):
        super().__init__(node_name, **kwargs)
        self.params = declare_parameters(self)
        p = self.params

        cfg = PipelineConfig(detector=p.detector, detector_model=p.detector_model, regressor=p.regressor,
                             device=p.device, batch_size=p.batch_size, max_hands=p.max_hands, min_score=p.min_score,
                             mano_model_dir=p.mano_model_dir, checkpoint=p.checkpoint, precision=p.precision,
                             smoothing=p.smoothing, smoothing_min_cutoff=p.smoothing_min_cutoff,
                             smoothing_beta=p.smoothing_beta, track_max_missed=p.track_max_missed,
                             side_hysteresis=p.side_hysteresis, nms_iou=p.nms_iou,
                             nms_keypoint_distance=p.nms_keypoint_distance, mirrored=p.mirrored,
                             static_image_mode=False)
        cfg.validate()
        self._render = None
        if p.publish_overlay:
            try:
                from hand_mesh_ros.core.render import render_overlay
            except ImportError as e:
                raise ValueError(f"parameter 'publish_overlay': true needs hand_mesh_ros.core.render ({e})") from None
            self._render = render_overlay
        self.pipe = HandMeshPipeline(cfg)

        self.stats = {"received": 0, "processed": 0, "dropped": 0, "skipped": 0, "errors": 0}
        #: frames skipped by reason (the node's; the pipeline counts skipped hands in pipe.skipped)
        self.skip_reasons: Dict[str, int] = collections.Counter()
        self._lock = threading.Lock()
        self._pending: Dict[str, Pending] = {}
        #: per camera: (stamp [ns], had CameraInfo) of the last processed frame
        self._last_stamp: Dict[str, tuple] = {}
        self._in_work: Dict[str, tuple] = {}  # the same, of the frames the worker is processing
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._throttle = ReasonThrottle(WARN_THROTTLE_S)

        self._mesh_pub = self.create_publisher(_hand_mesh_array_type(), "hands/mesh", 10)
        self._marker_pub = None
        if p.publish_markers:
            from visualization_msgs.msg import MarkerArray
            self._marker_pub = self.create_publisher(MarkerArray, "hands/markers", 10)
        self._overlay_pub = self.create_publisher(Image, "hands/overlay", 2) if p.publish_overlay else None
        self._tf = _TfPublisher(self)
        # None: not installed, or HAND_MESH_ROS_STANDINS=1 (ros.real_packages)
        self._message_filters = real_packages.load("message_filters")
        self.sync_via = "message_filters" if self._message_filters is not None else "StampPairSynchronizer"

        # topics as resolved on the graph (remapped, with the transport's suffix)
        self.cameras = [self._resolved(c) for c in camera_topics(p)]
        self._topic = {c.key: c.image for c in self.cameras}
        self._info_watch = {c.key: CameraInfoWatch(p.camera_info_timeout) for c in self.cameras}
        self._depth = {c.key: StampBuffer(SYNC_QUEUE_SIZE, p.sync_slop) for c in self.cameras if c.depth}
        self.diag = NodeDiagnostics(self.cameras, DIAGNOSTICS_WINDOW_S, STALE_AFTER_S, p.use_depth)
        # first-call costs (MediaPipe's graph per camera: ~0.45 s) paid now, not on the first frame
        warm_s = self.pipe.warm_up([c.key for c in self.cameras])
        self._subs = []  # keep subscriptions / synchronizers alive
        for cam in self.cameras:
            self._subscribe_camera(cam)
        self._diag_pub = DiagnosticsPublisher(
            self, [f"camera {c.image}" for c in self.cameras] + ["pipeline"], self._reports,
            str(self.pipe.device), DIAGNOSTICS_PERIOD_S)

        self._worker = threading.Thread(target=self._work, name="hand_mesh_worker", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"ready: hand model '{self.pipe.hand_model.name}', detector '{self.pipe.detector_name}', regressor "
            f"'{p.regressor}', device {self.pipe.device}, cameras {[c.image for c in self.cameras]} "
            f"({p.image_transport}; warmed up in {warm_s:.2f} s), sync via {self.sync_via}, tf via "
            f"{self._tf.via}, /diagnostics via {self._diag_pub.via}")

    def _resolved(self, cam: CameraTopics) -> CameraTopics:
        """``cam`` with each topic remapped and fully qualified, plus the transport suffix
        (image_transport resolves the base name first: a remapping of ``image`` also moves
        ``image/compressed``)."""
        t = self.params.image_transport

        def res(name: str, depth: bool = False) -> str:
            return transport_topic(self.resolve_topic_name(name), t, depth) if name else ""

        info = self.resolve_topic_name(cam.camera_info) if cam.camera_info else ""
        return CameraTopics(cam.key, res(cam.image), info, res(cam.depth, depth=True))

    # -- subscriptions: callbacks only store the latest frame -------------------------------
    def _subscribe_camera(self, cam: CameraTopics) -> None:
        key = cam.key
        qos = RELIABLE_INPUT_QOS if self.params.input_reliability == "reliable" else SENSOR_QOS
        image_type = CompressedImage if self.params.image_transport == "compressed" else Image
        if cam.depth:
            self._subs.append(self.create_subscription(image_type, cam.depth, self._depth[key].add, qos))
        if not cam.camera_info:
            self.diag.set_camera_info(key, diagnostics.CAMERA_INFO_UNUSED)
            self._subs.append(self.create_subscription(
                image_type, cam.image, lambda img, k=key: self._on_image(k, img, paired=False), qos))
            return

        def on_pair(img, info, k=key):
            self._on_pair(k, img, info)
        message_filters = self._message_filters
        if message_filters is not None:
            subs = [message_filters.Subscriber(self, image_type, cam.image, qos_profile=qos),
                    message_filters.Subscriber(self, CameraInfo, cam.camera_info, qos_profile=qos)]
            sync = message_filters.ApproximateTimeSynchronizer(subs, SYNC_QUEUE_SIZE, self.params.sync_slop)
            sync.registerCallback(on_pair)
            # after the synchronizer's own callback: a pair it completes counts first
            subs[0].registerCallback(lambda img, k=key: self._on_image(k, img))
            self._subs.extend(subs + [sync])
        else:
            sync = StampPairSynchronizer(2, SYNC_QUEUE_SIZE, self.params.sync_slop)
            sync.register_callback(on_pair)

            def on_image(img, k=key):
                sync.add(0, img)  # a pair it completes counts first
                self._on_image(k, img)
            self._subs.append(self.create_subscription(image_type, cam.image, on_image, qos))
            self._subs.append(self.create_subscription(CameraInfo, cam.camera_info, sync.input_callback(1), qos))
            self._subs.append(sync)

    def _on_image(self, camera: str, image, paired: bool = True) -> None:
        """Every image that arrives. Without CameraInfo pairing (``paired`` False, or the
        CameraInfo watch says it is missing) the image is stored alone."""
        self.diag.received(camera)
        if not paired:
            self._store(camera, image, None)
            return
        watch = self._info_watch[camera]
        if watch.image(time.monotonic()) == "missing":
            cam = next(c for c in self.cameras if c.key == camera)
            then = ("frames are skipped (require_camera_info)" if self.params.require_camera_info else
                    "frames are processed with assumed intrinsics (60 deg horizontal FOV, TRANSLATION_ASSUMED)")
            self.get_logger().warning(
                f"images arrive on '{cam.image}' but no CameraInfo on '{cam.camera_info}' within "
                f"sync_slop={self.params.sync_slop} s of them for {watch.timeout_s} s (check the camera_info "
                f"remapping and the driver); {then} until it arrives")
            self.diag.set_camera_info(camera, diagnostics.CAMERA_INFO_REQUIRED if self.params.require_camera_info
                                      else diagnostics.CAMERA_INFO_ASSUMED)
        if watch.missing:
            self._store(camera, image, None)

    def _on_pair(self, camera: str, image, info: CameraInfo) -> None:
        if self._info_watch[camera].paired(time.monotonic()) == "started":
            self.get_logger().info(f"CameraInfo of '{self._topic[camera]}' arrives: using its intrinsics again")
        self.diag.set_camera_info(camera, diagnostics.CAMERA_INFO_OK)
        alone = (stamp_ns(image), False)
        with self._lock:
            if alone in (self._last_stamp.get(camera), self._in_work.get(camera)):
                return  # taken alone just before its CameraInfo came: not a re-sent frame
        self._store(camera, image, info)

    def _store(self, camera: str, image, info: Optional[CameraInfo]) -> None:
        with self._lock:
            old = self._pending.get(camera)
            same = old is not None and stamp_ns(old.image) == stamp_ns(image)  # now with its CameraInfo
            if not same:
                self.stats["received"] += 1
                if old is not None:
                    self.stats["dropped"] += 1
                    self.diag.dropped(camera)
            self._pending[camera] = Pending(image, info, old.received if same else time.monotonic())
        self._wake.set()

    # -- worker thread -----------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stop.is_set():
            if not self._wake.wait(timeout=0.1):
                continue
            with self._lock:
                self._wake.clear()
                pending, self._pending = self._pending, {}
                self._in_work = {k: (stamp_ns(v.image), v.info is not None) for k, v in pending.items()}
            if not pending:
                continue
            try:
                self._process(pending)
            except Exception:  # keep the node alive; the traceback says what broke
                if not self.context.ok():  # Ctrl-C shut rclpy down under this batch: stopping
                    return
                self.stats["errors"] += 1
                self.diag.error()
                self.get_logger().error("processing failed:\n" + traceback.format_exc(),
                                        throttle_duration_sec=WARN_THROTTLE_S)

    def _skip(self, camera: str, reason: str, text: str) -> None:
        """Count a skipped frame and warn, throttled per (camera, reason)."""
        self.stats["skipped"] += 1
        self.skip_reasons[reason] += 1
        self.diag.skipped(camera, reason)
        held = self._throttle((camera, reason))
        if held is not None:
            self.get_logger().warning(with_held_count(
                f"skipping a frame of '{self._topic[camera]}' ({reason}): {text}", held))

    def _prepare(self, camera: str, image, info: Optional[CameraInfo]):
        """(rgb, intrinsics or None); ValueError on bad input."""
        rgb = to_rgb(image)
        if info is None:
            return rgb, None
        # K, D, distortion_model (P, no distortion for rectified images); None if uncalibrated
        intr = intrinsics_from_camera_info(info, rectified=self.params.image_rectified)
        # the decoded size: a CompressedImage has no width / height fields
        if intr is not None and (intr.width, intr.height) != (rgb.shape[1], rgb.shape[0]):
            raise ValueError(f"image is {rgb.shape[1]}x{rgb.shape[0]} but its CameraInfo says "
                             f"{intr.width}x{intr.height}")
        return rgb, intr

    def _depth_for(self, camera: str, stamp: int) -> Optional[np.ndarray]:
        """The depth [m] paired with the frame of ``stamp`` [ns], or None (counted)."""
        msg = self._depth[camera].take(stamp, timeout=self.params.depth_wait)
        if msg is None:
            self.diag.depth(camera, "unsynchronized")
            return None
        try:
            depth = to_depth_metres(msg)
        except ImageDecodeError as e:
            self.diag.depth(camera, "undecodable")
            held = self._throttle((camera, "depth_" + e.reason))
            if held is not None:
                self.get_logger().warning(with_held_count(
                    f"depth of '{self._topic[camera]}' not used ({e.reason}): {e}; processing without depth", held))
            return None
        self.diag.depth(camera, "paired")
        return depth

    def _process(self, pending: Dict[str, Pending]) -> None:
        batch, frames = [], []
        for camera, item in pending.items():
            image, info, received = Pending(*item)
            stamp = stamp_ns(image)
            if self._last_stamp.get(camera, (None,))[0] == stamp:
                self._skip(camera, "duplicate_stamp", f"stamp {stamp * 1e-9:.9f} s was processed already")
                continue
            if info is None and self.params.require_camera_info and self.params.use_camera_info:
                self._skip(camera, "no_camera_info", "no CameraInfo and require_camera_info is true")
                continue
            t0 = time.perf_counter()
            try:
                rgb, intr = self._prepare(camera, image, info)
            except ImageDecodeError as e:
                self._skip(camera, e.reason, str(e))
                continue
            except ValueError as e:
                self._skip(camera, "bad_camera_info", str(e))
                continue
            depth = self._depth_for(camera, stamp) if camera in self._depth else None
            batch.append(FrameInput(rgb, intr, camera, stamp * 1e-9, depth))
            frames.append((image.header, stamp, received, (time.perf_counter() - t0) * 1e3))
        if not batch:
            return
        self.diag.batch(len(batch))
        results = self.pipe.process_batch(batch)
        for item, (header, stamp, received, decode_ms), res in zip(batch, frames, results):
            t0 = time.perf_counter()
            self._publish(item.image, header, res)
            self.stats["processed"] += 1
            self._last_stamp[item.camera] = (stamp, item.intrinsics is not None)
            now = time.monotonic()
            self.diag.processed(item.camera, dict(res.timings_ms, decode=decode_ms,
                                                  publish=(time.perf_counter() - t0) * 1e3,
                                                  total=(now - received) * 1e3 if received else 0.0))

    def _publish(self, rgb, header, res) -> None:
        p, model = self.params, self.pipe.hand_model
        hands = res.hands
        self._mesh_pub.publish(messages.hand_mesh_array(
            hands, header, model.faces_for if p.publish_faces else None))
        # Markers (~15 ms per hand to build and serialize the mesh) and the overlay are only
        # made while someone subscribes, e.g. RViz.
        if self._marker_pub is not None and self._marker_pub.get_subscription_count() > 0:
            self._marker_pub.publish(messages.marker_array(hands, header, model.faces_for))
        self._tf.send(messages.joint_transforms(hands, header, p.tf_prefix))
        if self._overlay_pub is not None and self._overlay_pub.get_subscription_count() > 0:
            over = self._render(rgb, hands, res.intrinsics, model.faces_for)
            self._overlay_pub.publish(rgb_to_image(over, header))

    def _reports(self) -> List[diagnostics.Report]:
        p = self.params
        fixed = [("device", str(self.pipe.device)), ("detector", p.detector), ("regressor", p.regressor),
                 ("hand model", self.pipe.hand_model.name), ("mano model dir", p.mano_model_dir or "-"),
                 ("checkpoint", p.checkpoint or "-"), ("image transport", p.image_transport),
                 ("frames processed total", str(self.stats["processed"])),
                 ("detector re-detections total", str(self.pipe.redetections))]
        return self.diag.reports(fixed, dict(self.pipe.skipped))

    def destroy_node(self):
        """Stop and join the worker thread, release the pipeline, then destroy the node."""
        self._stop_worker()
        pipe = getattr(self, "pipe", None)
        if pipe is not None:
            pipe.close()
        return super().destroy_node()

    def _stop_worker(self, timeout: float = 10.0) -> None:
        stop = getattr(self, "_stop", None)
        if stop is None:
            return
        stop.set()
        self._wake.set()
        worker = getattr(self, "_worker", None)
        if worker is not None and worker.is_alive() and worker is not threading.current_thread():
            worker.join(timeout)


def _hand_mesh_array_type():
    from hand_mesh_msgs.msg import HandMeshArray
    return HandMeshArray


def main(args=None) -> int:
    """Console script ``hand_mesh_node``: init, spin until Ctrl-C / shutdown, clean up.
    Returns 2 on a start-up error (bad parameter, missing model file), logged as FATAL."""
    dds = dds_profile.apply()  # before the first participant (markers and overlays are large)
    rclpy.init(args=args)
    logger = rclpy.logging.get_logger(NODE_NAME)
    logger.info(dds)
    try:
        node = HandMeshNode()
    except (ValueError, FileNotFoundError, ImportError) as e:
        logger.fatal(f"start-up failed: {e}")
        rclpy.try_shutdown()
        return 2
    except KeyboardInterrupt:  # Ctrl-C while the models load
        logger.info("interrupted during start-up")
        rclpy.try_shutdown()
        return 0
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        # Ctrl-C in a terminal reaches `ros2 launch` too, which sends one more SIGINT: it must
        # not interrupt the clean-up (a KeyboardInterrupt traceback, exit code -2)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        s = dict(node.stats, skipped_by_reason=dict(node.skip_reasons), hands_skipped=dict(node.pipe.skipped))
        node.destroy_node()
        logger.info(f"stopped: {s}")
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
