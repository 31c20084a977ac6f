"""hand_mesh_node: parameters, config/launch consistency, and a two-process ROS test.

(a) in-process: parameters declared / validated, config/hands.yaml loads through
    ``--ros-args --params-file``, every parameter is a launch argument and launch arguments
    reach the node typed (launch/hands.launch.py's ROS-free part imported, its structure
    checked with ``ast``: ``launch`` is not installable here), bad input is skipped and
    counted.
(b) two processes on a real ROS graph (loopback only, this test process's domain, see
    conftest): ``camera_publisher`` publishes real hand images / video frames, ``python -m
    hand_mesh_ros.node`` processes them, and this process checks /hands/mesh,
    /hands/markers and /tf; with the real message_filters / tf2_ros / diagnostic_updater
    and with the node's stand-ins (``HAND_MESH_ROS_STANDINS``).

Every node a test starts is stopped by that test (or its class-scoped fixture), so one
test's node never answers another's frames.
"""
import ast
import contextlib
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip("rclpy")
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from conftest import DOMAIN_ID  # noqa: E402
from hand_mesh_ros import node as node_mod  # noqa: E402
from hand_mesh_ros.config import PARAMETERS, NodeParams  # noqa: E402
from hand_mesh_ros.ros import publishers as publishers_mod  # noqa: E402
from hand_mesh_ros.ros.camera_inputs import Frame  # noqa: E402
from hand_mesh_ros.core.types import JOINT_NAMES, RIGHT  # noqa: E402
from hand_mesh_ros.ros.camera_publisher import camera_info_msg  # noqa: E402
from hand_mesh_ros.ros import real_packages  # noqa: E402
from hand_mesh_ros.ros.executor_thread import ExecutorThread  # noqa: E402
from hand_mesh_ros.ros.image_conversion import rgb_to_image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
YAML_PATH = REPO / "config" / "hands.yaml"
LAUNCH_PATH = REPO / "launch" / "hands.launch.py"
PY = sys.executable
FRAME = "camera_color_optical_frame"
STANDINS = real_packages.STANDINS_VARIABLE


@pytest.fixture
def ctx():
    """A private rclpy context (this test process's domain) for one in-process test."""
    c = rclpy.context.Context()
    yield c
    rclpy.try_shutdown(context=c)


def _init(c, args=()):
    rclpy.init(args=["test", *args], context=c, domain_id=DOMAIN_ID)


# ------------------------------------------------------------------ (a) parameters
@pytest.mark.parametrize("name, value, allowed", [
    ("device", "gpu", "auto, cpu, cuda"),
    ("smoothing", "kalman", "none, one_euro"),
    ("batch_size", 0, ">= 1"),
    ("max_hands", -1, ">= 1"),
    ("min_score", 1.5, r"\[0, 1\]"),
    ("sync_slop", 0.0, "> 0"),
    ("input_reliability", "system_default", "best_effort, reliable"),
    ("precision", "fp8", "auto, fp32, bf16, fp16"),
    ("smoothing_min_cutoff", 0.0, "> 0"),
    ("track_max_missed", -1, ">= 0"),
    ("side_hysteresis", 0, ">= 1"),
    ("nms_iou", 0.0, r"\(0, 1\]"),
    ("nms_keypoint_distance", -0.1, ">= 0"),
    ("image_transport", "theora", "raw, compressed"),
    ("camera_info_timeout", 0.0, "> 0"),
    ("batch_size", "eight", "integer"),
    ("publish_markers", "yes", "bool"),
])
def test_invalid_parameter_names_it_and_allowed_values(ctx, name, value, allowed):
    _init(ctx)
    with pytest.raises(ValueError, match=rf"parameter '{name}'.*{allowed}"):
        node_mod.HandMeshNode(context=ctx, parameter_overrides=[Parameter(name, value=value)])


def test_invalid_detector_or_regressor_from_pipeline_config(ctx):
    _init(ctx)
    with pytest.raises(ValueError, match=r"parameter 'regressor': 'nope' is not allowed; allowed: one of fit, hamer"):
        node_mod.HandMeshNode(context=ctx, parameter_overrides=[Parameter("regressor", value="nope")])
    with pytest.raises(ValueError, match=r"parameter 'detector': 'nope'"):
        node_mod.HandMeshNode(context=ctx, parameter_overrides=[Parameter("detector", value="nope")])


def test_main_exits_with_error_on_bad_parameter():
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    r = subprocess.run([PY, "-m", "hand_mesh_ros.node", "--ros-args", "-p", "device:=tpu"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "parameter 'device'" in r.stderr + r.stdout and "auto, cpu, cuda" in r.stderr + r.stdout


def test_camera_topics():
    p = NodeParams()
    p.image_topics, p.use_camera_info, p.use_depth = [], True, False
    topics = lambda: [(c.image, c.camera_info, c.depth) for c in node_mod.camera_topics(p)]  # noqa: E731
    assert topics() == [("image", "camera_info", "")]
    p.image_topics = ["/cam0/color/image_raw", "cam1/image", "image_raw"]
    assert topics() == [("/cam0/color/image_raw", "/cam0/color/camera_info", ""),
                        ("cam1/image", "cam1/camera_info", ""), ("image_raw", "camera_info", "")]
    p.use_depth = True
    p.image_topics = ["/camera/camera/color/image_raw", "/cam1/color/image_raw"]  # RealSense layout
    assert topics() == [
        ("/camera/camera/color/image_raw", "/camera/camera/color/camera_info",
         "/camera/camera/aligned_depth_to_color/image_raw"),
        ("/cam1/color/image_raw", "/cam1/color/camera_info", "/cam1/aligned_depth_to_color/image_raw")]
    p.depth_topics = ["/d0", "/d1"]
    assert [c.depth for c in node_mod.camera_topics(p)] == ["/d0", "/d1"]
    p.depth_topics = ["/d0"]
    with pytest.raises(ValueError, match="parameter 'depth_topics'"):
        node_mod.camera_topics(p)
    p.image_topics, p.depth_topics, p.use_camera_info = [], [], False
    assert topics() == [("image", "", "depth")]


@pytest.fixture
def yaml_node():
    """HandMeshNode built from config/hands.yaml via --ros-args --params-file."""
    c = rclpy.context.Context()
    _init(c, ["--ros-args", "--params-file", str(YAML_PATH)])
    n = node_mod.HandMeshNode(context=c)
    yield n
    n.destroy_node()
    rclpy.try_shutdown(context=c)


def test_yaml_has_every_parameter_and_loads(yaml_node):
    conf = yaml.safe_load(YAML_PATH.read_text())["hand_mesh_node"]["ros__parameters"]
    assert list(conf) == [p.name for p in PARAMETERS]
    for name, value in conf.items():
        got = getattr(yaml_node.params, name)
        assert got == value and type(got) is type(value), name
        if name not in ("image_topics", "depth_topics"):  # an empty YAML list arrives as an unset STRING_ARRAY
            assert yaml_node.get_parameter(name).value == value
    # declared with descriptors, read-only after start-up
    d = yaml_node.describe_parameter("batch_size")
    assert d.description and d.read_only and d.integer_range[0].from_value == 1


def test_yaml_override_is_applied(ctx, tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("hand_mesh_node:\n  ros__parameters:\n    tf_prefix: 'h_'\n    max_hands: 1\n"
                 "    image_topics: ['/cam0/image_raw']\n    use_camera_info: false\n")
    _init(ctx, ["--ros-args", "--params-file", str(f)])
    n = node_mod.HandMeshNode(context=ctx)
    try:
        assert (n.params.tf_prefix, n.params.max_hands, n.params.image_topics) == ("h_", 1, ["/cam0/image_raw"])
        assert n.params.use_camera_info is False
        topics = {name for name, _ in n.get_subscriber_names_and_types_by_node("hand_mesh_node", "/")}
        assert topics == {"/cam0/image_raw"}  # no camera_info without use_camera_info
    finally:
        n.destroy_node()


def _load_launch_module():
    """launch/hands.launch.py as a module (its launch / launch_ros imports are inside functions)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("hands_launch", LAUNCH_PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _call_name(call: ast.Call) -> str:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")


def test_launch_declares_every_parameter_remapping_and_rviz():
    launch = _load_launch_module()
    tree = ast.parse(LAUNCH_PATH.read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    fixed = {c.args[0].value for c in calls
             if _call_name(c) == "DeclareLaunchArgument" and isinstance(c.args[0], ast.Constant)}
    assert fixed == {"image", "camera_info", "depth", "params_file", "rviz", "respawn", "respawn_delay"}
    # one DeclareLaunchArgument(p.name, default_value="") per entry of the parameter table
    comps = [c for c in ast.walk(tree) if isinstance(c, ast.ListComp)
             and _call_name(c.elt) == "DeclareLaunchArgument"]
    assert len(comps) == 1 and ast.unparse(comps[0].generators[0].iter) == "PARAMETERS"
    assert ast.unparse(comps[0].elt.args[0]) == "p.name" and launch.PARAMETERS is PARAMETERS
    assert [ast.literal_eval(k.value) for k in comps[0].elt.keywords if k.arg == "default_value"] == [""]
    src = LAUNCH_PATH.read_text()
    assert '("image", LaunchConfiguration("image")' in src and '"hands.rviz"' in src
    assert '("depth", LaunchConfiguration("depth")' in src
    # respawn reaches the node action
    node_calls = [c for c in calls if _call_name(c) == "Node" and any(
        k.arg == "executable" and ast.literal_eval(k.value) == "hand_mesh_node" for k in c.keywords)]
    assert len(node_calls) == 1
    kw = {k.arg: ast.unparse(k.value) for k in node_calls[0].keywords}
    assert (kw["respawn"], kw["respawn_delay"]) == ("respawn", "respawn_delay")
    assert 'IfCondition(LaunchConfiguration("rviz"))' in src


def test_launch_arguments_override_only_when_given(ctx):
    """Empty launch arguments keep the params file's values; given ones reach the node typed."""
    launch = _load_launch_module()
    assert launch.launch_overrides({p.name: "" for p in PARAMETERS}) == {}
    given = {"detector": "mediapipe", "regressor": "fit", "device": "cpu", "batch_size": "4",
             "max_hands": "1", "min_score": "1", "mano_model_dir": "", "checkpoint": "", "precision": "fp32",
             "tf_prefix": "h1_", "smoothing": "one_euro", "input_reliability": "reliable",
             "publish_faces": "true", "publish_markers": "false", "publish_overlay": "false",
             "image_topics": "['/cam0/image_raw', '/cam1/image_raw']", "mirrored": "true",
             "use_camera_info": "false", "sync_slop": "0.1", "smoothing_min_cutoff": "3",
             "smoothing_beta": "0.25", "track_max_missed": "0", "side_hysteresis": "7", "nms_iou": "1",
             "nms_keypoint_distance": "0.1", "image_transport": "compressed",
             "camera_info_timeout": "3", "require_camera_info": "true", "use_depth": "true",
             "depth_topics": "['/cam0/depth', '/cam1/depth']"}
    over = launch.launch_overrides(given)
    assert over["min_score"] == 1.0 and isinstance(over["min_score"], float)
    assert over["nms_iou"] == 1.0 and isinstance(over["smoothing_min_cutoff"], float)
    assert over["tf_prefix"] == "h1_" and "checkpoint" not in over
    _init(ctx, ["--ros-args", "--params-file", str(YAML_PATH)])
    n = node_mod.HandMeshNode(context=ctx, parameter_overrides=[
        Parameter(k, value=v) for k, v in over.items()])
    try:
        for k, v in over.items():
            assert getattr(n.params, k) == v, k
    finally:
        n.destroy_node()
    with pytest.raises(ValueError, match="batch_size"):
        launch.launch_overrides({"batch_size": "[1, 2"})
    with pytest.raises(ValueError, match=r"^launch argument 'max_hands': 'two' is not allowed; allowed: an integer >= 1$"):
        launch.launch_overrides({"max_hands": "two"})


def test_launch_respawn_options():
    launch = _load_launch_module()
    assert launch.respawn_options("false", "2.0") == (False, 2.0)
    assert launch.respawn_options("true", "0.5") == (True, 0.5)
    with pytest.raises(ValueError, match="'respawn'.*true, false"):
        launch.respawn_options("sometimes", "1")
    for bad in ("-1", "soon", "nan"):
        with pytest.raises(ValueError, match="'respawn_delay'.*>= 0"):
            launch.respawn_options("true", bad)


def _img_msg(rgb, stamp_ns, encoding="rgb8"):
    from std_msgs.msg import Header
    h = Header(frame_id=FRAME)
    h.stamp.sec, h.stamp.nanosec = divmod(int(stamp_ns), 1_000_000_000)
    m = rgb_to_image(rgb, h)
    m.encoding = encoding
    return m


def test_bad_input_is_skipped_and_counted(yaml_node):
    rgb = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    good = _img_msg(rgb, 5e9)
    info = camera_info_msg(64, 48, good.header)
    nan_info = camera_info_msg(64, 48, good.header, fx=float("nan"))
    zero_info = camera_info_msg(64, 48, good.header, fy=0.0)
    bad = [(_img_msg(rgb, 1e9, "yuv422"), info), (good, camera_info_msg(640, 480, good.header)),
           (good, nan_info), (good, zero_info), (_empty_image(good.header), info)]
    for img, inf in bad:
        with pytest.raises(ValueError):
            yaml_node.streams["image"].decode(Frame(img, inf))
    before = dict(yaml_node.stats)
    for img, inf in bad:
        yaml_node._process({"image": (img, inf)})
    assert yaml_node.stats["skipped"] - before["skipped"] == len(bad)
    assert yaml_node.stats["processed"] == before["processed"]
    yaml_node._process({"image": (good, info)})
    assert yaml_node.stats["processed"] == before["processed"] + 1


def _empty_image(header):
    m = Image(height=0, width=0, encoding="rgb8", step=0)
    m.header = header
    return m


# ------------------------------------------------------------------ (b) two processes
class Listener:
    """Test-side ROS node: records the graph's traffic in a background executor."""

    def __init__(self, domain_id: int):
        from diagnostic_msgs.msg import DiagnosticArray
        from hand_mesh_msgs.msg import HandMeshArray
        from tf2_msgs.msg import TFMessage
        from visualization_msgs.msg import MarkerArray

        self.ctx = rclpy.context.Context()
        rclpy.init(args=["listener"], context=self.ctx, domain_id=domain_id)
        self.node = rclpy.create_node("hand_mesh_test_listener", context=self.ctx)
        self.lock = threading.Lock()
        self.meshes, self.markers, self.tf, self.images, self.diagnostics = [], [], [], [], []
        rel = QoSProfile(depth=100)
        n = self.node
        n.create_subscription(DiagnosticArray, "/diagnostics", self._rec(self.diagnostics), rel)
        n.create_subscription(HandMeshArray, "/hands/mesh", self._rec(self.meshes), rel)
        n.create_subscription(MarkerArray, "/hands/markers", self._rec(self.markers), rel)
        n.create_subscription(TFMessage, "/tf", self._rec(self.tf), rel)
        n.create_subscription(Image, "/image", self._rec(self.images), rel)
        n.create_subscription(CameraInfo, "/camera_info", lambda m: None, rel)
        self.image_pub = n.create_publisher(Image, "/image", rel)
        self.info_pub = n.create_publisher(CameraInfo, "/camera_info", rel)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(n)
        self.spinner = ExecutorThread(self.executor, self.node.get_logger(), context=self.ctx).start()

    def _rec(self, store):
        def cb(msg):
            with self.lock:
                store.append(msg)
        return cb

    def close(self):
        self.spinner.stop()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.ctx)


def _ns(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def _wait(pred, timeout, what, proc=None, log=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.05)
    tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}; node log tail:\n{tail}")


def _publish_until(done, publish, what, proc=None, log=None, period=0.2, timeout=60):
    """Call ``publish()`` every ``period`` s (a camera's frame rate) until ``done()``."""
    end = time.monotonic() + timeout
    while not done():
        if time.monotonic() > end or (proc is not None and proc.poll() is not None):
            tail = log.read_text()[-3000:] if log is not None else ""
            raise AssertionError(f"timed out waiting for {what}; node log tail:\n{tail}")
        publish()
        time.sleep(period)


def _default_ready(n) -> bool:
    return n.count_publishers("/hands/mesh") > 0 and n.count_subscribers("/image") >= 2 \
        and n.count_subscribers("/camera_info") >= 2


def _matched(listener) -> bool:
    """Every subscription the graph shows on /image and /camera_info is matched by the
    listener's publishers (its own subscriptions count too). Graph discovery alone is not
    enough: a sample published before the writer matched the node's reader reaches it only
    on a later heartbeat, seconds late (seen: a first CameraInfo later than
    camera_info_timeout, its image already given up)."""
    pubs = (listener.image_pub, listener.info_pub)
    return all(p.get_subscription_count() >= listener.node.count_subscribers(p.topic_name) for p in pubs)


@contextlib.contextmanager
def node_process(log: Path, *params: str, ready_timeout: float = 90, ready=_default_ready, ros_args=(),
                 standins=None):
    """(listener, node process, env, log): ``python -m hand_mesh_ros.node`` with ``-p`` values
    ``params`` (and further ``ros_args``, e.g. remappings) as its own process in this test
    process's loopback domain, ready (``ready(listener node)``: its topics on the graph, and
    ``_matched``) on entry, stopped on exit. ``standins``: True / False sets ``HAND_MESH_ROS_STANDINS`` for the
    node (stand-ins / real packages), None keeps this process's environment."""
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1")
    if standins is not None:
        env[STANDINS] = "1" if standins else "0"
    listener = Listener(DOMAIN_ID)
    args = [a for p in params for a in ("-p", p)]
    with open(log, "w") as fh:
        proc = subprocess.Popen([PY, "-m", "hand_mesh_ros.node", "--ros-args", *args, *ros_args,
                                 "--log-level", "hand_mesh_node:=info"],
                                env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        n = listener.node
        _wait(lambda: ready(n) and _matched(listener), ready_timeout, "the node's topics", proc, log)
        yield listener, proc, env, log
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        listener.close()


#: the node's start-up line, per ``ros_packages`` / ``HAND_MESH_ROS_STANDINS`` choice
VIA = {"real": "sync via message_filters, tf via tf2_ros, /diagnostics via diagnostic_updater",
       "standin": "sync via StampPairSynchronizer, tf via TFMessage publisher, /diagnostics via DiagnosticArray publisher"}


def via_of(node) -> str:
    """What an in-process node uses, as its ready line says it (``VIA``)."""
    return f"sync via {node.sync_via}, tf via {node.outputs.tf.via}, /diagnostics via {node._diag_pub.via}"


@pytest.fixture(scope="class", params=["real", "standin"])
def graph(request, tmp_path_factory):
    """(listener, node process, env, node log): the node runs as its own process, with the
    real message_filters / tf2_ros / diagnostic_updater or with its stand-ins; stopped after
    the class's last test."""
    if request.param == "real":
        from conftest import require_ros2_tools
        require_ros2_tools()
    # reliable: best-effort readers lose most large frames over Fast DDS here
    # (see node.RELIABLE_INPUT_QOS)
    log = tmp_path_factory.mktemp("node") / "node.log"
    with node_process(log, "publish_faces:=true", "sync_slop:=0.02", "input_reliability:=reliable",
                      standins=request.param == "standin") as g:
        _wait(lambda: "ready:" in log.read_text(), 30, "the node's ready line", g[1], log)
        assert VIA[request.param] in log.read_text()
        yield g


def _run_camera(env, *args, timeout=90, subscribers=2):
    r = subprocess.run([PY, "-m", "hand_mesh_ros.ros.camera_publisher", *map(str, args),
                        "--wait-subscribers", str(subscribers), "--wait-timeout", "30"],
                       env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    assert r.returncode == 0, r.stdout + r.stderr


def _snapshot(listener, after_ns):
    with listener.lock:
        imgs = [m for m in listener.images if _ns(m.header.stamp) > after_ns]
        meshes = [m for m in listener.meshes if _ns(m.header.stamp) > after_ns]
        markers = [m for m in listener.markers if _ns(m.markers[0].header.stamp) > after_ns]
        tfs = [t for m in listener.tf for t in m.transforms if _ns(t.header.stamp) > after_ns]
    return imgs, meshes, markers, tfs


def _wait_for_result_of(listener, stamp_ns, proc, log, timeout=60):
    _wait(lambda: any(_ns(m.header.stamp) == stamp_ns for m in list(listener.meshes)),
          timeout, "the HandMeshArray of the last published image", proc, log)


def _wait_for_tf_of(listener, stamp_ns, proc, log, timeout=30):
    """Until the /tf of the frame stamped ``stamp_ns`` is in: the node sends it after the
    frame's HandMeshArray, on another topic, so on a loaded machine it can arrive later."""
    _wait(lambda: any(_ns(t.header.stamp) == stamp_ns for m in list(listener.tf) for t in m.transforms),
          timeout, "the /tf of the last result", proc, log)


def _check_hand_geometry(h, faces=True, source=1, log=None):
    v = np.asarray(h.vertices, np.float32).reshape(-1, 3)
    j = np.asarray(h.joints, np.float32).reshape(21, 3)
    assert v.shape[0] > 100 and np.isfinite(v).all() and (v[:, 2] > 0).all()
    assert np.isfinite(j).all() and (j[:, 2] > 0).all()
    if faces:
        f = np.asarray(h.faces).reshape(-1, 3)
        assert f.shape[0] > 100 and f.max() < v.shape[0]
    q = h.wrist_pose.orientation
    assert math.isclose(q.x ** 2 + q.y ** 2 + q.z ** 2 + q.w ** 2, 1.0, rel_tol=1e-4)
    assert h.translation_source == source and h.hand_model in ("mano", "builtin"), \
        (h.translation_source, h.hand_model, log.read_text()[-3000:] if log is not None else "")


def _skipped_total(listener, reason: str, camera: str = "camera /image") -> int:
    """The node's count of frames skipped for ``reason`` in its latest /diagnostics."""
    with listener.lock:
        arrays = list(listener.diagnostics)
    for arr in reversed(arrays):
        for st in arr.status:
            if st.name.endswith(camera):
                return int({kv.key: kv.value for kv in st.values}.get(f"skipped {reason}", 0))
    return 0


class TestNodeProcess:
    """The node as its own process, once with the real ROS 2 packages and once with the
    stand-ins (``graph``'s parameter); its node is stopped after the class's last test."""

    def test_video_right_hand_end_to_end(self, graph, hands_data):
        listener, proc, env, log = graph
        t0 = time.time_ns()
        video = hands_data / "mediapipe_samples" / "hand_landmarker_test_video.mp4"
        _run_camera(env, video, "--rate", 5, "--max-frames", 8, "--frame-id", FRAME)
        _wait(lambda: len(_snapshot(listener, t0)[0]) >= 8, 10, "the 8 images at the listener")
        imgs, *_ = _snapshot(listener, t0)
        assert len(imgs) == 8
        _wait_for_result_of(listener, _ns(imgs[-1].header.stamp), proc, log)
        # markers are published after the mesh of the same frame
        _wait(lambda: len(_snapshot(listener, t0)[2]) >= len(_snapshot(listener, t0)[1]), 10, "the last markers",
              proc, log)
        _wait_for_tf_of(listener, _ns(_snapshot(listener, t0)[1][-1].header.stamp), proc, log)
        imgs, meshes, markers, tfs = _snapshot(listener, t0)
        img_stamps = {_ns(m.header.stamp) for m in imgs}
        assert meshes, "no HandMeshArray"
        for m in meshes:
            assert _ns(m.header.stamp) in img_stamps and m.header.frame_id == FRAME
            assert len(m.hands) == 1, [h.side for h in m.hands]
            h = m.hands[0]
            assert h.side == RIGHT and 0.5 <= h.score <= 1.0
            assert _ns(h.header.stamp) == _ns(m.header.stamp) and h.header.frame_id == FRAME
            _check_hand_geometry(h)
            u, v = np.asarray(h.keypoints_2d).reshape(21, 2).T
            assert (u >= -50).all() and (u < 690).all() and (v >= -50).all() and (v < 410).all()
        assert {_ns(m.markers[0].header.stamp) for m in markers} == {_ns(m.header.stamp) for m in meshes}
        for ma in markers:
            assert ma.markers[0].action == 3  # DELETEALL first
            assert {mk.ns for mk in ma.markers[1:]} == {"hand_mesh", "hand_joints", "hand_skeleton", "hand_label"}
            assert ma.markers[1].header.frame_id == FRAME
        names = {t.child_frame_id for t in tfs}
        assert names == {f"hand_right/{j}" for j in JOINT_NAMES}
        assert all(_ns(t.header.stamp) in img_stamps and t.header.frame_id == FRAME for t in tfs)
        last = [t for t in tfs if _ns(t.header.stamp) == _ns(meshes[-1].header.stamp)]
        wrist = next(t for t in last if t.child_frame_id == "hand_right/wrist").transform.translation
        np.testing.assert_allclose([wrist.x, wrist.y, wrist.z], np.asarray(meshes[-1].hands[0].joints)[:3], rtol=1e-5)
        assert proc.poll() is None


    def test_still_images(self, graph, hands_data, tmp_path):
        listener, proc, env, log = graph
        src = hands_data / "mediapipe_samples"
        shutil.copy(src / "thumbs-up.png", tmp_path / "1_thumbs-up.png")
        shutil.copy(src / "hand_landmarker_test_image.jpg", tmp_path / "2_test_image.jpg")
        t0 = time.time_ns()
        # bgr8 on the wire this time; one image at a time, each result awaited: none is dropped
        for image in sorted(tmp_path.iterdir()):
            t_sent = time.time_ns()
            _run_camera(env, image, "--encoding", "bgr8", "--frame-id", FRAME)
            _wait(lambda: _snapshot(listener, t_sent)[0], 10, f"{image.name} at the listener")
            sent, *_ = _snapshot(listener, t_sent)
            assert len(sent) == 1
            _wait_for_result_of(listener, _ns(sent[0].header.stamp), proc, log)
        imgs, meshes, _, _ = _snapshot(listener, t0)
        assert [(m.width, m.height, m.encoding) for m in imgs] == [(1920, 1280, "bgr8"), (640, 427, "bgr8")]
        by_stamp = {_ns(m.header.stamp): m for m in meshes}
        thumbs, two = (by_stamp.get(_ns(i.header.stamp)) for i in imgs)
        assert thumbs is not None and len(thumbs.hands) == 1
        assert two is not None and 1 <= len(two.hands) <= 2
        for m in (thumbs, two):
            for h in m.hands:
                _check_hand_geometry(h, log=log)


    def test_no_hand_and_bad_messages_keep_the_node_alive(self, graph):
        listener, proc, env, log = graph
        n = listener.node
        rgb = np.random.default_rng(7).integers(0, 256, (240, 320, 3), dtype=np.uint8)
        base = time.time_ns()
        cases = [("yuv422", 320, 240, 500.0), ("rgb8", 640, 480, 500.0), ("rgb8", 320, 240, float("nan"))]
        bad_stamps = []
        reasons = ["unsupported_encoding", "bad_camera_info", "bad_camera_info"]
        for k, (enc, w, h, fx) in enumerate(cases):
            img = _img_msg(rgb, base + k * 10_000_000, enc)
            listener.image_pub.publish(img)
            listener.info_pub.publish(camera_info_msg(w, h, img.header, fx=fx, fy=500.0))
            bad_stamps.append(_ns(img.header.stamp))
            # one at a time (a frame waiting would be replaced by the next): skipped and counted
            count = reasons[:k + 1].count(reasons[k])
            _wait(lambda: _skipped_total(listener, reasons[k]) >= count, 30,
                  f"/diagnostics counting frame {k} as skipped ({reasons[k]})", proc, log)
        noise = _img_msg(rgb, base + 100_000_000)
        listener.image_pub.publish(noise)
        listener.info_pub.publish(camera_info_msg(320, 240, noise.header))
        _wait_for_result_of(listener, _ns(noise.header.stamp), proc, log, timeout=30)
        _, meshes, markers, _ = _snapshot(listener, base - 1)
        assert not [m for m in meshes if _ns(m.header.stamp) in bad_stamps]
        result = next(m for m in meshes if _ns(m.header.stamp) == _ns(noise.header.stamp))
        assert result.hands == [] and result.header.frame_id == FRAME
        _wait(lambda: any(_ns(m.markers[0].header.stamp) == _ns(noise.header.stamp) for m in list(listener.markers)),
              5, "markers of the empty frame")
        empty_markers = next(m for m in list(listener.markers)
                             if _ns(m.markers[0].header.stamp) == _ns(noise.header.stamp))
        assert [mk.action for mk in empty_markers.markers] == [3]
        assert proc.poll() is None
        assert "skipping a frame" in log.read_text()
        assert n.count_publishers("/hands/mesh") == 1



def test_node_shuts_down_cleanly_on_sigint(tmp_path, hand_rgb_small):
    """SIGINT (Ctrl-C) after a processed frame: the worker is joined, the node says what it
    did, exit code 0, no traceback."""
    with node_process(tmp_path / "node.log", "input_reliability:=reliable") as (listener, proc, env, log):
        img = _img_msg(hand_rgb_small, time.time_ns())
        listener.image_pub.publish(img)
        listener.info_pub.publish(camera_info_msg(img.width, img.height, img.header))
        _wait_for_result_of(listener, _ns(img.header.stamp), proc, log)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, log.read_text()[-3000:]
        text = log.read_text()
        assert "stopped: {" in text and "Traceback" not in text, text[-3000:]


@pytest.fixture
def hand_rgb_small():
    """Random pixels, 320x240 RGB (no hand: the pipeline's answer is an empty list)."""
    return np.random.default_rng(11).integers(0, 256, (240, 320, 3), dtype=np.uint8)


# ------------------------------------------------------------------ in-process graph
class InProcess:
    """HandMeshNode and a test node sharing one private context and executor."""

    def __init__(self, overrides, args=()):
        from hand_mesh_msgs.msg import HandMeshArray
        from tf2_msgs.msg import TFMessage

        self.ctx = rclpy.context.Context()
        _init(self.ctx, args)
        self.node = node_mod.HandMeshNode(context=self.ctx, parameter_overrides=overrides)
        self.test = rclpy.create_node("in_process_test", context=self.ctx)
        self.meshes, self.overlays, self.tf = [], [], []
        rel = QoSProfile(depth=50)
        self.test.create_subscription(HandMeshArray, "/hands/mesh", self.meshes.append, rel)
        self.test.create_subscription(Image, "/hands/overlay", self.overlays.append, rel)
        self.test.create_subscription(TFMessage, "/tf", self.tf.append, rel)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self.executor.add_node(self.test)
        self.spinner = ExecutorThread(self.executor, self.node.get_logger(), context=self.ctx).start()

    def publisher(self, msg_type, topic):
        # best-effort publisher, as a camera driver with sensor-data QoS
        from rclpy.qos import qos_profile_sensor_data
        pub = self.test.create_publisher(msg_type, topic, qos_profile_sensor_data)
        _wait(lambda: pub.get_subscription_count() >= 1, 10, f"the node's subscription on {topic}")
        return pub

    def close(self):
        self.spinner.stop()
        self.node.destroy_node()
        self.test.destroy_node()
        rclpy.try_shutdown(context=self.ctx)


def test_two_cameras_best_effort_batched():
    """Default sensor-data (best-effort) QoS, two cameras from image_topics, one node."""
    g = InProcess([Parameter("image_topics", value=["/camA/image_raw", "/camB/color/image_raw"])])
    try:
        assert g.node.params.input_reliability == "best_effort"
        pubs = {cam: (g.publisher(Image, f"{ns}/image_raw"), g.publisher(CameraInfo, f"{ns}/camera_info"))
                for cam, ns in (("A", "/camA"), ("B", "/camB/color"))}
        rng = np.random.default_rng(3)
        sent = {}

        def publish():  # best effort: a frame may be lost, the next one comes 0.2 s later
            for cam, (ipub, cpub) in pubs.items():
                img = _img_msg(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8), time.time_ns())
                img.header.frame_id = f"{cam}_optical"
                sent.setdefault(cam, set()).add(_ns(img.header.stamp))
                ipub.publish(img)
                cpub.publish(camera_info_msg(80, 60, img.header))
        _publish_until(lambda: {m.header.frame_id for m in list(g.meshes)} >= {"A_optical", "B_optical"},
                       publish, "results of both cameras")
        meshes = list(g.meshes)
        assert {m.header.frame_id for m in meshes} == {"A_optical", "B_optical"}
        for m in meshes:
            assert _ns(m.header.stamp) in sent[m.header.frame_id[0]] and m.hands == []
        assert g.node.stats["processed"] == len(meshes) and g.node.stats["skipped"] == 0
    finally:
        g.close()


def test_assumed_intrinsics_overlay_and_tf_prefix(hands_data, monkeypatch):
    """use_camera_info false: images only, TRANSLATION_ASSUMED; overlay; custom tf_prefix;
    no markers built while nobody subscribes to them."""
    import cv2

    built = []
    real_marker_array = publishers_mod.messages.marker_array
    monkeypatch.setattr(publishers_mod.messages, "marker_array", lambda *a: built.append(1) or real_marker_array(*a))
    g = InProcess([Parameter("use_camera_info", value=False), Parameter("publish_overlay", value=True),
                   Parameter("tf_prefix", value="h_")])
    try:
        bgr = cv2.imread(str(hands_data / "mediapipe_samples" / "thumbs-up.png"))
        rgb = np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)[::2, ::2])  # 960x640
        pub = g.publisher(Image, "/image")
        img = _img_msg(rgb, time.time_ns())
        pub.publish(img)
        _wait(lambda: len(g.meshes) >= 1 and len(g.overlays) >= 1, 30, "mesh and overlay")
        m = g.meshes[0]
        assert _ns(m.header.stamp) == _ns(img.header.stamp) and len(m.hands) == 1
        _check_hand_geometry(m.hands[0], faces=False, source=0)
        ov = g.overlays[0]
        assert (ov.width, ov.height, ov.encoding) == (960, 640, "rgb8")
        assert _ns(ov.header.stamp) == _ns(img.header.stamp) and ov.header.frame_id == FRAME
        assert bytes(ov.data) != bytes(img.data)  # the hand was drawn
        _wait(lambda: len(g.tf) >= 1, 5, "/tf")
        names = {t.child_frame_id for t in g.tf[0].transforms}
        side = "right" if m.hands[0].side == RIGHT else "left"
        assert names == {f"h_{side}/{j}" for j in JOINT_NAMES}
        assert g.node.params.publish_markers and built == []
    finally:
        g.close()


def test_latest_frame_wins_and_drops_are_counted(ctx):
    """With the worker busy (here: stopped), a newer frame replaces the pending one."""
    _init(ctx)
    n = node_mod.HandMeshNode(context=ctx)
    try:
        n._stop_worker()
        assert not n._worker.is_alive()
        rgb = np.zeros((48, 64, 3), np.uint8)
        frames = [_img_msg(rgb, (k + 1) * 1e9) for k in range(3)]
        for f in frames:  # as the synchronizer delivers them: the pair first, then the image
            n.streams["image"].on_pair(f, camera_info_msg(64, 48, f.header))
            n.streams["image"].on_image(f)
        assert n.stats["received"] == 3 and n.stats["dropped"] == 2 and n.stats["in_flight"] == 1
        assert n.frames.take(0)["image"].image is frames[-1]
    finally:
        n.destroy_node()


def test_camera_publisher_options(tmp_path):
    import cv2

    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    r = subprocess.run([PY, "-m", "hand_mesh_ros.ros.camera_publisher", str(tmp_path / "missing.mp4")],
                       env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "input not found" in r.stderr
    for k in range(2):
        cv2.imwrite(str(tmp_path / f"{k}.png"), np.full((30, 40, 3), 50 * k, np.uint8))
    ctx = rclpy.context.Context()
    rclpy.init(args=["t"], context=ctx, domain_id=DOMAIN_ID)
    n = rclpy.create_node("cam_pub_test", context=ctx)
    images, infos = [], []
    n.create_subscription(Image, "/image", images.append, QoSProfile(depth=50))
    n.create_subscription(CameraInfo, "/camera_info", infos.append, QoSProfile(depth=50))
    ex = rclpy.executors.SingleThreadedExecutor(context=ctx)
    ex.add_node(n)
    th = threading.Thread(target=ex.spin, daemon=True)
    th.start()
    try:
        _run_camera(env, tmp_path, "--loop", "--max-frames", 5, "--rate", 20, "--fx", 500, "--cy", 10,
                    subscribers=1)
        _wait(lambda: len(images) == 5 and len(infos) == 5, 5, "5 images and infos")
        assert [int(np.frombuffer(bytes(m.data), np.uint8)[0]) for m in images] == [0, 50, 0, 50, 0]
        f_default = 0.5 * 40 / np.tan(np.deg2rad(60) / 2)
        for img, info in zip(images, infos):
            assert img.header == info.header and img.header.frame_id == "camera_color_optical_frame"
            assert (info.width, info.height) == (40, 30)
            assert list(info.k) == pytest.approx([500, 0, 20, 0, f_default, 10, 0, 0, 1])
        _run_camera(env, tmp_path / "1.png", "--no-camera-info", "--encoding", "bgr8", subscribers=1)
        _wait(lambda: len(images) == 6, 5, "one more image")
        assert len(infos) == 5 and images[-1].encoding == "bgr8"
    finally:
        ex.shutdown(timeout_sec=2)
        n.destroy_node()
        rclpy.try_shutdown(context=ctx)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_camera_publisher_stops_cleanly_on_ctrl_c(tmp_path, sig):
    """Ctrl-C (SIGINT; and SIGTERM, which launch sends after it) while frames stream: exit
    code 0, the count of frames published, no traceback. (rclpy's own handler used to shut
    the context down under the running loop: "publisher's context is invalid", exit 1.)"""
    import cv2

    for k in range(10):  # several frames per pass: the loop is mid-pass when the signal comes
        cv2.imwrite(str(tmp_path / f"{k}.png"), np.full((30, 40, 3), 20 * k, np.uint8))
    ctx = rclpy.context.Context()
    rclpy.init(args=["t"], context=ctx, domain_id=DOMAIN_ID)
    n = rclpy.create_node("cam_pub_sigint_test", context=ctx)
    images = []
    n.create_subscription(Image, "/image", images.append, QoSProfile(depth=50))
    ex = rclpy.executors.SingleThreadedExecutor(context=ctx)
    ex.add_node(n)
    th = threading.Thread(target=ex.spin, daemon=True)
    th.start()
    proc = subprocess.Popen([PY, "-m", "hand_mesh_ros.ros.camera_publisher", str(tmp_path), "--loop",
                             "--rate", "50", "--no-camera-info"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    try:
        _wait(lambda: len(images) >= 5, 60, "frames from camera_publisher", proc)
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out
        assert "Traceback" not in out and "interrupted: published" in out, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        ex.shutdown(timeout_sec=2)
        n.destroy_node()
        rclpy.try_shutdown(context=ctx)
