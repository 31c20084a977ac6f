#!/usr/bin/env bash
# Set up everything hand_mesh_ros needs on a machine without a ROS 2 install, for one ROS 2
# distribution (ROS_DISTRO: kilted, the default, or jazzy; each in its own venv):
#   1. a venv (kilted: .venv, jazzy: .venv-jazzy; HAND_MESH_VENV overrides) with the pinned
#      pip wheels of the distro's lock file (requirements.lock.txt / requirements-jazzy.lock.txt:
#      rclpy + messages, torch CPU, mediapipe 0.10.21, smplx, ...);
#   2. hand_mesh_msgs built with cmake from the pip-installed ament/rosidl and installed
#      into the venv (ENVIRONMENT.md traps 1-3 handled here);
#   3. where ../shared/ros2-python exists (HAND_MESH_ROS2_PYTHON overrides; empty = skip):
#      the real ROS 2 tools pip lacks, by scripts/install_ros2_tools.sh (launch, `ros2`,
#      tf2_ros, tf2_msgs, message_filters, diagnostic_updater); without it nothing of this
#      step happens (a user's clone; a real ROS 2 install has them from apt);
#   4. else a tf2_msgs/TFMessage interface, built only where `import tf2_msgs` fails (never
#      over a real tf2_msgs, which replaces it when step 3 runs);
#   5. hand_mesh_ros itself: editable pip install, and laid out in the venv prefix as colcon
#      lays out an install (scripts/ament_layout.py: share/hand_mesh_ros, lib/hand_mesh_ros,
#      the ament index), with VENV/setup.bash putting the venv on AMENT_PREFIX_PATH.
# Idempotent: a stamp file records the hash of every input; a second run returns in seconds.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DISTRO="${ROS_DISTRO:-kilted}"
case "$DISTRO" in
  kilted) LOCK="$ROOT/requirements.lock.txt" DEFAULT_VENV="$ROOT/.venv" RCLPY_MAJOR=9 ;;
  jazzy) LOCK="$ROOT/requirements-jazzy.lock.txt" DEFAULT_VENV="$ROOT/.venv-jazzy" RCLPY_MAJOR=7 ;;
  *) echo "[setup] ROS_DISTRO='$DISTRO': this set-up installs ROS 2 kilted or jazzy from pip" >&2; exit 2 ;;
esac
VENV="${HAND_MESH_VENV:-$DEFAULT_VENV}"
PY="$VENV/bin/python"
STAMP="$VENV/.hand_mesh_setup_stamp"
ROS2_PYTHON="${HAND_MESH_ROS2_PYTHON-$ROOT/../shared/ros2-python}"
[[ -n "$ROS2_PYTHON" && -f "$ROS2_PYTHON/install.sh" ]] || ROS2_PYTHON=""

inputs_hash() {
  { echo "$DISTRO $ROS2_PYTHON"
    cat "$LOCK" "$ROOT/scripts/setup_env.sh" "$ROOT/scripts/install_ros2_tools.sh" \
        "$ROOT/scripts/ament_layout.py" "$ROOT/setup.py" \
        "$ROOT"/hand_mesh_msgs/msg/*.msg "$ROOT/hand_mesh_msgs/CMakeLists.txt" \
        "$ROOT"/third_party/tf2_msgs/msg/*.msg
    [[ -z "$ROS2_PYTHON" ]] || cat "$ROS2_PYTHON/SOURCES.tsv" "$ROS2_PYTHON/install.sh"
  } | sha256sum | cut -d' ' -f1
}
HASH="$(inputs_hash)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$HASH" ]]; then
  exit 0
fi
# The ros-wheels bootstrapper re-executes python once; children of a bootstrapped python
# inherit _ROS_WHEELS_BOOTSTRAP_COMPLETE and would skip their own set-up (ENVIRONMENT.md).
unset _ROS_WHEELS_BOOTSTRAP_COMPLETE

echo "[setup] ROS 2 $DISTRO, venv: $VENV"
[[ -x "$PY" ]] || python3 -m venv "$VENV"
have="$("$PY" -c 'import importlib.metadata as m; print(m.version("ros-rclpy"))' 2>/dev/null || true)"
if [[ -n "$have" && "${have%%.*}" != "$RCLPY_MAJOR" ]]; then
  echo "[setup] $VENV holds rclpy $have, not $DISTRO's ($RCLPY_MAJOR.x); never mix two distros' wheels:" \
       "remove it or set HAND_MESH_VENV to another folder" >&2
  exit 2
fi
# pip ships its own torch cap on some machines (/etc/xdg/pip); torch==2.13.0 is under it.
"$PY" -m pip install -q --upgrade "pip>=24" >/dev/null
echo "[setup] installing pinned wheels ($(basename "$LOCK"))"
"$PY" -m pip install -q -r "$LOCK"

# Trap 3: message wheels' *__rosidl_generator_pyExport.cmake name the wheel builder's
# Python include dirs; point them at this venv's.
PY_INC="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
NP_INC="$("$PY" -c 'import numpy; print(numpy.get_include())')"
{ grep -rl --include='*__rosidl_generator_pyExport.cmake' '/opt/python/cp311-cp311' "$VENV/share" 2>/dev/null || true; } \
  | while read -r f; do
      sed -i -e "s#/opt/python/cp311-cp311/include/python3.11#$PY_INC#g" \
             -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$NP_INC#g" \
             -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/core/include#$NP_INC#g" "$f"
    done

build_interfaces() {  # $1 = source dir, $2 = build dir
  echo "[setup] building interface package $(basename "$1")"
  rm -rf "$2"
  # Trap 2: AMENT_PREFIX_PATH must hold the venv prefix at configure time.
  AMENT_PREFIX_PATH="$VENV" cmake -S "$1" -B "$2" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$VENV" \
    -DPython3_EXECUTABLE="$PY" -DBUILD_TESTING=OFF >"$2.log" 2>&1 \
    && AMENT_PREFIX_PATH="$VENV" cmake --build "$2" -j"$(nproc)" >>"$2.log" 2>&1 \
    && cmake --install "$2" >>"$2.log" 2>&1 \
    || { echo "[setup] build of $1 failed; log: $2.log" >&2; tail -30 "$2.log" >&2; exit 1; }
}
BUILD="$VENV/.build"
mkdir -p "$BUILD"
build_interfaces "$ROOT/hand_mesh_msgs" "$BUILD/hand_mesh_msgs"
if [[ -n "$ROS2_PYTHON" ]]; then
  echo "[setup] real ROS 2 tools from $ROS2_PYTHON (launch, ros2, tf2_ros, message_filters, diagnostic_updater)"
  HAND_MESH_ROS2_PYTHON="$ROS2_PYTHON" bash "$ROOT/scripts/install_ros2_tools.sh" "$VENV" "$DISTRO"
elif ! "$PY" -c 'import tf2_msgs.msg' >/dev/null 2>&1 || [[ -f "$VENV/share/tf2_msgs/.hand_mesh_standin" ]]; then
  build_interfaces "$ROOT/third_party/tf2_msgs" "$BUILD/tf2_msgs"
  touch "$VENV/share/tf2_msgs/.hand_mesh_standin"
fi

echo "[setup] installing hand_mesh_ros (editable, and laid out as colcon installs it)"
"$PY" -m pip install -q --no-deps --no-build-isolation -e "$ROOT"
"$PY" "$ROOT/scripts/ament_layout.py" "$VENV"
cat > "$VENV/setup.bash" <<SETUP
# Generated by hand_mesh_ros/scripts/setup_env.sh: this venv as a ROS 2 prefix, as
# \`source install/setup.bash\` after colcon: then \`ros2 launch hand_mesh_ros hands.launch.py\`.
source "$VENV/bin/activate"
case ":\${AMENT_PREFIX_PATH:-}:" in
  *":$VENV:"*) ;;
  *) export AMENT_PREFIX_PATH="$VENV\${AMENT_PREFIX_PATH:+:\$AMENT_PREFIX_PATH}" ;;
esac
SETUP
"$PY" -c 'import rclpy, hand_mesh_msgs.msg, tf2_msgs.msg, mediapipe, torch, smplx' \
  || { echo "[setup] import check failed" >&2; exit 1; }
echo "$HASH" > "$STAMP"
echo "[setup] done"
