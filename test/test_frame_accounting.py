"""Every frame the node receives is accounted for: processed, dropped (latest frame wins) or
skipped with a reason, and ``/diagnostics`` says the same as the node's counters.

What a black-box probe found, each checked here:

* frames whose CameraInfo never pairs (CameraInfo on every other image; the frames before
  ``camera_info_timeout`` when CameraInfo starts late) vanished: not processed, not counted;
* after a pause in a stream, the first image arriving before its CameraInfo was processed with
  assumed intrinsics and a false "no CameraInfo" warning;
* "using its intrinsics again" was logged on the first CameraInfo;
* ``/diagnostics`` said ``detector: auto`` instead of the detector that runs;

and what a review of the code found: a CameraInfo later than the give-up brought back a frame
already counted as skipped; a re-sent image with the stamp of a waiting one replaced it
uncounted; a fault while decoding a frame ended the worker with the batch uncounted.

ROS-free parts (``CameraInfoWatch``, ``AwaitingCameraInfo``, ``LatestFrames``) are tested with
explicit times; the node with its real subscriptions in one process (reliable depth-1 inputs,
test publishers waiting for each image to be received before the next).
"""
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from hand_mesh_ros.ros.camera_inputs import AwaitingCameraInfo, CameraInfoWatch, Frame, LatestFrames  # noqa: E402
from hand_mesh_ros.ros.camera_publisher import camera_info_msg  # noqa: E402
from test_node import _img_msg, _ns, _wait  # noqa: E402
from test_node_robot import Recorded, RecordingLogger, _status, _values  # noqa: E402


# ------------------------------------------------------------------ ROS-free parts
def test_camera_info_watch_counts_time_again_after_a_pause():
    w = CameraInfoWatch(1.0)
    assert w.image(0.0) is None and w.paired(0.01) is None  # a normal pair: nothing to say
    assert w.image(0.1) is None  # its CameraInfo is lost, then the stream pauses
    assert w.image(10.0) is None and not w.missing  # first image after the pause: not "missing"
    assert w.paired(10.01) is None
    # images for 1 s with no pair at all: missing, once
    assert [w.image(20.0 + 0.25 * k) for k in range(5)] == [None, None, None, None, "missing"]
    assert w.missing and w.image(21.5) is None
    assert w.paired(21.6) == "started"


def test_camera_info_watch_first_pair_after_a_missing_start_is_not_again():
    w = CameraInfoWatch(0.5)
    assert [w.image(t) for t in (0.0, 0.3, 0.55)] == [None, None, "missing"]
    assert w.paired(0.7) == "first"
    assert [w.image(t) for t in (0.8, 1.1, 1.31)] == [None, None, "missing"]
    assert w.paired(1.4) == "started"


def test_awaiting_camera_info_resolves_each_image_once():
    a = AwaitingCameraInfo(give_up_s=1.0)
    assert a.arrived(10, 0.0) and a.arrived(20, 0.1) and a.arrived(30, 0.2)
    a.resolve(30)
    assert a.overtaken(30) == [10, 20] and len(a) == 0
    a.resolve(40)  # the pair came out before its image callback
    assert not a.arrived(40, 0.3) and len(a) == 0
    assert a.arrived(50, 0.4) and a.expired(1.3) == [] and a.expired(1.5) == [50]


def test_awaiting_camera_info_refuses_a_pair_for_an_image_given_up():
    a = AwaitingCameraInfo(give_up_s=1.0)
    assert a.arrived(10, 0.0) and a.arrived(20, 0.5)
    assert a.expired(1.2) == [10]
    assert not a.resolve(10)  # its CameraInfo comes after all: the image was counted as skipped
    assert a.overtaken(30) == [20] and not a.resolve(20)
    assert a.arrived(30, 1.3) and a.resolve(30) and len(a) == 0
    assert a.resolve(40) and not a.arrived(40, 1.4)  # paired before its image callback: still fine
    assert a.arrived(50, 1.5) and len(a) == 1
    a.went_alone(50)  # CameraInfo missing on the camera: the image went on without it
    assert len(a) == 0 and not a.resolve(50)  # its CameraInfo comes after all: it went on already


def test_latest_frames_counts_a_re_sent_image_with_the_same_stamp_as_dropped():
    dropped = []
    slot = LatestFrames(on_drop=dropped.append)
    first, again = (_img_msg(np.zeros((4, 4, 3), np.uint8), 1e9) for _ in range(2))
    slot.put("cam", Frame(first, None, 1.0))
    slot.put("cam", Frame(again, None, 2.0))  # another message, same stamp: latest wins
    assert dropped == ["cam"] and slot.take(0.0)["cam"].image is again


def test_latest_frames_counts_replaced_frames_as_dropped():
    dropped = []
    slot = LatestFrames(on_drop=dropped.append)
    msgs = [_img_msg(np.zeros((4, 4, 3), np.uint8), (k + 1) * 1e9) for k in range(3)]
    slot.put("cam", Frame(msgs[0], None, 1.0))
    slot.put("cam", Frame(msgs[0], "info", 2.0))  # the same image, now with its CameraInfo
    assert dropped == []
    slot.put("cam", Frame(msgs[1], None, 3.0))
    slot.put("cam", Frame(msgs[2], None, 4.0))
    assert dropped == ["cam", "cam"]
    taken = slot.take(0.0)
    assert taken["cam"].image is msgs[2] and slot.take(0.0) == {}


def test_latest_frames_keeps_the_arrival_time_of_an_image_paired_late():
    slot = LatestFrames(on_drop=lambda c: None)
    msg = _img_msg(np.zeros((4, 4, 3), np.uint8), 1e9)
    slot.put("cam", Frame(msg, None, 1.0))
    slot.put("cam", Frame(msg, "info", 2.0))
    assert slot.take(0.0)["cam"] == Frame(msg, "info", 1.0)


# ------------------------------------------------------------------ the node
class Graph(Recorded):
    """The node with reliable inputs and test publishers; pipeline inputs and /diagnostics recorded."""

    def __init__(self, overrides):
        super().__init__([Parameter("input_reliability", value="reliable")] + overrides)
        self.images = self.test.create_publisher(Image, "/image", QoSProfile(depth=10))
        self.infos = self.test.create_publisher(CameraInfo, "/camera_info", QoSProfile(depth=10))
        _wait(lambda: self.images.get_subscription_count() >= 1 and self.infos.get_subscription_count() >= 1, 10,
              "the node's subscriptions")

    def send(self, rgb, stamp_ns, info: bool):
        """Publish an image (and its CameraInfo); wait until the node received the image."""
        before = self.node.stats["received"]
        img = _img_msg(rgb, stamp_ns)
        self.images.publish(img)
        if info:
            self.infos.publish(camera_info_msg(rgb.shape[1], rgb.shape[0], img.header, fx=600.0, fy=600.0))
        _wait(lambda: self.node.stats["received"] == before + 1, 10, f"the node to receive image {stamp_ns}")
        return img

    def settled(self, received, timeout=20):
        """Wait until ``received`` images arrived and none is in flight; the totals."""
        _wait(lambda: self.node.stats["received"] == received and self.node.stats["in_flight"] == 0, timeout,
              f"all {received} frames accounted for (now {self.node.stats})")
        return self.node.stats

    def diagnosed(self, stats, timeout=10):
        """The camera's /diagnostics values once they show ``stats``' totals."""
        want = {"received total": stats["received"], "processed total": stats["processed"],
                "dropped total": stats["dropped"], "skipped total": stats["skipped"], "in flight": 0}

        def match():
            return any({k: int(_values(_status(a, "camera /image")).get(k, -1)) for k in want} == want
                       for a in list(self.diagnostics))
        _wait(match, timeout, f"/diagnostics to show {want}")
        return next(_status(a, "camera /image") for a in reversed(self.diagnostics)
                    if {k: int(_values(_status(a, "camera /image")).get(k, -1)) for k in want} == want)


@pytest.fixture
def small_rgb():
    return np.random.default_rng(3).integers(0, 256, (120, 160, 3), dtype=np.uint8)


def test_camera_info_on_every_other_image_every_frame_accounted(small_rgb):
    g = Graph([Parameter("camera_info_timeout", value=1.0)])
    try:
        t0 = time.time_ns()
        sent = [g.send(small_rgb, t0 + k * 50_000_000, info=k % 2 == 0) for k in range(20)]
        s = g.settled(20)  # the last image (no CameraInfo) gives up after camera_info_timeout
        assert s["skipped_by_reason"] == {"no_camera_info": 10}
        assert s["processed"] + s["dropped"] == 10 and s["processed"] >= 1
        # the pipeline's stamps are float seconds (~0.24 us apart at today's epoch): the sent
        # image each comes from is the nearest one; only images sent with CameraInfo get there
        stamps = np.array([_ns(m.header.stamp) for m in sent])
        nearest = [int(np.argmin(np.abs(stamps - i.stamp * 1e9))) for i in g.items]
        assert nearest and all(k % 2 == 0 for k in nearest), nearest
        assert all(i.intrinsics is not None and not i.intrinsics.assumed for i in g.items)
        status = g.diagnosed(s)
        assert status.level == b"\x01" and "no_camera_info" in status.message
        assert g.node.summary()["received"] == 20  # the shutdown line reads the same counters
    finally:
        g.close()


def test_frames_before_a_late_camera_info_are_skipped_not_lost(small_rgb):
    g = Graph([Parameter("camera_info_timeout", value=0.5)])
    log = RecordingLogger(g.node.get_logger())
    g.node.get_logger = lambda: log
    try:
        t0, k = time.time_ns(), 0
        while not _watch(g).missing:
            g.send(small_rgb, t0 + k * 100_000_000, info=False)  # a 10 Hz camera without CameraInfo
            k += 1
            time.sleep(0.1)
        early = k - 1  # the images before the one that found CameraInfo missing
        for j in range(3):  # CameraInfo starts
            g.send(small_rgb, t0 + (k + j) * 100_000_000, info=True)
        s = g.settled(k + 3)
        assert s["skipped_by_reason"].get("no_camera_info", 0) >= early >= 1
        assert s["processed"] + s["dropped"] + s["skipped"] == k + 3
        sources = [i.intrinsics is None for i in g.items]
        assert sources[0] and not sources[-1]  # assumed while missing, then CameraInfo's
        assert sum("no CameraInfo on" in w for w in log.warnings) == 1
        assert any("using its intrinsics" in t and "again" not in t for t in log.infos)
        g.diagnosed(s)
    finally:
        g.close()


def _watch(g):
    return g.node.streams["image"]._watch


def test_after_a_pause_an_image_before_its_camera_info_uses_the_intrinsics(small_rgb):
    """The callbacks driven directly, in the order the synchronizer gives them."""
    g = Graph([Parameter("camera_info_timeout", value=0.4)])
    log = RecordingLogger(g.node.get_logger())
    g.node.get_logger = lambda: log
    stream = g.node.streams["image"]
    h, w = small_rgb.shape[:2]
    try:
        t0 = time.time_ns()
        a, b, c = (_img_msg(small_rgb, t0 + k * 100_000_000) for k in range(3))
        stream.on_pair(a, camera_info_msg(w, h, a.header))
        stream.on_image(a)
        stream.on_image(b)  # its CameraInfo is lost; then the stream pauses
        _wait(lambda: g.node.stats["processed"] == 1, 20, "the first frame processed")
        time.sleep(0.6)  # the pause itself (longer than camera_info_timeout)
        stream.on_image(c)  # after the pause: the image comes before its CameraInfo
        stream.on_pair(c, camera_info_msg(w, h, c.header))
        s = g.settled(3)
        assert s["processed"] == 2 and s["skipped_by_reason"] == {"no_camera_info": 1}  # b
        last = next(i for i in g.items if abs(i.stamp * 1e9 - _ns(c.header.stamp)) < 1e3)
        assert last.intrinsics is not None and not last.intrinsics.assumed
        assert not [x for x in log.warnings if "no CameraInfo on" in x]
    finally:
        g.close()


def test_a_camera_info_after_the_give_up_does_not_bring_the_frame_back(small_rgb):
    """The callbacks driven directly: an image given up (camera_info_timeout) whose pair the
    synchronizer still emits later stays skipped, counted once."""
    g = Graph([Parameter("camera_info_timeout", value=0.3)])
    stream = g.node.streams["image"]
    h, w = small_rgb.shape[:2]
    try:
        t0 = time.time_ns()
        a, b = (_img_msg(small_rgb, t0 + k * 100_000_000) for k in range(2))
        stream.on_pair(a, camera_info_msg(w, h, a.header))
        stream.on_image(a)
        stream.on_image(b)  # its CameraInfo is late
        _wait(lambda: g.node.stats["skipped"] == 1, 20, "b given up")  # by the diagnostics timer's sweep
        stream.on_pair(b, camera_info_msg(w, h, b.header))  # ... later than camera_info_timeout
        g.send(small_rgb, t0 + 200_000_000, info=True)  # the next frame: b, if it went on, is ahead of it
        s = g.settled(3)
        assert s["processed"] == 2 and s["skipped_by_reason"] == {"no_camera_info": 1} and s["dropped"] == 0
        assert len(g.items) == 2
        g.diagnosed(s)
    finally:
        g.close()


def test_a_fault_decoding_a_frame_is_counted_and_the_node_goes_on(small_rgb):
    g = Graph([])
    stream = g.node.streams["image"]
    decode, calls = stream.decode, []

    def faulty(frame):
        calls.append(frame)
        if len(calls) == 1:
            raise RuntimeError("a fault in decoding")
        return decode(frame)

    stream.decode = faulty
    try:
        t0 = time.time_ns()
        g.send(small_rgb, t0, info=True)
        _wait(lambda: g.node.stats["skipped"] == 1, 20, "the first frame counted")
        g.send(small_rgb, t0 + 100_000_000, info=True)
        s = g.settled(2)
        assert s["processed"] == 1 and s["skipped_by_reason"] == {"processing_error": 1}
        g.diagnosed(s)
    finally:
        g.close()


def test_diagnostics_name_the_detector_that_runs():
    g = Graph([])
    try:
        pipeline = next(r for r in g.node._reports() if r.name == "pipeline")
        values = dict(pipeline.values)
        assert values["detector parameter"] == "auto"
        assert values["detector"] == g.node.pipe.detector_name != "auto"
    finally:
        g.close()


def test_a_camera_info_for_an_image_that_went_alone_does_not_bring_it_back(small_rgb):
    """The callbacks driven directly: CameraInfo missing, images go on alone (assumed
    intrinsics); then the CameraInfo of one of them comes out of the synchronizer after a
    newer frame was processed. The old image is not processed a second time."""
    g = Graph([Parameter("camera_info_timeout", value=0.3)])
    stream = g.node.streams["image"]
    h, w = small_rgb.shape[:2]
    try:
        t0, k = time.time_ns(), 0
        while not _watch(g).missing:  # a 20 Hz camera without CameraInfo, until found missing
            stream.on_image(_img_msg(small_rgb, t0 + k * 50_000_000))
            k += 1
            time.sleep(0.05)
        a, b = (_img_msg(small_rgb, t0 + (k + j) * 50_000_000) for j in range(2))
        stream.on_image(a)  # goes on alone
        _wait(lambda: any(abs(i.stamp * 1e9 - _ns(a.header.stamp)) < 1e3 for i in g.items), 20, "a processed")
        stream.on_image(b)
        _wait(lambda: any(abs(i.stamp * 1e9 - _ns(b.header.stamp)) < 1e3 for i in g.items), 20, "b processed")
        stream.on_pair(a, camera_info_msg(w, h, a.header))  # a's CameraInfo, late
        c = g.send(small_rgb, t0 + (k + 2) * 50_000_000, info=True)  # a, if it went on, is ahead of c
        s = g.settled(k + 3)
        assert s["processed"] + s["dropped"] + s["skipped"] == k + 3
        stamps = [round(i.stamp * 1e9) for i in g.items]
        assert sum(abs(t - _ns(a.header.stamp)) < 1e3 for t in stamps) == 1, stamps
        assert abs(stamps[-1] - _ns(c.header.stamp)) < 1e3
        g.diagnosed(s)
    finally:
        g.close()
