#!/usr/bin/env bash
# Set up everything hand_mesh_ros needs on a machine without a ROS 2 install:
#   1. a venv (default .venv, override with HAND_MESH_VENV) with the pinned pip wheels
#      (ROS 2 Kilted rclpy + messages, torch CPU, mediapipe 0.10.21, smplx, ...);
#   2. hand_mesh_msgs built with cmake from the pip-installed ament/rosidl and installed
#      into the venv (ENVIRONMENT.md traps 1-3 handled here);
#   3. a tf2_msgs/TFMessage interface, built only where `import tf2_msgs` fails (pip has no
#      tf2_msgs; a real ROS 2 install always has it, and this is never built or seen there);
#   4. hand_mesh_ros itself (editable install).
# Idempotent: a stamp file records the hash of every input; a second run returns in seconds.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${HAND_MESH_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
STAMP="$VENV/.hand_mesh_setup_stamp"

inputs_hash() {
  cat "$ROOT/requirements.lock.txt" "$ROOT/scripts/setup_env.sh" "$ROOT/setup.py" \
      "$ROOT"/hand_mesh_msgs/msg/*.msg "$ROOT/hand_mesh_msgs/CMakeLists.txt" \
      "$ROOT"/third_party/tf2_msgs/msg/*.msg | sha256sum | cut -d' ' -f1
}
HASH="$(inputs_hash)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$HASH" ]]; then
  exit 0
fi

echo "[setup] venv: $VENV"
[[ -x "$PY" ]] || python3 -m venv "$VENV"
# pip ships its own torch cap on some machines (/etc/xdg/pip); torch==2.13.0 is under it.
"$PY" -m pip install -q --upgrade "pip>=24" >/dev/null
echo "[setup] installing pinned wheels (requirements.lock.txt)"
"$PY" -m pip install -q -r "$ROOT/requirements.lock.txt"

# The ros-wheels bootstrapper re-executes python once; children of a bootstrapped python
# inherit _ROS_WHEELS_BOOTSTRAP_COMPLETE and would skip their own set-up (ENVIRONMENT.md).
unset _ROS_WHEELS_BOOTSTRAP_COMPLETE

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
if ! "$PY" -c 'import tf2_msgs.msg' >/dev/null 2>&1 || [[ -f "$VENV/share/tf2_msgs/.hand_mesh_standin" ]]; then
  build_interfaces "$ROOT/third_party/tf2_msgs" "$BUILD/tf2_msgs"
  touch "$VENV/share/tf2_msgs/.hand_mesh_standin"
fi

echo "[setup] installing hand_mesh_ros (editable)"
"$PY" -m pip install -q --no-deps --no-build-isolation -e "$ROOT"
"$PY" -c 'import rclpy, hand_mesh_msgs.msg, tf2_msgs.msg, mediapipe, torch, smplx' \
  || { echo "[setup] import check failed" >&2; exit 1; }
echo "$HASH" > "$STAMP"
echo "[setup] done"
