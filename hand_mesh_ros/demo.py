"""End-to-end demo on a real ROS 2 graph: video -> camera topic -> hand-mesh node -> recorder.

Usage::

    python -m hand_mesh_ros.demo --input VIDEO|IMAGE|FOLDER [--rate HZ] [--duration S]
    hand_mesh_demo --input ...            # console script
    make demo                              # on mediapipe_samples/hand_landmarker_test_video.mp4

Processes (all on loopback: ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``, and a private
``ROS_DOMAIN_ID`` chosen here unless the environment sets one):

1. the node, ``python -m hand_mesh_ros.node`` (child process);
2. in this process, a recorder subscribing ``/hands/mesh`` (``hand_mesh_msgs/HandMeshArray``)
   and ``/camera_info`` (to count the frames the camera sent, and their stamps);
3. once the node is ready (its ``/hands/mesh`` publisher and ``/image`` subscription are on
   the graph), the camera publisher, ``python -m hand_mesh_ros.ros.camera_publisher`` (child
   process), which streams the input as ``image`` + ``camera_info`` stamped with its wall
   clock at send time and exits after the last frame.

When the publisher has exited (or ``--duration`` is over) and no result has arrived for
``--drain`` seconds, the children are stopped (SIGINT, then SIGTERM, then SIGKILL; also on
Ctrl-C or SIGTERM) and a summary is printed: frames sent / received, hands-per-frame
histogram, side counts, processing FPS, and image -> mesh latency p50 / p99 (receive wall
time minus the image header stamp; publisher and recorder share this machine's clock).
The children's output goes to log files whose paths are printed.

Exit status: 0 when at least one result arrived, 1 otherwise or when a child failed,
2 for a missing input.
"""
from __future__ import annotations

import argparse
import collections
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

MESH_TOPIC = "/hands/mesh"


class Children:
    """Child processes in their own sessions (so a terminal Ctrl-C reaches only the demo,
    which then stops them in order), with output to log files."""

    def __init__(self, log_dir: Path, env: Dict[str, str]):
        self.log_dir = log_dir
        self.env = env
        self.procs: Dict[str, subprocess.Popen] = {}
        self._logs = {}

    def start(self, name: str, cmd: List[str]) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "wb")
        self._logs[name] = log
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        self.procs[name] = proc
        return proc

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def log_tail(self, name: str, n: int = 15) -> str:
        try:
            lines = self.log_path(name).read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def stop(self, name: str, timeout_s: float = 5.0) -> Optional[int]:
        """SIGINT, then SIGTERM, then SIGKILL (each after ``timeout_s``); returns the exit code."""
        proc = self.procs.get(name)
        if proc is None:
            return None
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if proc.poll() is not None:
                break
            try:
                proc.send_signal(sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                continue
        log = self._logs.pop(name, None)
        if log is not None:
            log.close()
        return proc.poll()

    def stop_all(self) -> None:
        for name in reversed(list(self.procs)):  # publisher first, node last
            self.stop(name)


class Recorder:
    """Collects ``/hands/mesh`` results and ``/camera_info`` stamps (ROS node in this process)."""

    def __init__(self, rclpy_node):
        from sensor_msgs.msg import CameraInfo
        from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy

        self.node = rclpy_node
        self.recv_wall: List[float] = []
        self.stamps: List[float] = []
        self.hands_per_frame: collections.Counter = collections.Counter()
        self.sides: collections.Counter = collections.Counter()
        self.info_stamps: set = set()
        self._mesh_sub = None
        best_effort = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                                 reliability=ReliabilityPolicy.BEST_EFFORT)
        self._info_sub = rclpy_node.create_subscription(CameraInfo, "/camera_info", self._on_info, best_effort)

    def subscribe_mesh(self) -> None:
        """Subscribe ``/hands/mesh`` with the reliability its publisher offers (call when it exists)."""
        from hand_mesh_msgs.msg import HandMeshArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy

        infos = self.node.get_publishers_info_by_topic(MESH_TOPIC)
        reliability = ReliabilityPolicy.RELIABLE
        if infos and infos[0].qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT:
            reliability = ReliabilityPolicy.BEST_EFFORT
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=reliability)
        self._mesh_sub = self.node.create_subscription(HandMeshArray, MESH_TOPIC, self._on_mesh, qos)

    def _on_info(self, msg) -> None:
        self.info_stamps.add((msg.header.stamp.sec, msg.header.stamp.nanosec))

    def _on_mesh(self, msg) -> None:
        now = time.time()
        self.recv_wall.append(now)
        self.stamps.append(msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec)
        self.hands_per_frame[len(msg.hands)] += 1
        for h in msg.hands:
            self.sides["right" if h.side == 1 else "left"] += 1

    @property
    def received(self) -> int:
        return len(self.recv_wall)


def _graph_ready(node, image_topic: str) -> bool:
    return node.count_publishers(MESH_TOPIC) > 0 and node.count_subscribers(image_topic) > 0


def format_summary(rec: Recorder, sent: Optional[int], domain_id: str, input_path: str) -> str:
    """Human-readable summary of a recorded run (one line per figure)."""
    lines = [f"hand_mesh_demo summary (input: {input_path}, ROS_DOMAIN_ID={domain_id})"]
    sent_txt = "unknown" if sent is None else str(sent)
    lines.append(f"  frames sent:       {sent_txt} (distinct camera_info stamps seen: {len(rec.info_stamps)})")
    lines.append(f"  frames received:   {rec.received} on {MESH_TOPIC}")
    hist = " ".join(f"{k}:{v}" for k, v in sorted(rec.hands_per_frame.items())) or "-"
    lines.append(f"  hands per frame:   {hist}   (hands:frames)")
    lines.append(f"  sides:             right={rec.sides.get('right', 0)} left={rec.sides.get('left', 0)}")
    if rec.received >= 2:
        span = rec.recv_wall[-1] - rec.recv_wall[0]
        fps = (rec.received - 1) / span if span > 0 else float("nan")
        lines.append(f"  processing FPS:    {fps:.1f} (results / span of their receive times, {span:.1f} s)")
    if rec.received:
        lat = (np.asarray(rec.recv_wall) - np.asarray(rec.stamps)) * 1e3
        p50, p99 = np.percentile(lat, [50, 99])
        lines.append(f"  latency image->mesh [ms]: p50={p50:.1f} p99={p99:.1f} (mean={lat.mean():.1f}, "
                     f"min={lat.min():.1f}, max={lat.max():.1f})")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hand_mesh_demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--input", required=True, help="video file, image file or folder of images")
    p.add_argument("--rate", type=float, default=None,
                   help="publish rate [Hz] (default: the publisher's default, e.g. the video's rate)")
    p.add_argument("--duration", type=float, default=None, help="stop streaming after this many seconds")
    p.add_argument("--drain", type=float, default=3.0,
                   help="after the publisher is done, wait until no result arrived for this long [s]")
    p.add_argument("--ready-timeout", type=float, default=120.0, help="max wait for the node to start [s]")
    p.add_argument("--image-topic", default="/image", help="the node's image topic (graph readiness check)")
    p.add_argument("--log-dir", default=None, help="where the children's logs go (default: a temp folder)")
    p.add_argument("--node-arg", action="append", default=[],
                   help="extra argument for the node (repeatable), e.g. --node-arg=--ros-args ...")
    p.add_argument("--publisher-arg", action="append", default=[],
                   help="extra argument for the camera publisher (repeatable)")
    return p


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _parse_sent(log_text: str) -> Optional[int]:
    """Frames the publisher reports as sent (its last log line "published N frame(s) ..."), if any."""
    import re

    m = re.findall(r"published (\d+) frame", log_text)
    return int(m[-1]) if m else None


def main(argv: Optional[List[str]] = None) -> int:
    """Console-script entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    if not Path(args.input).exists():
        print(f"hand_mesh_demo: error: input not found: {args.input}", file=sys.stderr)
        return 2
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.setdefault("ROS_DOMAIN_ID", str(40 + os.getpid() % 60))
    domain_id = os.environ["ROS_DOMAIN_ID"]
    log_dir = Path(args.log_dir) if args.log_dir else Path(tempfile.mkdtemp(prefix="hand_mesh_demo_"))
    log_dir.mkdir(parents=True, exist_ok=True)
    children = Children(log_dir, dict(os.environ))
    signal.signal(signal.SIGTERM, _raise_interrupt)

    import rclpy

    rclpy.init()
    node = rclpy.create_node("hand_mesh_demo_recorder")
    rec = Recorder(node)
    status = 1
    sent: Optional[int] = None
    try:
        print(f"[demo] ROS_DOMAIN_ID={domain_id}, loopback only; logs in {log_dir}", flush=True)
        # The camera publisher sends reliably; a reliable depth-1 input queue loses no DDS
        # fragments of large images (see node.RELIABLE_INPUT_QOS) and still drops old frames.
        node_cmd = [sys.executable, "-m", "hand_mesh_ros.node",
                    "--ros-args", "-p", "input_reliability:=reliable", *args.node_arg]
        node_proc = children.start("node", node_cmd)
        t0 = time.monotonic()
        while not _graph_ready(node, args.image_topic):
            rclpy.spin_once(node, timeout_sec=0.1)
            if node_proc.poll() is not None:
                print(f"[demo] the node exited with {node_proc.returncode} before it was ready:\n"
                      f"{children.log_tail('node')}", file=sys.stderr)
                return 1
            if time.monotonic() - t0 > args.ready_timeout:
                print(f"[demo] the node was not ready after {args.ready_timeout:.0f} s "
                      f"(no {MESH_TOPIC} publisher / {args.image_topic} subscription); log:\n"
                      f"{children.log_tail('node')}", file=sys.stderr)
                return 1
        print(f"[demo] node ready after {time.monotonic() - t0:.1f} s; starting the camera publisher", flush=True)
        rec.subscribe_mesh()
        pub_cmd = [sys.executable, "-m", "hand_mesh_ros.ros.camera_publisher", str(args.input)]
        if args.rate is not None:
            pub_cmd += ["--rate", str(args.rate)]
        pub_cmd += args.publisher_arg
        pub_proc = children.start("publisher", pub_cmd)
        t_stream = time.monotonic()
        last_progress = t_stream
        while pub_proc.poll() is None:
            rclpy.spin_once(node, timeout_sec=0.05)
            now = time.monotonic()
            if args.duration is not None and now - t_stream > args.duration:
                print(f"[demo] --duration {args.duration} s reached; stopping the publisher", flush=True)
                children.stop("publisher")
                break
            if node_proc.poll() is not None:
                print(f"[demo] the node exited with {node_proc.returncode}:\n{children.log_tail('node')}",
                      file=sys.stderr)
                break
            if now - last_progress > 2.0:
                print(f"[demo] streaming: {len(rec.info_stamps)} frames sent, {rec.received} results", flush=True)
                last_progress = now
        if pub_proc.returncode not in (0, None, -signal.SIGINT) and args.duration is None:
            print(f"[demo] the camera publisher exited with {pub_proc.returncode}:\n"
                  f"{children.log_tail('publisher')}", file=sys.stderr)
        # Drain: results still in flight.
        last_n, last_change = rec.received, time.monotonic()
        while time.monotonic() - last_change < args.drain and node_proc.poll() is None:
            rclpy.spin_once(node, timeout_sec=0.05)
            if rec.received != last_n:
                last_n, last_change = rec.received, time.monotonic()
        status = 0 if rec.received > 0 else 1
    except KeyboardInterrupt:
        print("[demo] interrupted; stopping the children", file=sys.stderr)
        status = 130
    finally:
        children.stop_all()
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    try:
        sent = _parse_sent(children.log_path("publisher").read_text(errors="replace"))
    except OSError:
        sent = None
    if sent is None and rec.info_stamps:
        sent = len(rec.info_stamps)
    print(format_summary(rec, sent, domain_id, str(args.input)), flush=True)
    print(f"[demo] logs: {children.log_path('node')} {children.log_path('publisher')}")
    return status


if __name__ == "__main__":
    sys.exit(main())
