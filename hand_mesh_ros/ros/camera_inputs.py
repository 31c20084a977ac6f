"""What a camera's inputs are called and how they are watched (ROS-free).

* :func:`camera_topics`: the topics of every camera (image, camera_info, depth), from the
  node's parameters; :func:`transport_topic`: the topic image_transport would use.
* :class:`CameraInfoWatch`: notices images arriving without a usable CameraInfo (none at
  all, or none within ``sync_slop`` of the images) for ``camera_info_timeout`` seconds,
  and CameraInfo starting again.
* :class:`StampBuffer`: the last few messages of a topic by stamp (depth), to pair with a
  colour frame without ever waiting for one.
* :class:`LatestFrames`: the newest complete frame of each camera, waiting for the worker
  (latest frame wins: a replaced frame is counted as dropped).
"""
from __future__ import annotations

import posixpath
import threading
import time
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

from hand_mesh_ros.config import TRANSPORTS, check_together
from hand_mesh_ros.ros.diagnostics import CameraTopics
from hand_mesh_ros.ros.sync import stamp_ns


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
        ValueError: ``depth_topics`` given with another length than ``image_topics``
            (``config.check_together``).
    """
    if not image_topics:
        return [CameraTopics("image", "image", "camera_info" if use_camera_info else "",
                             "depth" if use_depth else "")]
    check_together({"image_topics": list(image_topics), "depth_topics": list(depth_topics), "use_depth": use_depth})
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
    (or ``"first"`` for the first pair ever) and :attr:`missing` False.

    "Arriving" means without a gap of ``timeout_s`` or more between two images: after a pause
    in the stream the time is counted again from the first new image, so an image that comes
    a moment before its CameraInfo after a pause is not taken for a missing CameraInfo.
    Thread-safe.

    Args:
        timeout_s: ``camera_info_timeout`` [s] (> 0).
    """

    def __init__(self, timeout_s: float):
        if not timeout_s > 0:
            raise ValueError(f"camera_info_timeout must be > 0 s, got {timeout_s}")
        self.timeout_s = float(timeout_s)
        self.missing = False
        self.ever_paired = False
        self._since: Optional[float] = None  # first image of the unpaired run (None: none)
        self._last_image: Optional[float] = None
        self._lock = threading.Lock()

    def image(self, now: float) -> Optional[str]:
        """An image arrived at ``now`` [s, monotonic]; ``"missing"`` on the transition."""
        with self._lock:
            paused = self._last_image is not None and now - self._last_image >= self.timeout_s
            self._last_image = now
            if self.missing:
                return None
            if self._since is None or paused:
                self._since = now
            if now - self._since >= self.timeout_s:
                self.missing = True
                return "missing"
            return None

    def paired(self, now: float) -> Optional[str]:
        """A synchronized (image, CameraInfo) pair came out: ``"first"`` for the first pair
        after a warning that CameraInfo is missing and none was ever paired, ``"started"``
        for a pair after such a warning later on, else None."""
        with self._lock:
            was_missing, ever = self.missing, self.ever_paired
            self.missing, self.ever_paired, self._since = False, True, None
            if not was_missing:
                return None
            return "started" if ever else "first"


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


class Frame(NamedTuple):
    """A camera's frame as received: the image message, its CameraInfo (None: processed with
    assumed intrinsics, or skipped with ``require_camera_info``), and when it arrived."""

    image: object  # sensor_msgs/Image or CompressedImage
    info: Optional[object] = None  # sensor_msgs/CameraInfo
    received: Optional[float] = None  # time.monotonic() [s]


class LatestFrames:
    """The newest frame of each camera, waiting for the worker (thread-safe).

    :meth:`put` replaces a camera's waiting frame (latest frame wins): the replaced one is
    passed to ``on_drop`` (counted as dropped) unless it is the same image, now with its
    CameraInfo. :meth:`take` hands every waiting frame to the worker at once;
    :meth:`finished` records what it processed, so a re-sent image can be recognized.

    Args:
        on_drop: called with the camera key of every dropped frame.
    """

    def __init__(self, on_drop: Callable[[str], None]):
        self._on_drop = on_drop
        self._pending: Dict[str, Frame] = {}
        self._last: Dict[str, int] = {}  # camera -> stamp [ns] of its last processed frame
        self._cond = threading.Condition()

    def put(self, camera: str, frame: Frame) -> None:
        """Queue ``frame`` as the camera's newest; a waiting older one is dropped."""
        with self._cond:
            old = self._pending.get(camera)
            same = old is not None and old.image is frame.image
            if same:  # the same image, now with its CameraInfo: keep its arrival time
                frame = frame._replace(received=old.received)
            self._pending[camera] = frame
            self._cond.notify_all()
        if old is not None and not same:
            self._on_drop(camera)

    def last_processed(self, camera: str) -> Optional[int]:
        """The stamp [ns] of the camera's last processed frame, or None."""
        with self._cond:
            return self._last.get(camera)

    def take(self, timeout: float) -> Dict[str, Frame]:
        """Every waiting frame (camera key -> frame), after waiting up to ``timeout`` [s] for
        one; {} when none came."""
        with self._cond:
            if not self._pending:
                self._cond.wait(timeout)
            taken, self._pending = self._pending, {}
        return taken

    def finished(self, camera: str, frame: Frame) -> None:
        """The worker processed ``frame`` of ``camera``."""
        with self._cond:
            self._last[camera] = stamp_ns(frame.image)

    def wake(self) -> None:
        """Wake a waiting :meth:`take` (shutdown)."""
        with self._cond:
            self._cond.notify_all()


def _remember(kept: Dict[int, None], stamp: int, most: int) -> None:
    """Add ``stamp`` to the insertion-ordered ``kept``, forgetting the oldest beyond ``most``."""
    kept[stamp] = None
    while len(kept) > most:
        del kept[next(iter(kept))]


class AwaitingCameraInfo:
    """The images of one camera that arrived and wait for their CameraInfo (thread-safe).

    Each image is resolved once: :meth:`resolve` when it pairs (or goes on alone); the ones
    that can no longer be processed are handed back by :meth:`overtaken` (a newer frame of
    the camera went on: latest frame wins) and :meth:`expired` (waited ``give_up_s``), for the
    node to count as skipped. A pair may come out before the node sees its image (the
    synchronizer runs first); such a stamp is remembered, and its :meth:`arrived` returns False.
    A stamp given up, or sent on alone (:meth:`went_alone`: the camera's CameraInfo is
    missing), is remembered too: a pair for it that comes out later (a CameraInfo later than
    ``give_up_s``, or than a newer frame) is refused by :meth:`resolve`, as the image was
    counted as skipped, or went on, already.

    Args:
        give_up_s: longest wait for a CameraInfo [s] (the node's ``camera_info_timeout``).
    """

    EARLY_KEPT = 64  # stamps paired before their image callback, and stamps gone (given up or alone), remembered

    def __init__(self, give_up_s: float):
        self.give_up_s = float(give_up_s)
        self._waiting: Dict[int, float] = {}
        self._early: Dict[int, None] = {}
        self._gone: Dict[int, None] = {}  # given up or sent on alone
        self._lock = threading.Lock()

    def arrived(self, stamp: int, now: float) -> bool:
        """The image of ``stamp`` [ns] arrived at ``now`` [s]; False if it was resolved already."""
        with self._lock:
            if stamp in self._early:
                del self._early[stamp]
                return False
            self._waiting.setdefault(stamp, now)
            return True

    def resolve(self, stamp: int) -> bool:
        """The image of ``stamp`` goes on with its CameraInfo; False if it was given up or went
        on alone already (it must not go on again: it was counted)."""
        with self._lock:
            if stamp in self._gone:
                return False
            if self._waiting.pop(stamp, None) is None:
                _remember(self._early, stamp, self.EARLY_KEPT)
            return True

    def went_alone(self, stamp: int) -> None:
        """The image of ``stamp`` goes on without CameraInfo (missing on the camera): no longer
        waiting, and a pair for it that comes out later is refused by :meth:`resolve`."""
        with self._lock:
            self._waiting.pop(stamp, None)
            _remember(self._gone, stamp, self.EARLY_KEPT)

    def overtaken(self, stamp: int) -> List[int]:
        """Remove and return the waiting stamps older than ``stamp`` (a newer frame went on)."""
        with self._lock:
            return self._give_up(s for s in self._waiting if s < stamp)

    def expired(self, now: float) -> List[int]:
        """Remove and return the stamps waiting for ``give_up_s`` or longer at ``now`` [s]."""
        with self._lock:
            return self._give_up(s for s, t in self._waiting.items() if now - t >= self.give_up_s)

    def _give_up(self, stamps) -> List[int]:
        """Remove ``stamps`` from the waiting ones, remember them as given up; sorted (lock held)."""
        old = sorted(stamps)
        for s in old:
            del self._waiting[s]
            _remember(self._gone, s, self.EARLY_KEPT)
        return old

    def __len__(self) -> int:
        with self._lock:
            return len(self._waiting)
