"""hand_mesh_node on a robot: loud missing CameraInfo, per-reason throttled warnings,
same-stamp frames, compressed images, depth input, /diagnostics, use_sim_time.

In-process tests (node and test node in one executor) check what the pipeline receives and
the node's counters; two-process tests (``python -m hand_mesh_ros.node`` on a private
loopback domain) check what a user sees on the graph and in the log. Frames are real hand
images of ../shared/data/hands, compressed with OpenCV.
"""
import time

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from hand_mesh_ros import node as node_mod  # noqa: E402
from hand_mesh_ros.core.types import JOINT_NAMES, RIGHT, TRANSLATION_ASSUMED, TRANSLATION_INTRINSICS  # noqa: E402
from hand_mesh_ros.ros.camera_publisher import camera_info_msg  # noqa: E402
from hand_mesh_ros.ros.image_conversion import depth_to_compressed_depth, depth_to_image  # noqa: E402
from test_node import (FRAME, VIA, InProcess, _img_msg, _init, _ns, _publish_until, _run_camera,  # noqa: E402
                       _skipped_total, _snapshot, _wait, _wait_for_tf_of, ctx, node_process, via_of)


@pytest.fixture
def hand_rgb(hands_data):
    """A real right hand, 640x427 RGB."""
    bgr = cv2.imread(str(hands_data / "mediapipe_samples" / "hand_landmarker_test_image.jpg"))
    return np.ascontiguousarray(bgr[:, :, ::-1])


def _header(stamp_ns):
    h = Header(frame_id=FRAME)
    h.stamp.sec, h.stamp.nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return h


def _jpeg(rgb, stamp_ns, quality=90):
    """A CompressedImage as compressed_image_transport publishes it, encoded by OpenCV."""
    ok, buf = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    m = CompressedImage(header=_header(stamp_ns), format="rgb8; jpeg compressed bgr8")
    m.data = buf.tobytes()
    return m


def _depth_plane(shape, z=0.6):
    """A plane at ``z`` m with a hole (0 = no measurement), as a depth camera gives it."""
    d = np.full(shape, z, np.float64)
    d[:40, :60] = 0.0
    return d


class RecordingLogger:
    """Wraps the node's logger: records warning / info texts, forwards them."""

    def __init__(self, real):
        self.real, self.warnings, self.infos = real, [], []

    def warning(self, text, **kw):
        self.warnings.append(text)
        self.real.warning(text, **kw)

    def info(self, text, **kw):
        self.infos.append(text)
        self.real.info(text, **kw)

    def __getattr__(self, name):
        return getattr(self.real, name)


def _status(arr, suffix):
    """The status named ``*suffix`` in ``arr``; an empty one of no level when ``arr`` lacks it
    (diagnostic_updater's first arrays say "Node starting up" for the tasks added so far)."""
    from diagnostic_msgs.msg import DiagnosticStatus
    return next((s for s in arr.status if s.name.endswith(suffix)), DiagnosticStatus(level=b"\xff"))


def _values(status):
    return {kv.key: kv.value for kv in status.values}


# ------------------------------------------------------------------ in process
def test_warnings_throttled_per_reason_and_same_stamp_skipped(ctx, hand_rgb):
    _init(ctx)
    n = node_mod.HandMeshNode(context=ctx)
    try:
        n._stop_worker()
        log = RecordingLogger(n.get_logger())
        n.get_logger = lambda: log
        rgb = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
        good = _img_msg(rgb, 5e9)
        info = camera_info_msg(64, 48, good.header)
        empty = Image(height=0, width=0, encoding="rgb8", step=0, header=good.header)
        bad = [(_img_msg(rgb, 1e9, "yuv422"), info, "unsupported_encoding"),
               (good, camera_info_msg(64, 48, good.header, fx=float("nan")), "bad_camera_info"),
               (empty, info, "empty_image")]
        for img, inf, _ in bad:  # three kinds within well under the 5 s throttle period
            n._process({"image": (img, inf)})
        assert len(log.warnings) == 3
        for text, (_, _, reason) in zip(log.warnings, bad):
            assert f"({reason})" in text and "'/image'" in text
        n._process({"image": (bad[0][0], info)})  # the same kind again: held back, still counted
        assert len(log.warnings) == 3
        assert dict(n.skip_reasons) == {"unsupported_encoding": 2, "bad_camera_info": 1, "empty_image": 1}

        before = n.stats["processed"]
        n._process({"image": (good, info)})
        n._process({"image": (good, info)})  # re-sent: same stamp as the last processed frame
        assert n.stats["processed"] == before + 1 and n.skip_reasons["duplicate_stamp"] == 1
        assert "duplicate_stamp" in log.warnings[-1]
        n._process({"image": (_img_msg(rgb, 6e9), camera_info_msg(64, 48, _header(6e9)))})
        assert n.stats["processed"] == before + 2
        cam = next(r for r in n._reports() if r.name == "camera /image")
        assert ("skipped duplicate_stamp", "1") in cam.values and ("skipped unsupported_encoding", "2") in cam.values
    finally:
        n.destroy_node()


class Recorded(InProcess):
    """InProcess graph that records the FrameInput items the pipeline receives."""

    def __init__(self, overrides, args=()):
        super().__init__(overrides, args)
        from diagnostic_msgs.msg import DiagnosticArray
        self.items, self.diagnostics = [], []
        real = self.node.pipe.process_batch

        def record(items):
            self.items.extend(items)
            return real(items)
        self.node.pipe.process_batch = record
        self.test.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, QoSProfile(depth=20))

    def result_of(self, stamp_ns, timeout=30):
        _wait(lambda: any(_ns(m.header.stamp) == stamp_ns for m in list(self.meshes)), timeout,
              f"the result of the frame {stamp_ns}")
        return next(m for m in self.meshes if _ns(m.header.stamp) == stamp_ns)

    def item_of(self, stamp_ns):
        return next(i for i in self.items if abs(i.stamp * 1e9 - stamp_ns) < 1e3)  # float64 seconds


def test_compressed_images_remapped_and_corrupt_frames_counted(hand_rgb):
    g = Recorded([Parameter("image_transport", value="compressed")],
                 ["--ros-args", "-r", "image:=/cam/color/image_raw", "-r", "camera_info:=/cam/color/camera_info"])
    try:
        topics = dict(g.node.get_subscriber_names_and_types_by_node("hand_mesh_node", "/"))
        # image_transport's name of the remapped base topic
        assert topics["/cam/color/image_raw/compressed"] == ["sensor_msgs/msg/CompressedImage"]
        assert "/cam/color/camera_info" in topics and "/cam/color/image_raw" not in topics
        ipub, cpub = g.publisher(CompressedImage, "/cam/color/image_raw/compressed"), \
            g.publisher(CameraInfo, "/cam/color/camera_info")
        h, w = hand_rgb.shape[:2]
        t = time.time_ns()
        msg = _jpeg(hand_rgb, t)
        truncated = _jpeg(hand_rgb, t + 1_000_000)
        truncated.data = bytes(truncated.data)[: len(truncated.data) // 2]
        after = _jpeg(hand_rgb, t + 2_000_000)
        # one at a time, each handled before the next is sent (none replaced while waiting)
        for m, handled in ((msg, lambda: g.result_of(_ns(msg.header.stamp))),
                           (truncated, lambda: _wait(lambda: g.node.skip_reasons["corrupt_compressed"] == 1, 30,
                                                     "the truncated JPEG skipped")),
                           (after, lambda: g.result_of(_ns(after.header.stamp)))):
            ipub.publish(m)
            cpub.publish(camera_info_msg(w, h, m.header))
            handled()
        res = g.result_of(_ns(after.header.stamp))
        assert len(res.hands) == 1 and res.hands[0].side == RIGHT
        assert res.hands[0].translation_source == TRANSLATION_INTRINSICS
        assert g.node.skip_reasons["corrupt_compressed"] == 1
        assert not [m for m in g.meshes if _ns(m.header.stamp) == _ns(truncated.header.stamp)]
        first = g.item_of(_ns(msg.header.stamp))
        assert first.image.shape == (h, w, 3) and np.abs(first.image.astype(int) - hand_rgb).mean() < 4
    finally:
        g.close()


def test_depth_reaches_the_pipeline_paired_by_stamp(hand_rgb, ros_packages):
    # depth_wait 1 s: a colour frame waits for its depth whichever arrives first (no race
    # between the two topics on a loaded machine); a frame without depth waits the whole 1 s
    g = Recorded([Parameter("use_depth", value=True), Parameter("depth_wait", value=1.0)],
                 ["--ros-args", "-r", "depth:=/camera/aligned_depth_to_color/image_raw"])
    try:
        assert via_of(g.node) == VIA[ros_packages]
        h, w = hand_rgb.shape[:2]
        ipub, cpub = g.publisher(Image, "/image"), g.publisher(CameraInfo, "/camera_info")
        dpub = g.publisher(Image, "/camera/aligned_depth_to_color/image_raw")
        t = time.time_ns()
        depth = _depth_plane((h, w))
        frames = [(t, depth_to_image(depth, _header(t), "16UC1")),  # same stamp
                  (t + 100_000_000, None),  # no depth at all
                  (t + 200_000_000, depth_to_image(depth, _header(t + 210_000_000), "32FC1")),  # 10 ms off
                  (t + 300_000_000, depth_to_image(depth, _header(t + 300_000_000), "16UC1")),
                  (t + 400_000_000, depth_to_image(depth, _header(t + 400_000_000), "16UC1"))]
        frames[3][1].encoding = "rgb8"  # a depth image that cannot be decoded
        for k, (stamp, dmsg) in enumerate(frames):
            late = k == 4  # aligned depth comes after its colour frame: waited for (depth_wait)
            if dmsg is not None and not late:
                dpub.publish(dmsg)
            img = _img_msg(hand_rgb, stamp)
            ipub.publish(img)
            cpub.publish(camera_info_msg(w, h, img.header))
            if late:
                dpub.publish(dmsg)
            g.result_of(stamp)
        got = [g.item_of(stamp).depth for stamp, _ in frames]
        expected = np.where(depth > 0, depth, 0).astype(np.float32)
        assert got[0].shape == (h, w) and got[0].dtype == np.float32
        np.testing.assert_allclose(got[0], expected, atol=1e-6)  # 16UC1 mm -> m
        assert got[1] is None and got[3] is None
        np.testing.assert_array_equal(np.isnan(got[2]), depth == 0)  # 32FC1: no measurement = NaN
        np.testing.assert_allclose(got[2][depth > 0], 0.6, rtol=1e-6)
        cam = next(r for r in g.node._reports() if r.name == "camera /image")
        v = dict(cam.values)
        np.testing.assert_allclose(got[4], expected, atol=1e-6)
        assert (v["depth paired total"], v["depth unsynchronized total"], v["depth undecodable total"]) == ("3", "1", "1")
        assert v["depth topic"] == "/camera/aligned_depth_to_color/image_raw"
        assert all(len(g.result_of(stamp).hands) == 1 for stamp, _ in frames)  # all processed
        # /diagnostics at 1 Hz with the same content
        _wait(lambda: any(_values(_status(a, "camera /image")).get("depth paired total") == "3"
                          for a in list(g.diagnostics)), 5, "/diagnostics with the depth counters")
        arr = g.diagnostics[-1]
        assert [s.name for s in arr.status] == ["hand_mesh_node: camera /image", "hand_mesh_node: pipeline"]
        pv = _values(arr.status[1])
        assert pv["device"] == "cpu" and pv["regressor"] == "fit" and pv["hand model"] == "builtin"
        for stage in ("decode", "detect", "regress", "publish", "total"):
            assert float(pv[f"latency {stage} p50 [ms]"]) >= 0 and float(pv[f"latency {stage} max [ms]"]) > 0, stage
    finally:
        g.close()


def test_compressed_depth_reaches_the_pipeline(hand_rgb):
    g = Recorded([Parameter("use_depth", value=True), Parameter("image_transport", value="compressed"),
                  Parameter("depth_wait", value=1.0)])  # depth and colour in either order
    try:
        h, w = hand_rgb.shape[:2]
        ipub, cpub = g.publisher(CompressedImage, "/image/compressed"), g.publisher(CameraInfo, "/camera_info")
        dpub = g.publisher(CompressedImage, "/depth/compressedDepth")
        depth = _depth_plane((h, w), 0.75)
        stamps = [time.time_ns(), time.time_ns() + 50_000_000]
        for stamp, enc in zip(stamps, ("16UC1", "32FC1")):
            dpub.publish(depth_to_compressed_depth(depth, _header(stamp), enc))
            img = _jpeg(hand_rgb, stamp)
            ipub.publish(img)
            cpub.publish(camera_info_msg(w, h, img.header))
            g.result_of(stamp)
        d16, d32 = (g.item_of(s).depth for s in stamps)
        np.testing.assert_allclose(d16, np.where(depth > 0, 0.75, 0), atol=1e-6)
        assert np.isnan(d32[depth == 0]).all()
        assert np.abs(d32[depth > 0] - 0.75).max() <= 0.75 ** 2 / 10100 + 1e-6  # inverse-depth quantization
    finally:
        g.close()


def test_require_camera_info_skips_and_reports_an_error(hand_rgb, ros_packages):
    g = Recorded([Parameter("require_camera_info", value=True), Parameter("camera_info_timeout", value=0.3)])
    try:
        assert via_of(g.node) == VIA[ros_packages]
        ipub = g.publisher(Image, "/image")
        _publish_until(lambda: g.node.skip_reasons["no_camera_info"] >= 3,  # a camera at ~7 Hz
                       lambda: ipub.publish(_img_msg(hand_rgb, time.time_ns())),
                       "frames skipped for no CameraInfo", period=0.15)
        _wait(lambda: any(_status(a, "camera /image").level == b"\x02" for a in list(g.diagnostics)), 5,
              "an ERROR status")
        err = next(_status(a, "camera /image") for a in g.diagnostics if _status(a, "camera /image").level == b"\x02")
        assert "require_camera_info" in err.message
        assert _values(err)["camera_info"].startswith("missing: required")
        assert g.meshes == [] and g.items == []
    finally:
        g.close()


# ------------------------------------------------------------------ two processes
def _publish_frame(listener, rgb, stamp_ns, info=True, depth=None):
    img = _img_msg(rgb, stamp_ns)
    if depth is not None:  # first (the node waits up to depth_wait for a later one)
        listener.depth_pub.publish(depth_to_image(depth, img.header, "16UC1"))
    listener.image_pub.publish(img)
    if info:
        listener.info_pub.publish(camera_info_msg(rgb.shape[1], rgb.shape[0], img.header, fx=600.0, fy=600.0))
    return img


def test_missing_camera_info_is_loud_then_assumed_then_recovered(tmp_path, hand_rgb, ros_packages):
    """Images without CameraInfo: one warning naming both topics, results with assumed
    intrinsics, WARN on /diagnostics; CameraInfo starts: said, and used. Depth is published
    too (use_depth): it reaches the other process and is paired. A re-sent frame is
    processed once."""
    ready = lambda n: (n.count_publishers("/hands/mesh") > 0 and n.count_subscribers("/image") >= 2  # noqa: E731
                       and n.count_subscribers("/depth") >= 1)
    # depth_wait 1 s: depth and colour are paired whichever arrives first
    with node_process(tmp_path / "node.log", "camera_info_timeout:=0.5", "input_reliability:=reliable",
                      "use_depth:=true", "depth_wait:=1.0", ready=ready) as (listener, proc, env, log):
        _wait(lambda: "ready:" in log.read_text(), 30, "the node's ready line", proc, log)
        assert VIA[ros_packages] in log.read_text()
        from rclpy.qos import QoSProfile as Q
        listener.depth_pub = listener.node.create_publisher(Image, "/depth", Q(depth=10))
        _wait(lambda: listener.depth_pub.get_subscription_count() >= 1, 10, "the node's depth subscription")
        t0 = time.time_ns()
        # images alone, 5 Hz, until 3 results (the first frame also starts MediaPipe: on a
        # loaded machine the frames sent meanwhile are dropped, latest frame wins)
        _publish_until(lambda: len(_snapshot(listener, t0)[1]) >= 3,
                       lambda: _publish_frame(listener, hand_rgb, time.time_ns(), info=False),
                       "results without CameraInfo", proc, log)
        _, meshes, _, _ = _snapshot(listener, t0)
        assert all(len(m.hands) == 1 and m.hands[0].translation_source == TRANSLATION_ASSUMED for m in meshes)
        text = log.read_text()
        assert text.count("no CameraInfo on") == 1, text[-3000:]
        line = next(x for x in text.splitlines() if "no CameraInfo on" in x)
        assert "'/image'" in line and "'/camera_info'" in line and "assumed intrinsics" in line
        _wait(lambda: any(_status(a, "camera /image").level == b"\x01" and "assumed" in _status(a, "camera /image").message
                          for a in list(listener.diagnostics)), 5, "WARN on /diagnostics", proc, log)

        t1 = time.time_ns()
        depth = _depth_plane(hand_rgb.shape[:2])
        sent = []
        def paired_total():
            arrays = list(listener.diagnostics)
            return int(_values(_status(arrays[-1], "camera /image")).get("depth paired total", 0)) if arrays else 0
        # CameraInfo (and depth) from now on, until 3 results and 2 of them with their depth (a
        # node slowed down by a loaded machine drops frames, and the depth of a frame it takes
        # late may have left its 10-message depth queue: counted unsynchronized, not paired)
        _publish_until(lambda: len(_snapshot(listener, t1)[1]) >= 3 and paired_total() >= 2,
                       lambda: sent.append(_publish_frame(listener, hand_rgb, time.time_ns(), info=True, depth=depth)),
                       "results with CameraInfo and depth", proc, log)
        last = sent[-1]
        _wait(lambda: any(_ns(m.header.stamp) == _ns(last.header.stamp) for m in list(listener.meshes)), 30,
              "the result of the last frame", proc, log)
        listener.image_pub.publish(last)  # the same frame re-sent, after its result
        listener.info_pub.publish(camera_info_msg(640, 427, last.header, fx=600.0, fy=600.0))
        _wait(lambda: _skipped_total(listener, "duplicate_stamp") >= 1, 30,
              "the re-sent frame skipped as duplicate_stamp on /diagnostics", proc, log)
        _wait_for_tf_of(listener, _ns(last.header.stamp), proc, log)
        _, meshes, _, tfs = _snapshot(listener, t1)
        # (the first frame after the switch may go out alone, before its CameraInfo arrives)
        assert len(meshes) >= 3 and all(m.hands[0].translation_source == TRANSLATION_INTRINSICS for m in meshes[1:])
        assert [_ns(m.header.stamp) for m in meshes].count(_ns(last.header.stamp)) == 1
        assert "CameraInfo of '/image' arrives" in log.read_text()
        assert {t.child_frame_id for t in tfs} == {f"hand_right/{j}" for j in JOINT_NAMES}
        _wait(lambda: any(_values(_status(a, "camera /image")).get("camera_info") == "ok"
                          and int(_values(_status(a, "camera /image"))["depth paired total"]) >= 2
                          for a in list(listener.diagnostics)), 5, "depth paired on /diagnostics", proc, log)
        v = _values(_status(listener.diagnostics[-1], "camera /image"))
        assert int(v["skipped duplicate_stamp"]) == 1
        assert proc.poll() is None


def test_compressed_camera_two_processes(tmp_path, hands_data):
    ready = lambda n: n.count_publishers("/hands/mesh") > 0 and n.count_subscribers("/image/compressed") >= 1  # noqa
    with node_process(tmp_path / "node.log", "image_transport:=compressed", "input_reliability:=reliable",
                      ready=ready) as (listener, proc, env, log):
        got = []
        listener.node.create_subscription(CompressedImage, "/image/compressed", got.append, QoSProfile(depth=50))
        t0 = time.time_ns()
        video = hands_data / "mediapipe_samples" / "hand_landmarker_test_video.mp4"
        _run_camera(env, video, "--rate", 5, "--max-frames", 6, "--transport", "compressed", "--frame-id", FRAME)
        _wait(lambda: len(got) == 6, 10, "6 compressed frames")
        assert all(m.format == "rgb8; jpeg compressed bgr8" for m in got)
        _wait(lambda: any(_ns(m.header.stamp) == _ns(got[-1].header.stamp) for m in list(listener.meshes)),
              60, "the result of the last frame", proc, log)
        _, meshes, _, _ = _snapshot(listener, t0)
        stamps = {_ns(m.header.stamp) for m in got}
        assert len(meshes) >= 2  # the first frame also starts MediaPipe: frames sent meanwhile are dropped
        for m in meshes:
            assert _ns(m.header.stamp) in stamps and len(m.hands) == 1 and m.hands[0].side == RIGHT


def test_use_sim_time_stamps_from_the_bag_clock(tmp_path, hand_rgb, ros_packages):
    """Replay as ``ros2 bag play --clock`` does: /clock and images stamped in the bag's time
    (here 1000 s, decades before now). Results, TF and the /diagnostics header are in that
    time, never the wall clock."""
    from rosgraph_msgs.msg import Clock

    with node_process(tmp_path / "node.log", "use_sim_time:=true", "input_reliability:=reliable") \
            as (listener, proc, env, log):
        clock_pub = listener.node.create_publisher(Clock, "/clock", QoSProfile(depth=10))
        _wait(lambda: clock_pub.get_subscription_count() >= 1, 10, "the node's /clock subscription")
        bag_t = 1000 * 10 ** 9
        sent = []
        for k in range(25):  # 2.5 s of bag time at 10 Hz, with the clock running beside it
            t = bag_t + k * 100_000_000
            msg = Clock()
            msg.clock.sec, msg.clock.nanosec = divmod(t, 10 ** 9)
            clock_pub.publish(msg)
            if k % 5 == 0:
                sent.append(_publish_frame(listener, hand_rgb, t))
            time.sleep(0.1)
        _wait(lambda: any(_ns(m.header.stamp) == _ns(sent[-1].header.stamp) for m in list(listener.meshes)),
              30, "the result of the last frame", proc, log)
        _wait_for_tf_of(listener, _ns(sent[-1].header.stamp), proc, log)
        _wait(lambda: any(a.header.stamp.sec >= 1000 for a in list(listener.diagnostics)), 5,
              "/diagnostics in bag time", proc, log)
        _, meshes, _, tfs = _snapshot(listener, bag_t - 1)
        sent_stamps = {_ns(m.header.stamp) for m in sent}
        assert meshes and {_ns(m.header.stamp) for m in meshes} <= sent_stamps
        assert all(h.header.stamp == m.header.stamp for m in meshes for h in m.hands)
        assert tfs and {_ns(t.header.stamp) for t in tfs} <= sent_stamps
        assert not [t for m in listener.tf for t in m.transforms if _ns(t.header.stamp) > bag_t + 10 ** 10]
        diag = [a for a in listener.diagnostics if a.header.stamp.sec >= 1000]
        assert all(1000 <= a.header.stamp.sec < 1010 for a in diag)
        assert all(a.header.stamp.sec < 10 ** 6 for a in listener.diagnostics)  # never the wall clock


@pytest.mark.parametrize("rectified", [False, True])
def test_image_rectified_takes_p_and_no_distortion(hand_rgb, rectified):
    """A CameraInfo with a lens (K, plumb_bob D) and the rectified camera P, as image_proc's
    image_rect shares it: image_rectified false uses K and D, true uses P and no distortion;
    the hand is placed either way."""
    g = Recorded([Parameter("image_rectified", value=rectified)])
    try:
        ipub, cpub = g.publisher(Image, "/image"), g.publisher(CameraInfo, "/camera_info")
        h, w = hand_rgb.shape[:2]
        img = _img_msg(hand_rgb, time.time_ns())
        info = CameraInfo(header=img.header, width=w, height=h, distortion_model="plumb_bob")
        info.k = [600.0, 0.0, w / 2, 0.0, 600.0, h / 2, 0.0, 0.0, 1.0]
        info.d = [-0.2, 0.05, 0.001, -0.001, 0.0]
        info.p = [560.0, 0.0, w / 2 - 3, 0.0, 0.0, 565.0, h / 2 + 2, 0.0, 0.0, 0.0, 1.0, 0.0]
        ipub.publish(img)
        cpub.publish(info)
        res = g.result_of(_ns(img.header.stamp))
        k = g.item_of(_ns(img.header.stamp)).intrinsics
        if rectified:
            assert (k.fx, k.fy, k.cx, k.cy) == (560.0, 565.0, w / 2 - 3, h / 2 + 2) and not k.is_distorted
        else:
            assert (k.fx, k.fy) == (600.0, 600.0) and k.is_distorted and k.distortion_model == "plumb_bob"
        assert len(res.hands) == 1 and res.hands[0].translation_source == TRANSLATION_INTRINSICS
    finally:
        g.close()
