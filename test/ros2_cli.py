"""Test helpers for the real ROS 2 command line: ``ros2 launch`` / ``ros2 run`` as processes
whose output is watched, and a listener node of the test process.

Every process is started in its own session (process group), as a shell starts a command,
so that :meth:`Started.ctrl_c` sends SIGINT to the group exactly as Ctrl-C in a terminal
does (``ros2 launch`` and its node, ``ros2 run`` and its executable). Waits are on events
(a line in the output, a message received), with generous timeouts.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import DOMAIN_ID, require_ros2_tools

FRAME = "camera_color_optical_frame"


def ros2_command() -> str:
    """The ``ros2`` executable (the venv's, else PATH's); skips when the tools are missing."""
    require_ros2_tools()
    exe = shutil.which("ros2", path=os.pathsep.join([str(Path(sys.prefix) / "bin"), os.environ.get("PATH", "")]))
    if exe is None:
        pytest.skip("no `ros2` command (scripts/setup_env.sh installs it from ../shared/ros2-python)")
    out = subprocess.run([exe, "pkg", "prefix", "hand_mesh_ros"], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        pytest.fail(f"ament does not find hand_mesh_ros (AMENT_PREFIX_PATH: {os.environ.get('AMENT_PREFIX_PATH')}): "
                    f"{out.stderr.strip()}")
    return exe


def wait_until(pred, timeout: float, what: str, proc: "Started" = None):
    """Wait for ``pred()`` (polled every 50 ms); AssertionError naming ``what`` after
    ``timeout`` s or when ``proc`` ended first (its output tail in the message)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.05)
    tail = f"; output of {proc.name}:\n{proc.text()[-4000:]}" if proc is not None else ""
    raise AssertionError(f"timed out waiting for {what}{tail}")


class Started:
    """A command started in its own session, stdout + stderr into ``log``."""

    def __init__(self, name: str, cmd, log: Path, env=None):
        self.name, self.log = name, log
        env = dict(os.environ if env is None else env, PYTHONUNBUFFERED="1")
        with open(log, "w") as fh:
            self.proc = subprocess.Popen([str(c) for c in cmd], stdout=fh, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)

    def text(self) -> str:
        return self.log.read_text()

    def poll(self):
        return self.proc.poll()

    def wait_for_line(self, pattern: str, timeout: float = 120, after: int = 0) -> re.Match:
        """The first match of the regular expression ``pattern`` in the output from character
        ``after`` on, waited for."""
        rx = re.compile(pattern)
        return wait_until(lambda: rx.search(self.text(), after), timeout, f"/{pattern}/ in {self.name}'s output",
                          self)

    def ctrl_c(self, timeout: float = 60) -> int:
        """SIGINT to the process group (Ctrl-C in a terminal); the exit code."""
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout)

    def stop(self):
        """Ctrl-C, and SIGKILL to the group if that did not end it (clean-up after a failure)."""
        if self.proc.poll() is None:
            try:
                self.ctrl_c(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def launch(ros2: str, log: Path, *arguments: str) -> Started:
    """``ros2 launch hand_mesh_ros hands.launch.py <arguments>``."""
    return Started("ros2 launch", [ros2, "launch", "hand_mesh_ros", "hands.launch.py", *arguments], log)


def camera(ros2: str, log: Path, source: Path, image: str, camera_info: str, *options: str) -> Started:
    """``ros2 run hand_mesh_ros camera_publisher <source> --loop`` on the remapped topics."""
    return Started("camera_publisher", [ros2, "run", "hand_mesh_ros", "camera_publisher", source, "--loop",
                                        "--wait-timeout", "120", *options,
                                        "--ros-args", "-r", f"image:={image}", "-r", f"camera_info:={camera_info}"],
                   log)


def ros2_cli(ros2: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``ros2 <args>`` run to its end (never spawning the ros2 daemon)."""
    return subprocess.run([ros2, *args, "--no-daemon"], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, PYTHONUNBUFFERED="1"))


def ros2_graph_cli(ros2: str, *args: str, found=lambda out: out.returncode == 0, timeout: float = 120):
    """``ros2 <args>`` for a command that looks at the graph (``param get``, ``node list``):
    without the daemon each run discovers the graph anew for ``--spin-time`` (1 s here), which
    a loaded machine may not fit in; run again until ``found(result)``, at most ``timeout`` s.
    Returns the last result."""
    end = time.monotonic() + timeout
    while True:
        out = ros2_cli(ros2, *args, "--spin-time", "1", timeout=timeout)
        if found(out) or time.monotonic() > end:
            return out


class Listener:
    """A node of the test process recording /hands/mesh (with receive times) and
    /diagnostics, spun by its own executor thread; ``extra(node)`` may add more (tf2)."""

    def __init__(self, name: str = "launch_test_listener"):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from hand_mesh_msgs.msg import HandMeshArray
        from rclpy.qos import QoSProfile

        from hand_mesh_ros.ros.executor_thread import ExecutorThread

        self.ctx = rclpy.context.Context()
        rclpy.init(args=["listener"], context=self.ctx, domain_id=DOMAIN_ID)
        self.node = rclpy.create_node(name, context=self.ctx)
        self.lock = threading.Lock()
        self.meshes, self.diagnostics = [], []  # (time.time() received, message)
        self.node.create_subscription(HandMeshArray, "/hands/mesh", self._rec(self.meshes), QoSProfile(depth=100))
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._rec(self.diagnostics),
                                      QoSProfile(depth=20))
        self.executor = rclpy.executors.MultiThreadedExecutor(num_threads=2, context=self.ctx)
        self.executor.add_node(self.node)
        self.spinner = ExecutorThread(self.executor, self.node.get_logger(), context=self.ctx).start()

    def _rec(self, store):
        def cb(msg):
            with self.lock:
                store.append((time.time(), msg))
        return cb

    def meshes_since(self, t: float, frame_id: str = None):
        """HandMeshArrays received after wall time ``t`` [s] (of ``frame_id`` if given)."""
        with self.lock:
            return [m for r, m in self.meshes if r > t and (frame_id is None or m.header.frame_id == frame_id)]

    def pipeline_values(self):
        """Key/values of the node's latest ``pipeline`` status on /diagnostics ({} before one)."""
        with self.lock:
            arrays = [a for _, a in self.diagnostics]
        for arr in reversed(arrays):
            for st in arr.status:
                if st.name.endswith(": pipeline"):
                    return {kv.key: kv.value for kv in st.values}
        return {}

    def close(self):
        import rclpy

        self.spinner.stop()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.ctx)
