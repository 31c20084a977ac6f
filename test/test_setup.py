"""The set-up (scripts/setup_env.sh): bad input is one clear line and a non-zero exit before
anything is built; hand_mesh_ros is laid out where ament finds it, as colcon installs it; the
real tf2_msgs, never the project's stand-in, where the real ROS 2 tools are installed."""
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, require_ros2_tools

VENV = Path(sys.prefix)
SCRIPTS = REPO / "scripts"
EXECUTABLES = ("hand_mesh_node", "camera_publisher", "hand-mesh", "hand_mesh_demo")


def _run(cmd, **env):
    e = dict(os.environ, **env)
    e.pop("_ROS_WHEELS_BOOTSTRAP_COMPLETE", None)
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120, env=e)


def _one_line(r):
    lines = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.strip()]
    assert len(lines) == 1, r.stdout + r.stderr
    return lines[0]


def test_ros2_tools_on_a_venv_without_rclpy_is_one_line(tmp_path):
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "v")], check=True, timeout=120,
                   env={k: v for k, v in os.environ.items() if k != "_ROS_WHEELS_BOOTSTRAP_COMPLETE"})
    r = _run(["bash", SCRIPTS / "install_ros2_tools.sh", tmp_path / "v", "kilted"])
    assert r.returncode == 2 and "has no rclpy" in _one_line(r)


@pytest.mark.parametrize("distro", ["humble", "rolling", ""])
def test_ros2_tools_for_an_unknown_distro_is_one_line(distro):
    r = _run(["bash", SCRIPTS / "install_ros2_tools.sh", VENV, distro])
    assert r.returncode == 2 and f"unknown ROS 2 distro '{distro}'" in _one_line(r)


def test_ros2_tools_for_another_distro_than_the_venvs_is_one_line():
    from importlib.metadata import version

    other = {"9": "jazzy", "7": "kilted"}[version("ros-rclpy").split(".")[0]]
    r = _run(["bash", SCRIPTS / "install_ros2_tools.sh", VENV, other])
    assert r.returncode == 2 and "one distro per venv" in _one_line(r)


def test_setup_for_an_unknown_distro_is_one_line(tmp_path):
    r = _run(["bash", SCRIPTS / "setup_env.sh"], ROS_DISTRO="humble", HAND_MESH_VENV=str(tmp_path / "v"))
    assert r.returncode == 2 and "ROS_DISTRO='humble'" in _one_line(r) and "kilted or jazzy" in _one_line(r)
    assert not (tmp_path / "v").exists()


def test_ament_layout_links_the_package_files_and_drops_stale_ones(tmp_path):
    sys.path.insert(0, str(SCRIPTS))
    try:
        import ament_layout
    finally:
        sys.path.remove(str(SCRIPTS))
    (tmp_path / "bin").mkdir()
    for exe in EXECUTABLES:
        (tmp_path / "bin" / exe).write_text("#!/bin/sh\n")
    stale = tmp_path / "share" / "hand_mesh_ros" / "launch" / "old.launch.py"
    stale.parent.mkdir(parents=True)
    stale.write_text("")
    made = ament_layout.lay_out(tmp_path)
    assert not stale.exists()
    share = tmp_path / "share" / "hand_mesh_ros"
    assert (share / "launch" / "hands.launch.py").resolve() == REPO / "launch" / "hands.launch.py"
    assert (share / "config" / "hands.yaml").resolve() == REPO / "config" / "hands.yaml"
    assert (share / "package.xml").resolve() == REPO / "package.xml"
    assert (tmp_path / "share" / "ament_index" / "resource_index" / "packages" / "hand_mesh_ros").is_file()
    for exe in EXECUTABLES:
        assert (tmp_path / "lib" / "hand_mesh_ros" / exe).resolve() == tmp_path / "bin" / exe
    assert len(made) == len(set(made))
    (tmp_path / "bin" / "camera_publisher").unlink()
    with pytest.raises(SystemExit, match="camera_publisher"):
        ament_layout.lay_out(tmp_path)


def test_the_venv_is_an_ament_prefix_of_hand_mesh_ros():
    """What the set-up made: ``ros2 pkg prefix`` / ``executables`` find the package in the venv."""
    require_ros2_tools()
    ros2 = VENV / "bin" / "ros2"
    r = _run([ros2, "pkg", "prefix", "hand_mesh_ros"])
    assert r.returncode == 0 and Path(r.stdout.strip()) == VENV, r.stdout + r.stderr
    r = _run([ros2, "pkg", "executables", "hand_mesh_ros"])
    assert sorted(r.stdout.split()) == sorted(w for exe in EXECUTABLES for w in ("hand_mesh_ros", exe)), r.stdout
    for exe in EXECUTABLES:
        path = VENV / "lib" / "hand_mesh_ros" / exe
        assert path.is_file() and path.stat().st_mode & stat.S_IXUSR, path
    share = VENV / "share" / "hand_mesh_ros"
    for rel in ("package.xml", "launch/hands.launch.py", "config/hands.yaml", "config/fastdds_large_images.xml"):
        assert (share / rel).is_file(), rel
    assert (VENV / "setup.bash").is_file()


def test_tf2_msgs_is_the_real_one_where_the_ros2_tools_are_installed():
    """The stand-in TFMessage package never shadows the real tf2_msgs (which has TF2Error)."""
    require_ros2_tools()
    import tf2_msgs.msg

    assert hasattr(tf2_msgs.msg, "TF2Error") and hasattr(tf2_msgs.msg, "TFMessage")
    assert not (VENV / "share" / "tf2_msgs" / ".hand_mesh_standin").exists()
