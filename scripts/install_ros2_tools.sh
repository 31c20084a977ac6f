#!/usr/bin/env bash
# Install the real ROS 2 tools that pip lacks (launch, launch_ros and `ros2 launch`, the `ros2`
# command, tf2 / tf2_ros, message_filters, diagnostic_updater) into a venv made by
# scripts/setup_env.sh, from the project's ../shared/ros2-python (upstream sources of Kilted
# and Jazzy; its install.sh builds and installs them, ~2 min, idempotent).
#
#   scripts/install_ros2_tools.sh VENV DISTRO        DISTRO: kilted | jazzy
#
# The checks here make bad input one clear line and a non-zero exit (2) before anything is
# built: an unknown distro, a venv without rclpy, a venv whose rclpy is another distro's
# (Kilted = rclpy 9.x, Jazzy = rclpy 7.x), no ros2-python folder. The folder is
# HAND_MESH_ROS2_PYTHON, default ../shared/ros2-python beside this checkout.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="${HAND_MESH_ROS2_PYTHON-$ROOT/../shared/ros2-python}"
fail() { echo "[ros2-tools] $*" >&2; exit 2; }

[[ $# -eq 2 ]] || fail "usage: install_ros2_tools.sh VENV DISTRO (DISTRO: kilted or jazzy)"
VENV="$1" DISTRO="$2"
case "$DISTRO" in
  kilted) RCLPY_MAJOR=9 ;;
  jazzy) RCLPY_MAJOR=7 ;;
  *) fail "unknown ROS 2 distro '$DISTRO': the tools are installed for kilted or jazzy" ;;
esac
PY="$VENV/bin/python"
[[ -x "$PY" ]] || fail "no Python venv at '$VENV' (make one with scripts/setup_env.sh)"
unset _ROS_WHEELS_BOOTSTRAP_COMPLETE  # the venv's own bootstrap must run (ENVIRONMENT.md)
version="$("$PY" -c 'import importlib.metadata as m; print(m.version("ros-rclpy"))' 2>/dev/null)" \
  || fail "venv '$VENV' has no rclpy (ros-rclpy wheel): run scripts/setup_env.sh first"
[[ "${version%%.*}" == "$RCLPY_MAJOR" ]] \
  || fail "venv '$VENV' has rclpy $version, not $DISTRO's ($RCLPY_MAJOR.x): one distro per venv"
[[ -f "$SRC/install.sh" ]] || fail "no ROS 2 tool sources at '$SRC' (../shared/ros2-python)"
exec bash "$SRC/install.sh" "$VENV" "$DISTRO"
