"""The real ROS 2 packages the node uses where they are installed, or its own stand-ins.

A ROS 2 install (apt, or the project's set-up with ../shared/ros2-python) has
``message_filters`` (``ApproximateTimeSynchronizer`` pairs image and CameraInfo),
``tf2_ros`` (``TransformBroadcaster`` sends ``/tf``) and ``diagnostic_updater`` (``Updater``
publishes ``/diagnostics``); the node then uses them. Where one is missing (pip wheels
only) it falls back to its stand-in with the same behaviour: ``ros.sync.StampPairSynchronizer``,
a tf2_msgs/TFMessage publisher with the broadcaster's QoS, ``ros.diagnostics``' own
DiagnosticArray publisher.

``HAND_MESH_ROS_STANDINS=1`` in the environment makes the node use every stand-in even where
the real packages are installed: what a pip-only user runs, reproduced on a full install
(the tests run their behaviour tests both ways with it). Read when a node is built, so it
applies per process (and per in-process node in tests).
"""
from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Optional

#: the packages with a stand-in in this project
PACKAGES = ("message_filters", "tf2_ros", "diagnostic_updater")
#: environment variable: "1" = use the stand-ins, unset / "" / "0" = the real packages where installed
STANDINS_VARIABLE = "HAND_MESH_ROS_STANDINS"


def standins_forced() -> bool:
    """True when ``HAND_MESH_ROS_STANDINS`` asks for the stand-ins.

    Raises:
        ValueError: a value other than "", "0" or "1" (the message names the variable).
    """
    value = os.environ.get(STANDINS_VARIABLE, "").strip()
    if value not in ("", "0", "1"):
        raise ValueError(f"{STANDINS_VARIABLE}={value!r}: allowed: 1 (stand-ins), 0 or unset (real packages)")
    return value == "1"


def load(name: str) -> Optional[ModuleType]:
    """The real package ``name`` (one of ``PACKAGES``) imported, or None where it is not
    installed or the stand-ins are forced."""
    if name not in PACKAGES:
        raise ValueError(f"no stand-in for {name!r}; known: {', '.join(PACKAGES)}")
    if standins_forced():
        return None
    try:
        return importlib.import_module(name)
    except ImportError:
        return None
