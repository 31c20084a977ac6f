"""The Fast DDS profile for large messages (``config/fastdds_large_images.xml``).

Fast DDS passes a message between processes of one machine through the sender's
shared-memory segment, 512 kB by default; larger messages (a 640x360 rgb8 image is 691 kB,
a mesh marker of two hands about 0.8 MB) are delivered far more slowly (measured: 11.7 ms
instead of 1.3 ms for 691 kB; the XML file's header has the figures). The shipped profile
gives each participant a 16 MB segment, messages up to 8 MB in one piece.

``apply`` puts the profile into this process's environment before ``rclpy.init`` (the
node and ``camera_publisher`` call it), unless

* the user chose a profile: ``FASTDDS_DEFAULT_PROFILES_FILE`` (or the older
  ``FASTRTPS_DEFAULT_PROFILES_FILE``) is set, even to an empty value (= Fast DDS's
  defaults); theirs is kept;
* the middleware is not Fast DDS (``RMW_IMPLEMENTATION`` names another one);
* ``/dev/shm`` has less than ``MIN_FREE_SHM`` free (e.g. Docker's default 64 MB): a
  segment per process would not fit, and the defaults are kept.

The profile is put into the variable the installed Fast DDS reads: 3.x (ROS 2 Kilted)
``FASTDDS_DEFAULT_PROFILES_FILE``, 2.x (Jazzy, Humble) only ``FASTRTPS_DEFAULT_PROFILES_FILE``
(``profile_variable``). Fast DDS 3.x reads both names and loads the file twice when both
are set (XML errors in the log), so only one is set.

The segment belongs to the sending participant: for camera images it is the camera
driver that needs the profile (README, "Large images over DDS").
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import MutableMapping, Optional, Tuple

PROFILE_NAME = "fastdds_large_images.xml"
#: the environment variables Fast DDS reads a profiles file from: 3.x (ROS 2 Kilted) reads
#: the first, 2.x (Jazzy, Humble) only the second
PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
#: RMW implementations that use Fast DDS ("" = the ROS 2 default, rmw_fastrtps_cpp)
FASTDDS_RMWS = ("", "rmw_fastrtps_cpp", "rmw_fastrtps_dynamic_cpp")
#: the profile is applied only with this much free in /dev/shm [bytes]: room for the
#: 16 MB segments of four processes (camera, node, RViz, a recorder)
MIN_FREE_SHM = 4 * 17 * 2 ** 20
SHM_DIR = "/dev/shm"


def profile_path() -> Optional[Path]:
    """The installed profile file: the package's share directory (colcon install, or
    ``<prefix>/share`` of a pip install), else the source checkout's ``config/``; None
    when it is found nowhere."""
    places = []
    try:
        from ament_index_python.packages import get_package_share_directory

        places.append(Path(get_package_share_directory("hand_mesh_ros")))
    except (ImportError, LookupError, OSError):  # no ament_index / package not in it / no AMENT_PREFIX_PATH
        pass
    places += [Path(sys.prefix) / "share" / "hand_mesh_ros", Path(__file__).resolve().parents[2]]
    for place in places:
        path = place / "config" / PROFILE_NAME
        if path.is_file():
            return path
    return None


def profile_variable(environ: Optional[MutableMapping[str, str]] = None) -> str:
    """The variable the installed Fast DDS reads its profiles file from: the one of 2.x
    (``libfastrtps``, ROS 2 Jazzy / Humble) when that is the library in the ament prefixes
    (``AMENT_PREFIX_PATH``) or in this Python's prefix (the pip wheels), else the one of 3.x
    (``libfastdds``, ROS 2 Kilted and later)."""
    environ = os.environ if environ is None else environ
    prefixes = [p for p in environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p] + [sys.prefix]
    for prefix in prefixes:
        lib = Path(prefix) / "lib"
        if any(lib.glob("libfastdds.so*")):
            return PROFILE_VARIABLES[0]
        if any(lib.glob("libfastrtps.so*")):
            return PROFILE_VARIABLES[1]
    return PROFILE_VARIABLES[0]


def free_shm(directory: str = SHM_DIR) -> Optional[int]:
    """Free bytes in ``directory`` (None when it cannot be read)."""
    try:
        st = os.statvfs(directory)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def choose(environ: MutableMapping[str, str], shm_free: Optional[int] = None) -> Tuple[Optional[Path], str]:
    """(profile to set or None, why) for the environment ``environ``; see the module docstring.

    Args:
        environ: the process environment (not modified).
        shm_free: free bytes in /dev/shm (default: measured with ``free_shm``).
    """
    for var in PROFILE_VARIABLES:
        if var in environ:
            return None, (f"{var} is set ({environ[var]!r}): that profile is used" if environ[var] else
                          f"{var} is set and empty: Fast DDS's defaults (512 kB shared-memory segments)")
    rmw = environ.get("RMW_IMPLEMENTATION", "")
    if rmw not in FASTDDS_RMWS:
        return None, f"RMW_IMPLEMENTATION={rmw}: not Fast DDS"
    free = free_shm() if shm_free is None else shm_free
    if free is not None and free < MIN_FREE_SHM:
        return None, (f"{SHM_DIR} has {free / 2 ** 20:.0f} MB free (< {MIN_FREE_SHM / 2 ** 20:.0f} MB): "
                      "Fast DDS's default 512 kB shared-memory segments kept, large images are slower")
    path = profile_path()
    if path is None:
        return None, f"{PROFILE_NAME} not found (package not installed?)"
    return path, f"Fast DDS profile {path} (16 MB shared-memory segments for large images)"


def apply(environ: Optional[MutableMapping[str, str]] = None) -> str:
    """Set the profiles-file variable of the installed Fast DDS (``profile_variable``) to the
    shipped profile in ``environ`` (default ``os.environ``) when ``choose`` says so. Call
    before ``rclpy.init``: Fast DDS reads the variable when the process creates its first
    participant.

    Returns:
        What was decided, one line for the log.
    """
    environ = os.environ if environ is None else environ
    path, why = choose(environ)
    if path is not None:
        environ[profile_variable(environ)] = str(path)
    return why
