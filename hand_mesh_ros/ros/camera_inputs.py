"""What a camera's inputs are called and how they are watched (ROS-free).

* :func:`camera_topics`: the topics of every camera (image, camera_info, depth), from the
  node's parameters; :func:`transport_topic`: the topic image_transport would use.
* :class:`CameraInfoWatch`: notices images arriving without a usable CameraInfo (none at
  all, or none within ``sync_slop`` of the images) for ``camera_info_timeout`` seconds,
  and CameraInfo starting again.
* :class:`StampBuffer`: the last few messages of a topic by stamp (depth), to pair with a
  colour frame without ever waiting for one.
"""
from __future__ import annotations

import posixpath
import threading
import time
from typing import Dict, List, Optional, Sequence

from hand_mesh_ros.ros.diagnostics import CameraTopics
from hand_mesh_ros.ros.sync import stamp_ns

TRANSPORTS = ("raw", "compressed")


def transport_topic(base: str, transport: str, depth: bool = False) -> str:
    """The topic a subscriber of ``transport`` reads, as image_transport names it:
    ``base`` (raw), ``base/compressed`` (compressed colour), ``base/compressedDepth``
    (compressed depth). ``base`` should already be resolved (remapped): a remapping of
    ``image`` does not apply to ``image/compressed``."""
    if transport == "raw":
        return base
    if transport == "compressed":
        return posixpath.join(base, "compressedDepth" if depth else "compressed")
    raise ValueError(f"unknown image transport '{transport}' (allowed: {', '.join(TRANSPORTS)})")


def realsense_depth_topic(image_topic: str) -> str:
    """The aligned depth topic beside a RealSense colour topic (realsense2_camera's layout):
    ``<ns>/color/image_raw`` -> ``<ns>/aligned_depth_to_color/image_raw``."""
    ns = posixpath.dirname(posixpath.dirname(image_topic))
    return posixpath.join(ns, "aligned_depth_to_color", "image_raw")


def camera_topics(image_topics: Sequence[str], depth_topics: Sequence[str] = (), use_camera_info: bool = True,
                  use_depth: bool = False) -> List[CameraTopics]:
    """The inputs of every camera, as subscribed (before remapping and transport suffix).

    Args:
        image_topics: one image topic per camera; empty = one camera on ``image``
            (+ ``camera_info``, + ``depth``), the names to remap.
        depth_topics: with ``use_depth``, one depth topic per entry of ``image_topics``;
            empty = :func:`realsense_depth_topic` of each.
        use_camera_info: subscribe CameraInfo (``<namespace of the image topic>/camera_info``).
        use_depth: subscribe a depth image per camera.

    Returns:
        One ``CameraTopics`` per camera, ``key`` = the image topic as given.

    Raises:
        ValueError: ``depth_topics`` given with another length than ``image_topics``.
    """
    if not image_topics:
        return [CameraTopics("image", "image", "camera_info" if use_camera_info else "",
                             "depth" if use_depth else "")]
    if use_depth and depth_topics and len(depth_topics) != len(image_topics):
        raise ValueError(f"parameter 'depth_topics': {len(depth_topics)} topics for {len(image_topics)} "
                         "image_topics; allowed: one per image topic, or [] for the RealSense layout")
    out = []
    for k, t in enumerate(image_topics):
        info = posixpath.join(posixpath.dirname(t), "camera_info") if use_camera_info else ""
        depth = (depth_topics[k] if depth_topics else realsense_depth_topic(t)) if use_depth else ""
        out.append(CameraTopics(t, t, info, depth))
    return out


class CameraInfoWatch:
    """Whether a camera's images come with a usable CameraInfo.

    The node calls :meth:`image` for every image that arrives and :meth:`paired` for every
    (image, CameraInfo) pair its synchronizer emits. When images have been arriving for
    ``timeout_s`` with no pair (no CameraInfo at all, or CameraInfo whose stamps are never
    within ``sync_slop`` of the images), :meth:`image` returns ``"missing"`` once and
    :attr:`missing` becomes True; the next pair makes :meth:`paired` return ``"started"``
    and :attr:`missing` False. Thread-safe.

    Args:
        timeout_s: ``camera_info_timeout`` [s] (> 0).
    """

    def __init__(self, timeout_s: float):
        if not timeout_s > 0:
            raise ValueError(f"camera_info_timeout must be > 0 s, got {timeout_s}")
        self.timeout_s = float(timeout_s)
        self.missing = False
        self._since: Optional[float] = None  # first image after the last pair (or the start)
        self._lock = threading.Lock()

    def image(self, now: float) -> Optional[str]:
        """An image arrived at ``now`` [s, monotonic]; ``"missing"`` on the transition."""
        with self._lock:
            if self.missing:
                return None
            if self._since is None:
                self._since = now
            if now - self._since >= self.timeout_s:
                self.missing = True
                return "missing"
            return None

    def paired(self, now: float) -> Optional[str]:
        """A synchronized (image, CameraInfo) pair came out; ``"started"`` after a miss."""
        with self._lock:
            was_missing = self.missing
            self.missing = False
            self._since = None
            return "started" if was_missing else None


class StampBuffer:
    """The last ``size`` messages of one topic, keyed by ``header.stamp`` (thread-safe).

    Args:
        size: messages kept (older ones are dropped).
        slop: largest stamp difference accepted by :meth:`take` [s].
    """

    def __init__(self, size: int = 10, slop: float = 0.05):
        self.size = int(size)
        self.slop_ns = int(round(float(slop) * 1e9))
        self._msgs: Dict[int, object] = {}
        self._arrived = threading.Condition()

    def add(self, msg) -> None:
        """Keep ``msg`` (a second message with the same stamp replaces the first)."""
        with self._arrived:
            self._msgs[stamp_ns(msg)] = msg
            while len(self._msgs) > self.size:
                del self._msgs[min(self._msgs)]
            self._arrived.notify_all()

    def take(self, stamp: int, timeout: float = 0.0) -> Optional[object]:
        """Remove and return the message nearest to ``stamp`` [ns] if within ``slop``, and
        drop every older one; None when there is none after waiting up to ``timeout`` [s]
        for it to arrive (0: never wait)."""
        deadline = time.monotonic() + max(0.0, float(timeout))
        with self._arrived:
            while True:
                msg = self._pop_near(stamp)
                remaining = deadline - time.monotonic()
                if msg is not None or remaining <= 0:
                    return msg
                self._arrived.wait(remaining)

    def _pop_near(self, stamp: int) -> Optional[object]:
        if not self._msgs:
            return None
        best = min(self._msgs, key=lambda s: abs(s - stamp))
        if abs(best - stamp) > self.slop_ns:
            return None
        msg = self._msgs.pop(best)
        for s in [s for s in self._msgs if s < best]:
            del self._msgs[s]
        return msg
