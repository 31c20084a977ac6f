"""The ROS 2 install path: ``colcon build`` of both packages, then the installed layout.

colcon does not look inside a package's folder for more packages, and this repository's
root is the ament_python package, so the README's command names hand_mesh_msgs' folder as
a second base path. This test runs exactly that command in a fresh workspace (using the
pip ROS 2 prefix of the venv in place of /opt/ros) and checks what ``ros2 launch`` and
``ros2 run`` need: the console scripts in lib/hand_mesh_ros, the launch and config files in
share/hand_mesh_ros, the ament index marker, and importable generated messages.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)


@pytest.fixture(scope="module")
def colcon_ws(tmp_path_factory):
    colcon = shutil.which("colcon", path=str(VENV / "bin"))
    if colcon is None:
        pytest.skip("colcon not installed in this environment (make test installs it)")
    ws = tmp_path_factory.mktemp("ws")
    src = ws / "src" / "hand_mesh_ros"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".venv", ".git", "build", "install", "log",
                                                              "__pycache__", "*.egg-info", "out"))
    env = dict(os.environ, AMENT_PREFIX_PATH=str(VENV), CMAKE_PREFIX_PATH=str(VENV))
    env.pop("_ROS_WHEELS_BOOTSTRAP_COMPLETE", None)
    cmd = [colcon, "build", "--base-paths", "src", "src/hand_mesh_ros/hand_mesh_msgs",
           "--cmake-args", f"-DPython3_EXECUTABLE={VENV / 'bin' / 'python'}", "-DBUILD_TESTING=OFF"]
    proc = subprocess.run(cmd, cwd=ws, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "2 packages finished" in proc.stdout, proc.stdout
    return ws / "install"


def test_plain_base_path_misses_nested_msgs_package(colcon_ws):
    """Why the README's command has two base paths (guards the documented reason)."""
    ws = colcon_ws.parent
    out = subprocess.run([shutil.which("colcon", path=str(VENV / "bin")), "list", "--names-only"],
                         cwd=ws, capture_output=True, text=True, timeout=60).stdout.split()
    assert out == ["hand_mesh_ros"]


def test_installed_layout(colcon_ws):
    share = colcon_ws / "hand_mesh_ros" / "share" / "hand_mesh_ros"
    for rel in ["package.xml", "launch/hands.launch.py", "config/hands.yaml", "config/hands.rviz",
                "config/fastdds_large_images.xml"]:
        assert (share / rel).is_file(), rel
    lib = colcon_ws / "hand_mesh_ros" / "lib" / "hand_mesh_ros"
    for exe in ["hand_mesh_node", "camera_publisher", "hand-mesh", "hand_mesh_demo"]:
        assert (lib / exe).is_file(), f"ros2 run hand_mesh_ros {exe} needs {lib / exe}"
    assert (colcon_ws / "hand_mesh_ros" / "share" / "ament_index" / "resource_index" / "packages" / "hand_mesh_ros").is_file()
    msgs_py = list((colcon_ws / "hand_mesh_msgs").glob("lib/python3*/site-packages/hand_mesh_msgs/msg/_hand_mesh.py"))
    assert msgs_py, "generated Python messages missing"


def test_installed_node_finds_the_fast_dds_profile(colcon_ws):
    """With the install's ament prefix (as ``source install/setup.bash`` sets it), the node's
    profile lookup (``ros.dds_profile.profile_path``) finds the XML in the install's share."""
    site = next((colcon_ws / "hand_mesh_ros").glob("lib/python3*/site-packages"))
    env = dict(os.environ, AMENT_PREFIX_PATH=f"{colcon_ws / 'hand_mesh_ros'}:{VENV}",
               PYTHONPATH=f"{site}:{os.environ.get('PYTHONPATH', '')}")
    out = subprocess.run([sys.executable, "-c", "from hand_mesh_ros.ros import dds_profile; "
                          "print(dds_profile.profile_path())"], env=env, cwd=colcon_ws,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()) == colcon_ws / "hand_mesh_ros" / "share" / "hand_mesh_ros" / "config" / \
        "fastdds_large_images.xml"
