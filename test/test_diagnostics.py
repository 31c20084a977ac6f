"""The node's diagnostics (windowed rates, drops, skips, latency, levels) with a controlled
clock; the DiagnosticArray they become."""
import time

import pytest

from hand_mesh_ros.ros.diagnostics import (CAMERA_INFO_ASSUMED, CAMERA_INFO_OK, CAMERA_INFO_REQUIRED, ERROR,
                                           OK, WARN, CameraTopics, NodeDiagnostics, to_diagnostic_array)


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def _diag(**kw):
    clock = Clock()
    cams = [CameraTopics("image", "/camera/image_raw", "/camera/camera_info"),
            CameraTopics("cam1", "/cam1/image_raw", "/cam1/camera_info", "/cam1/depth")]
    return NodeDiagnostics(cams, window_s=5.0, stale_after_s=2.0, clock=clock, **kw), clock


def _by_name(reports):
    return {r.name: r for r in reports}


def _run(d, clock, camera, seconds, rate, every_processed=1, drop=False, timings=None):
    for _ in range(int(seconds * rate)):
        clock.t += 1.0 / rate
        d.received(camera)
        if drop:
            d.dropped(camera)
        else:
            d.processed(camera, timings or {"detect": 10.0, "total": 20.0})


def test_healthy_camera_is_ok_with_rates_and_latency():
    d, clock = _diag()
    d.set_camera_info("image", CAMERA_INFO_OK)
    for k in range(75):  # 15 Hz for 5 s, latencies 10..84 ms
        clock.t += 1 / 15
        d.received("image")
        d.processed("image", {"detect": 5.0, "regress": 3.0, "publish": 1.0, "total": 10.0 + k})
        d.received("cam1")
        d.processed("cam1", {})
        d.depth("cam1", "paired")
    r = _by_name(d.reports([("device", "cpu")], {"depth_out_of_range": 3}))
    cam = r["camera /camera/image_raw"]
    assert cam.level == OK, cam.message
    v = dict(cam.values)
    assert float(v["input rate [Hz]"]) == pytest.approx(15.0, abs=0.3)
    assert float(v["processed rate [Hz]"]) == pytest.approx(15.0, abs=0.3)
    assert v["received total"] == "75" and v["dropped total"] == "0" and v["camera_info"] == CAMERA_INFO_OK
    assert "depth topic" not in v
    pipe = r["pipeline"]
    pv = dict(pipe.values)
    assert pipe.level == OK and pv["device"] == "cpu"
    # the window holds the last 5 s: ~74 samples of 10+k ms, k = 1..74 -> median ~47, max 84
    assert float(pv["latency total max [ms]"]) == 84.0
    assert 44.0 <= float(pv["latency total p50 [ms]"]) <= 50.0
    assert pv["latency detect p50 [ms]"] == "5.0" and pv["latency track p50 [ms]"] == "-"
    assert pv["hands skipped depth_out_of_range"] == "3"
    assert dict(r["camera /cam1/image_raw"].values)["depth paired total"] == "75"


def test_stale_camera_warns_then_recovers():
    d, clock = _diag()
    clock.t += 2.5
    cam = _by_name(d.reports())["camera /camera/image_raw"]
    assert cam.level == WARN and "no image since start" in cam.message
    _run(d, clock, "image", 1.0, 15)
    assert _by_name(d.reports())["camera /camera/image_raw"].level == OK
    clock.t += 3.0
    cam = _by_name(d.reports())["camera /camera/image_raw"]
    assert cam.level == WARN and "no image for 3.0 s" in cam.message


def test_drops_over_half_the_input_warn():
    d, clock = _diag()
    for k in range(60):
        clock.t += 1 / 30
        d.received("image")
        if k % 3:
            d.dropped("image")
        else:
            d.processed("image", {"total": 40.0})
    cam = _by_name(d.reports())["camera /camera/image_raw"]
    assert cam.level == WARN and "dropped 40 of 60" in cam.message
    assert dict(cam.values)["dropped in window"] == "40"


def test_skips_warn_and_all_skipped_is_an_error_after_a_window():
    d, clock = _diag()
    for _ in range(10):
        clock.t += 0.1
        d.received("image")
        d.skipped("image", "unsupported_encoding")
    cam = _by_name(d.reports())["camera /camera/image_raw"]
    assert cam.level == WARN and "skipped 10 frames" in cam.message  # not yet a whole window
    for _ in range(50):
        clock.t += 0.1
        d.received("image")
        d.skipped("image", "unsupported_encoding")
    cam = _by_name(d.reports())["camera /camera/image_raw"]
    assert cam.level == ERROR and "none processed" in cam.message
    assert dict(cam.values)["skipped unsupported_encoding"] == "60"


def test_camera_info_states_and_depth_rule():
    d, clock = _diag(use_depth=True)
    d.set_camera_info("image", CAMERA_INFO_ASSUMED)
    d.set_camera_info("cam1", CAMERA_INFO_REQUIRED)
    for k in range(20):
        clock.t += 0.1
        for cam in ("image", "cam1"):
            d.received(cam)
        d.processed("image", {})
        d.processed("cam1", {})
        d.depth("cam1", "unsynchronized" if k % 4 else "paired")
    r = _by_name(d.reports())
    assert r["camera /camera/image_raw"].level == WARN and "assumed intrinsics" in r["camera /camera/image_raw"].message
    c1 = r["camera /cam1/image_raw"]
    assert c1.level == ERROR and "require_camera_info" in c1.message and "15 of 20 frames without depth" in c1.message
    v = dict(c1.values)
    assert (v["depth topic"], v["depth paired total"], v["depth unsynchronized total"]) == ("/cam1/depth", "5", "15")


def test_processing_error_is_an_error_for_a_window():
    d, clock = _diag()
    d.error()
    p = _by_name(d.reports())["pipeline"]
    assert p.level == ERROR and dict(p.values)["processing errors total"] == "1"
    clock.t += 5.1
    assert _by_name(d.reports())["pipeline"].level == OK


def test_frames_per_batch_in_the_window_and_batches_in_total():
    d, clock = _diag()
    assert dict(_by_name(d.reports())["pipeline"].values)["frames per batch max"] == "-"
    for n in (1, 2, 2, 1):
        clock.t += 1.0
        d.batch(n)
    v = dict(_by_name(d.reports())["pipeline"].values)
    assert (v["batches total"], v["frames per batch mean"], v["frames per batch max"]) == ("4", "1.50", "2")
    clock.t += 4.5  # the first three left the 5 s window
    v = dict(_by_name(d.reports())["pipeline"].values)
    assert (v["batches total"], v["frames per batch mean"], v["frames per batch max"]) == ("4", "1.00", "1")


def test_diagnostic_array_has_every_status_named_as_diagnostic_updater_does():
    pytest.importorskip("diagnostic_msgs")
    from diagnostic_msgs.msg import DiagnosticStatus
    from builtin_interfaces.msg import Time

    d, clock = _diag()
    _run(d, clock, "image", 3.0, 10)  # cam1 sends nothing: WARN
    arr = to_diagnostic_array(d.reports([("device", "cpu")]), "hand_mesh_node", "cpu", Time(sec=5))
    assert [s.name for s in arr.status] == ["hand_mesh_node: camera /camera/image_raw",
                                            "hand_mesh_node: camera /cam1/image_raw", "hand_mesh_node: pipeline"]
    assert arr.header.stamp.sec == 5
    assert arr.status[0].level == DiagnosticStatus.OK and arr.status[1].level == DiagnosticStatus.WARN
    assert all(s.hardware_id == "cpu" for s in arr.status)
    assert {kv.key: kv.value for kv in arr.status[2].values}["device"] == "cpu"


def test_publisher_sends_the_same_statuses_through_diagnostic_updater_and_the_stand_in(ros_packages):
    """DiagnosticsPublisher on a real graph: via ``diagnostic_updater.Updater`` (real) or its
    own DiagnosticArray publisher (stand-in), a subscriber of /diagnostics gets every report
    as to_diagnostic_array builds it: names, levels, messages, hardware id, key/values."""
    rclpy = pytest.importorskip("rclpy")
    from diagnostic_msgs.msg import DiagnosticArray

    from conftest import DOMAIN_ID
    from hand_mesh_ros.ros.diagnostics import DiagnosticsPublisher

    d, clock = _diag()
    _run(d, clock, "image", 3.0, 10)  # cam1 sends nothing: WARN
    reports = d.reports([("device", "cpu")])
    ctx = rclpy.context.Context()
    rclpy.init(args=["diag"], context=ctx, domain_id=DOMAIN_ID)
    node = rclpy.create_node("diag_parity", context=ctx)
    got = []
    node.create_subscription(DiagnosticArray, "/diagnostics", got.append, 10)
    executor = rclpy.executors.SingleThreadedExecutor(context=ctx)
    try:
        pub = DiagnosticsPublisher(node, [r.name for r in reports], lambda: reports, "cpu", period_s=0.2)
        assert pub.via == {"real": "diagnostic_updater", "standin": "DiagnosticArray publisher"}[ros_packages]
        executor.add_node(node)

        def content(arr):
            return [(s.name, s.level, s.message, s.hardware_id, [(kv.key, kv.value) for kv in s.values])
                    for s in arr.status]
        want = content(to_diagnostic_array(reports, "diag_parity", "cpu"))
        deadline = time.monotonic() + 30
        # the publisher's own timer sends it (diagnostic_updater says "Node starting up" first)
        while not any(content(a) == want for a in got) and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        assert got, "no /diagnostics within 30 s"
        assert content(got[-1]) == want
    finally:
        executor.shutdown(timeout_sec=2)
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
