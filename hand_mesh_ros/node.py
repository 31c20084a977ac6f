"""``hand_mesh_node``: the ROS 2 adapter around ``core.pipeline.HandMeshPipeline``.

Subscribes (per camera, sensor-data QoS, depth 1; ``input_reliability: reliable`` for a
reliable depth-1 queue):
    ``image`` (sensor_msgs/Image; rgb8, bgr8, mono8, rgba8, bgra8, ... see
    ``ros.image_conversion``) and ``camera_info`` (sensor_msgs/CameraInfo), paired by stamp
    (``message_filters.ApproximateTimeSynchronizer`` where installed, else
    ``ros.sync.StampPairSynchronizer``, same semantics; ``sync_slop`` seconds).
    With ``image_topics: [T1, T2, ...]`` each ``T`` is a camera whose info is on
    ``<namespace of T>/camera_info`` (``/cam0/color/image_raw`` -> ``/cam0/color/camera_info``).
    With ``use_camera_info: false`` only images are subscribed and the intrinsics are
    assumed (60 deg horizontal FOV; ``translation_source = TRANSLATION_ASSUMED``).

Publishes, all stamped with the source image's stamp in its optical frame:
    ``hands/mesh`` (hand_mesh_msgs/HandMeshArray, one per processed image, empty when no
    hand), ``hands/markers`` (visualization_msgs/MarkerArray, if ``publish_markers``),
    ``/tf`` (21 joint frames per hand, names in ``ros.messages``; via
    ``tf2_ros.TransformBroadcaster`` where installed, else a tf2_msgs/TFMessage publisher
    with the broadcaster's QoS: reliable, volatile, depth 100),
    ``hands/overlay`` (sensor_msgs/Image rgb8, if ``publish_overlay``). Markers and overlay
    are built only while they have a subscriber (they cost more than the regression).

Threading: subscription callbacks only store the latest (image, info) pair per camera; a
worker thread takes the pending frame of every camera, runs ``pipe.process_batch`` on them
and publishes. A frame replaced before the worker took it is counted as dropped
(``stats['dropped']``): processing never falls behind on old frames.

Bad input (unsupported encoding, empty image, image size != CameraInfo size, NaN / zero
intrinsics) logs a throttled warning, is counted in ``stats['skipped']`` and the node goes on.

Composable: ``HandMeshNode(**node_kwargs)`` never calls ``rclpy.init``/``spin``/``shutdown``;
``main()`` is the console-script wrapper (``hand_mesh_node`` / ``python -m hand_mesh_ros.node``).
"""
from __future__ import annotations

import posixpath
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import rclpy
import rclpy.executors
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                ParameterType)
from rclpy.exceptions import (InvalidParameterTypeException, InvalidParameterValueException,
                              ParameterUninitializedException)
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy)
from sensor_msgs.msg import CameraInfo, Image

from hand_mesh_ros.core.detectors import DETECTOR_MODELS, DETECTORS
from hand_mesh_ros.core.pipeline import DEVICES, PRECISIONS, HandMeshPipeline, PipelineConfig
from hand_mesh_ros.core.tracking import SMOOTHING
from hand_mesh_ros.core.types import CameraIntrinsics
from hand_mesh_ros.ros import messages
from hand_mesh_ros.ros.image_conversion import image_to_rgb, rgb_to_image
from hand_mesh_ros.ros.sync import StampPairSynchronizer

try:  # a real ROS 2 install
    import message_filters  # noqa: F401
    HAVE_MESSAGE_FILTERS = True
except ImportError:
    HAVE_MESSAGE_FILTERS = False

try:
    from tf2_ros import TransformBroadcaster
    HAVE_TF2_ROS = True
except ImportError:
    TransformBroadcaster = None
    HAVE_TF2_ROS = False

NODE_NAME = "hand_mesh_node"

INPUT_RELIABILITY = ("best_effort", "reliable")
#: messages kept per input by the (image, camera_info) synchronizer.
SYNC_QUEUE_SIZE = 10
WARN_THROTTLE_S = 5.0

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
    "image_topics": (Parameter.Type.STRING_ARRAY,
                     _desc("image topics, one per camera; empty = one camera on 'image' + 'camera_info'", _SA,
                           "camera info of topic T on <namespace of T>/camera_info")),
    "mirrored": (False, _desc("images are mirrored (selfie view): swap left/right", _B)),
    "use_camera_info": (True, _desc("use CameraInfo intrinsics; false = assumed 60 deg HFOV", _B)),
    "input_reliability": ("best_effort", _desc(
        "QoS reliability of the image / camera_info subscriptions (depth 1, keep last)", _S,
        "one of best_effort (sensor-data QoS, matches every publisher), reliable (only reliable "
        "publishers; no lost fragments of large images)")),
    "sync_slop": (0.05, _desc("largest image / camera_info stamp difference paired [s]", _D, "> 0",
                              floating_point_range=[FloatingPointRange(from_value=1e-6, to_value=10.0)])),
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
    image_topics: List[str]
    mirrored: bool
    use_camera_info: bool
    input_reliability: str
    sync_slop: float


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
    check(p.input_reliability in INPUT_RELIABILITY, "input_reliability", "one of " + ", ".join(INPUT_RELIABILITY))
    check(p.sync_slop > 0.0, "sync_slop", "> 0 s")
    check(len(set(p.image_topics)) == len(p.image_topics), "image_topics", "distinct topic names")
    return p


def camera_topics(params: NodeParams) -> List[Tuple[str, str]]:
    """(image topic, camera_info topic) per camera, as subscribed (before remapping)."""
    if not params.image_topics:
        return [("image", "camera_info")]
    return [(t, posixpath.join(posixpath.dirname(t), "camera_info")) for t in params.image_topics]


class _TfPublisher:
    """``/tf`` sender: tf2_ros.TransformBroadcaster when installed, else a TFMessage publisher."""

    def __init__(self, node: Node):
        if HAVE_TF2_ROS:
            self._br = TransformBroadcaster(node)
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
                             smoothing=p.smoothing, mirrored=p.mirrored, static_image_mode=False)
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
        self._lock = threading.Lock()
        self._pending: Dict[str, Tuple[Image, Optional[CameraInfo]]] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()

        self._mesh_pub = self.create_publisher(_hand_mesh_array_type(), "hands/mesh", 10)
        self._marker_pub = None
        if p.publish_markers:
            from visualization_msgs.msg import MarkerArray
            self._marker_pub = self.create_publisher(MarkerArray, "hands/markers", 10)
        self._overlay_pub = self.create_publisher(Image, "hands/overlay", 2) if p.publish_overlay else None
        self._tf = _TfPublisher(self)

        self._subs = []  # keep subscriptions / synchronizers alive
        for image_topic, info_topic in camera_topics(p):
            self._subscribe_camera(image_topic, info_topic)

        self._worker = threading.Thread(target=self._work, name="hand_mesh_worker", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"ready: hand model '{self.pipe.hand_model.name}', detector '{self.pipe.detector_name}', regressor "
            f"'{p.regressor}', cameras {[t for t, _ in camera_topics(p)]}, sync via "
            f"{'message_filters' if HAVE_MESSAGE_FILTERS else 'StampPairSynchronizer'}, tf via "
            f"{'tf2_ros' if HAVE_TF2_ROS else 'TFMessage publisher'}")

    # -- subscriptions: callbacks only store the latest frame -------------------------------
    def _subscribe_camera(self, image_topic: str, info_topic: str) -> None:
        key = image_topic
        qos = RELIABLE_INPUT_QOS if self.params.input_reliability == "reliable" else SENSOR_QOS
        if not self.params.use_camera_info:
            self._subs.append(self.create_subscription(
                Image, image_topic, lambda img, k=key: self._store(k, img, None), qos))
            return
        cb = lambda img, info, k=key: self._store(k, img, info)  # noqa: E731
        if HAVE_MESSAGE_FILTERS:
            import message_filters
            subs = [message_filters.Subscriber(self, Image, image_topic, qos_profile=qos),
                    message_filters.Subscriber(self, CameraInfo, info_topic, qos_profile=qos)]
            sync = message_filters.ApproximateTimeSynchronizer(subs, SYNC_QUEUE_SIZE, self.params.sync_slop)
            sync.registerCallback(cb)
            self._subs.extend(subs + [sync])
        else:
            sync = StampPairSynchronizer(2, SYNC_QUEUE_SIZE, self.params.sync_slop)
            sync.register_callback(cb)
            self._subs.append(self.create_subscription(Image, image_topic, sync.input_callback(0), qos))
            self._subs.append(self.create_subscription(CameraInfo, info_topic, sync.input_callback(1), qos))
            self._subs.append(sync)

    def _store(self, camera: str, image: Image, info: Optional[CameraInfo]) -> None:
        with self._lock:
            self.stats["received"] += 1
            if camera in self._pending:
                self.stats["dropped"] += 1
            self._pending[camera] = (image, info)
        self._wake.set()
        self.get_logger().debug(f"frame {image.header.stamp.sec}.{image.header.stamp.nanosec:09d} of '{camera}' stored")

    # -- worker thread -----------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stop.is_set():
            if not self._wake.wait(timeout=0.1):
                continue
            with self._lock:
                self._wake.clear()
                pending, self._pending = self._pending, {}
            if not pending:
                continue
            try:
                self._process(pending)
            except Exception:  # keep the node alive; the traceback says what broke
                self.stats["errors"] += 1
                self.get_logger().error("processing failed:\n" + traceback.format_exc(),
                                        throttle_duration_sec=WARN_THROTTLE_S)

    def _prepare(self, camera: str, image: Image, info: Optional[CameraInfo]):
        """(rgb, intrinsics or None); ValueError on bad input."""
        rgb = image_to_rgb(image)
        if info is None:
            return rgb, None
        if (info.width, info.height) != (image.width, image.height):
            raise ValueError(f"image is {image.width}x{image.height} but its CameraInfo says "
                             f"{info.width}x{info.height}")
        k = info.k
        intr = CameraIntrinsics(fx=float(k[0]), fy=float(k[4]), cx=float(k[2]), cy=float(k[5]),
                                width=int(info.width), height=int(info.height))
        intr.validate()
        return rgb, intr

    def _process(self, pending: Dict[str, Tuple[Image, Optional[CameraInfo]]]) -> None:
        batch, headers = [], []
        for camera, (image, info) in pending.items():
            try:
                rgb, intr = self._prepare(camera, image, info)
            except ValueError as e:
                self.stats["skipped"] += 1
                self.get_logger().warning(f"skipping a frame of '{camera}': {e}",
                                          throttle_duration_sec=WARN_THROTTLE_S)
                continue
            stamp = image.header.stamp.sec + 1e-9 * image.header.stamp.nanosec
            batch.append((rgb, intr, camera, stamp))
            headers.append(image.header)
        if not batch:
            return
        t0 = time.perf_counter()
        results = self.pipe.process_batch(batch)
        self.get_logger().debug(f"processed {len(batch)} frame(s) in {(time.perf_counter() - t0) * 1e3:.1f} ms")
        for (rgb, *_), header, res in zip(batch, headers, results):
            self._publish(rgb, header, res)
            self.stats["processed"] += 1

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
    rclpy.init(args=args)
    logger = rclpy.logging.get_logger(NODE_NAME)
    try:
        node = HandMeshNode()
    except (ValueError, FileNotFoundError, ImportError) as e:
        logger.fatal(f"start-up failed: {e}")
        rclpy.try_shutdown()
        return 2
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        s = dict(node.stats)
        node.destroy_node()
        logger.info(f"stopped: {s}")
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
