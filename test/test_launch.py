"""The first thing a user types, with the real ROS 2 tools, across processes: ``ros2 launch
hand_mesh_ros hands.launch.py`` with remappings and launch arguments while ``ros2 run
hand_mesh_ros camera_publisher`` streams the test video; ``ros2 param get`` and ``ros2 topic
echo`` against the running node; Ctrl-C; a bad launch argument; two cameras from one launch;
respawn after ``kill -9``.

Needs the real launch / launch_ros / ros2cli (a ROS 2 install, or scripts/setup_env.sh with
../shared/ros2-python) and hand_mesh_ros where ament finds it (the set-up lays it out in the
venv, conftest puts the venv on AMENT_PREFIX_PATH).
"""
import os
import re
import signal
import time

import pytest
import yaml

pytest.importorskip("rclpy")

from hand_mesh_ros.core.types import RIGHT  # noqa: E402
from ros2_cli import (FRAME, Listener, camera, launch, ros2_cli, ros2_command, ros2_graph_cli,  # noqa: E402
                      wait_until)


@pytest.fixture(scope="module")
def ros2():
    return ros2_command()


@pytest.fixture
def video(hands_data):
    return hands_data / "mediapipe_samples" / "hand_landmarker_test_video.mp4"


@pytest.fixture
def listener():
    ls = Listener()
    yield ls
    ls.close()


def _stop_all(*started):
    for s in started:
        if s is not None:
            s.stop()


def _stamp_s(msg) -> float:
    return msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec


def _right_hand_since(listener, t, frame_id=FRAME):
    return [m for m in listener.meshes_since(t, frame_id) if len(m.hands) == 1 and m.hands[0].side == RIGHT]


def test_launch_arguments_reach_the_node_and_the_ros2_cli_sees_them(ros2, video, listener, tmp_path):
    params = tmp_path / "my_hands.yaml"
    params.write_text(yaml.safe_dump({"hand_mesh_node": {"ros__parameters": {
        "tf_prefix": "hm_", "smoothing": "one_euro", "input_reliability": "reliable"}}}))
    cam = node = None
    try:
        cam = camera(ros2, tmp_path / "camera.log", video, "/cam/image_raw", "/cam/camera_info", "--rate", "10")
        node = launch(ros2, tmp_path / "launch.log", "image:=/cam/image_raw", "camera_info:=/cam/camera_info",
                      "detector:=mediapipe_torch", "max_hands:=1", "batch_size:=4", f"params_file:={params}")
        t0 = time.time()
        node.wait_for_line(r"\[hand_mesh_node\]: ready: ")
        assert "detector 'mediapipe_torch'" in node.text() and "cameras ['/cam/image_raw']" in node.text()
        wait_until(lambda: _right_hand_since(listener, t0), 120, "/hands/mesh with the right hand", node)

        expected = {"detector": "String value is: mediapipe_torch", "max_hands": "Integer value is: 1",
                    "batch_size": "Integer value is: 4",
                    "tf_prefix": "String value is: hm_", "smoothing": "String value is: one_euro",  # params_file
                    "min_score": "Double value is: 0.5"}  # config/hands.yaml's default, untouched
        for name, answer in expected.items():
            out = ros2_graph_cli(ros2, "param", "get", "/hand_mesh_node", name)
            assert out.returncode == 0 and out.stdout.strip() == answer, (name, out.stdout, out.stderr)
        nodes = ros2_graph_cli(ros2, "node", "list", found=lambda out: "/hand_mesh_node" in out.stdout.split())
        assert "/hand_mesh_node" in nodes.stdout.split(), nodes.stdout + nodes.stderr

        echo = ros2_cli(ros2, "topic", "echo", "--once", "/hands/mesh", "hand_mesh_msgs/msg/HandMeshArray")
        assert echo.returncode == 0, echo.stdout + echo.stderr
        msg = yaml.safe_load(echo.stdout.split("\n---")[0])
        assert msg["header"]["frame_id"] == FRAME and len(msg["hands"]) == 1, echo.stdout[:2000]
        hand = msg["hands"][0]
        assert hand["side"] == RIGHT and len(hand["joints"]) == 63 and hand["hand_model"] == "builtin"

        before = len(node.text())
        assert node.ctrl_c() == 0, node.text()[-4000:]
        text = node.text()
        assert re.search(r"\[INFO\] \[hand_mesh_node-1\]: process has finished cleanly", text[before:]), text[-3000:]
        assert "stopped: {" in text and "Traceback" not in text, text[-4000:]
        assert cam.ctrl_c() == 0, cam.text()[-3000:]
        assert "Traceback" not in cam.text() and "interrupted: published" in cam.text(), cam.text()[-3000:]
    finally:
        _stop_all(node, cam)


@pytest.mark.parametrize("argument, name", [
    ("max_hands:=two", "max_hands"),
    ("min_score:=high", "min_score"),
    ("use_depth:=maybe", "use_depth"),
    ("image_topics:=/cam0/image_raw", "image_topics"),
    ("batch_size:=[1, 2", "batch_size"),
    ("respawn_delay:=soon", "respawn_delay"),
])
def test_a_bad_launch_argument_is_one_line_naming_it(ros2, tmp_path, argument, name):
    run = launch(ros2, tmp_path / "launch.log", argument)
    rc = run.proc.wait(120)
    text = run.text()
    assert rc != 0, text
    errors = [ln for ln in text.splitlines() if "error" in ln.lower()]
    assert len(errors) == 1 and f"launch argument '{name}'" in errors[0], text
    assert "Traceback" not in text and "process started" not in text, text


def test_two_cameras_from_one_launch_are_processed_as_one_batch(ros2, video, listener, tmp_path):
    """``image_topics`` with two RealSense-style cameras; both stream the video at 30 Hz, more
    than the node answers on 2 cores, so both cameras always have a frame waiting: each
    batch takes both (``frames per batch max`` 2 on /diagnostics) and both get hands."""
    topics = ["/cam0/color/image_raw", "/cam1/color/image_raw"]
    cams, node = [], None
    try:
        for k, topic in enumerate(topics):
            ns = topic.rsplit("/", 1)[0]
            cams.append(camera(ros2, tmp_path / f"camera{k}.log", video, topic, f"{ns}/camera_info",
                               "--rate", "30", "--frame-id", f"cam{k}_optical"))
        node = launch(ros2, tmp_path / "launch.log", f"image_topics:={topics}", "input_reliability:=reliable",
                      "detector:=mediapipe_torch", "publish_markers:=false")
        t0 = time.time()
        node.wait_for_line(r"\[hand_mesh_node\]: ready: ")
        for k in range(2):
            wait_until(lambda: _right_hand_since(listener, t0, f"cam{k}_optical"), 120,
                       f"the right hand seen by camera {k}", node)
        wait_until(lambda: listener.pipeline_values().get("frames per batch max") == "2", 60,
                   "a batch of both cameras on /diagnostics", node)
        out = ros2_graph_cli(ros2, "param", "get", "/hand_mesh_node", "image_topics")
        assert out.stdout.strip() == f"String values are: {topics}", out.stdout + out.stderr
        assert node.ctrl_c() == 0 and "Traceback" not in node.text(), node.text()[-4000:]
        for cam in cams:
            assert cam.ctrl_c() == 0 and "Traceback" not in cam.text(), cam.text()[-3000:]
    finally:
        _stop_all(node, *cams)


def test_respawn_after_kill_9_resumes_the_meshes(ros2, video, listener, tmp_path):
    """``respawn:=true respawn_delay:=1.0``: the node killed with SIGKILL under load is
    started again by launch and /hands/mesh comes back. Prints where the time to the first
    result after the kill goes (the node's own log stamps: imports, then pipeline and
    warm-up, then the first frame)."""
    cam = node = None
    try:
        cam = camera(ros2, tmp_path / "camera.log", video, "/cam/image_raw", "/cam/camera_info", "--rate", "15")
        node = launch(ros2, tmp_path / "launch.log", "image:=/cam/image_raw", "camera_info:=/cam/camera_info",
                      "respawn:=true", "respawn_delay:=1.0", "input_reliability:=reliable")
        t0 = time.time()
        wait_until(lambda: len(_right_hand_since(listener, t0)) >= 5, 120, "results before the kill", node)
        pid = int(node.wait_for_line(r"process started with pid \[(\d+)\]").group(1))
        mark = len(node.text())
        t_kill = time.time()
        os.kill(pid, signal.SIGKILL)
        node.wait_for_line(rf"process has died \[pid {pid}, exit code -9", after=mark)
        new = node.wait_for_line(r"process started with pid \[(\d+)\]", after=mark)
        assert int(new.group(1)) != pid
        def after_kill():  # results of images taken after the kill: the new node's
            with listener.lock:
                return [(r, m) for r, m in listener.meshes if _stamp_s(m) > t_kill and len(m.hands) == 1]
        t_first = wait_until(after_kill, 120, "/hands/mesh after the respawn", node)[0][0]
        wait_until(lambda: len(after_kill()) >= 5, 60, "results going on", node)

        # the new node's own log stamps [s, wall clock]: main() logs the DDS profile right after
        # its imports, "ready:" once the pipeline is built and warmed up and it has subscribed
        after = node.text()[new.start():]
        t_imported, t_ready = (float(node.wait_for_line(rf"\[(\d+\.\d+)\] \[hand_mesh_node\]: {what}",
                                                         after=new.start()).group(1))
                               for what in ("Fast DDS profile", "ready:"))
        warm = float(re.search(r"warmed up in (\d+\.\d+) s", after).group(1))
        print(f"\nrespawn: kill -9 -> first /hands/mesh of the new node {t_first - t_kill:.2f} s = "
              f"respawn_delay 1.00 + process start and imports {t_imported - t_kill - 1.0:.2f} + pipeline built "
              f"and warmed up {t_ready - t_imported:.2f} (warm-up {warm:.2f}) + first frame {t_first - t_ready:.2f}"
              f" (load average {os.getloadavg()[0]:.1f})")
        assert node.ctrl_c() == 0, node.text()[-4000:]
        assert node.text().count("process started with pid") == 2  # Ctrl-C is not a crash: no third start
        assert cam.ctrl_c() == 0
        # the killed node's DDS participant never said goodbye: wait until its lease ends so
        # that the next test's graph holds no ghost of it
        wait_until(lambda: listener.node.count_publishers("/hands/mesh") == 0, 120, "the killed node's lease")
    finally:
        _stop_all(node, cam)
