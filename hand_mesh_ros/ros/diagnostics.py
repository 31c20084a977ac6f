"""The node's health on ``/diagnostics`` (REP 107): windowed statistics, status levels, and
their ``diagnostic_msgs/DiagnosticArray`` form.

:class:`NodeDiagnostics` is ROS-free: the node tells it what happens (a frame received,
dropped, skipped for a reason, processed with its stage timings, a processing error) and
it turns the last ``window_s`` seconds into one :class:`Report` per camera and one for the
pipeline. :class:`DiagnosticsPublisher` publishes those reports once per period, through
``diagnostic_updater.Updater`` where it is installed (a real ROS 2 install) or else with its
own ``/diagnostics`` publisher; both give the same statuses: names
``"<node name>: camera <image topic>"`` and ``"<node name>: pipeline"``, the same level,
message and key/value pairs, ``hardware_id`` = the compute device.

Levels (``DiagnosticStatus`` OK=0, WARN=1, ERROR=2), for a camera:

* ERROR -- images arrive but none was processed in the window (every frame skipped, e.g.
  an unsupported encoding, or ``require_camera_info`` without CameraInfo), once the camera
  has been seen for a whole window; or CameraInfo is required and missing;
* WARN -- no image for ``stale_after_s`` (2 s; also before the first one), more than half
  of the input dropped in the window (the node is slower than the camera), frames skipped
  in the window, CameraInfo missing (assumed intrinsics, ``TRANSLATION_ASSUMED``), or depth
  enabled and more than half of the processed frames without depth in the window;
* OK otherwise.

For the pipeline: ERROR when processing raised in the window, else OK. Its values also say
how many frames (one per camera) each ``process_batch`` call held: ``batches total``,
``frames per batch mean`` / ``max`` in the window.
"""
from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Deque, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from hand_mesh_ros.ros import real_packages

OK, WARN, ERROR = 0, 1, 2
LEVEL_NAMES = {OK: "OK", WARN: "WARN", ERROR: "ERROR"}

#: per-frame latency stages reported (p50 / max) [ms]: ``decode`` (message -> numpy), the
#: pipeline's ``detect`` / ``track`` / ``regress`` / ``place``, ``publish`` (messages built
#: and sent), ``total`` (callback received the image -> its results published).
STAGES = ("decode", "detect", "track", "regress", "place", "publish", "total")

#: CameraInfo states of a camera (``NodeDiagnostics.set_camera_info``).
CAMERA_INFO_OK = "ok"
CAMERA_INFO_ASSUMED = "missing: assumed intrinsics"
CAMERA_INFO_REQUIRED = "missing: required, frames skipped"
CAMERA_INFO_UNUSED = "not used (use_camera_info false)"
CAMERA_INFO_WAITING = "waiting"


@dataclass
class Report:
    """One ``DiagnosticStatus``: ``name`` (without the node prefix), ``level`` (OK / WARN /
    ERROR), a one-line ``message`` and ordered ``values`` (key, value) strings."""

    name: str
    level: int
    message: str
    values: List[Tuple[str, str]] = field(default_factory=list)


@dataclass
class CameraTopics:
    """What one camera is subscribed to (as named on the graph); ``""`` = not subscribed."""

    key: str
    image: str
    camera_info: str = ""
    depth: str = ""


class _Window:
    """Samples ``(time, value)`` of the last ``window_s`` seconds."""

    def __init__(self, window_s: float):
        self.window_s = window_s
        self._samples: Deque[Tuple[float, float]] = collections.deque()

    def add(self, t: float, value: float = 1.0) -> None:
        self._samples.append((t, value))

    def values(self, now: float) -> np.ndarray:
        while self._samples and self._samples[0][0] < now - self.window_s:
            self._samples.popleft()
        return np.array([v for _, v in self._samples], np.float64)

    def count(self, now: float) -> int:
        return int(self.values(now).size)


class _Camera:
    def __init__(self, topics: CameraTopics, window_s: float):
        self.topics = topics
        self.received, self.processed, self.dropped = (_Window(window_s) for _ in range(3))
        self.skipped = _Window(window_s)
        self.skipped_by_reason: Dict[str, _Window] = {}
        self.depth_missing = _Window(window_s)
        self.totals: Dict[str, int] = collections.Counter()
        self.skip_totals: Dict[str, int] = collections.Counter()
        self.first_image: Optional[float] = None
        self.last_image: Optional[float] = None
        self.camera_info = CAMERA_INFO_WAITING if topics.camera_info else CAMERA_INFO_UNUSED


def _in_flight(totals: Dict[str, int]) -> int:
    """Frames received and not (yet) processed, dropped or skipped, from ``totals``' counts."""
    return totals["received"] - totals["processed"] - totals["dropped"] - totals["skipped"]


class NodeDiagnostics:
    """Counters and windowed rates / latencies of the node (thread-safe, ROS-free).

    Args:
        cameras: the cameras, one :class:`CameraTopics` each.
        window_s: length of the window for rates, drops, skips and latency statistics [s].
        stale_after_s: WARN after this long without an image [s].
        use_depth: depth is subscribed (the depth rule applies).
        clock: monotonic time source [s].
    """

    def __init__(self, cameras: Sequence[CameraTopics], window_s: float = 5.0, stale_after_s: float = 2.0,
                 use_depth: bool = False, clock: Callable[[], float] = time.monotonic):
        self.window_s = float(window_s)
        self.stale_after_s = float(stale_after_s)
        self.use_depth = use_depth
        self._clock = clock
        self._start = clock()
        self._lock = threading.Lock()
        self._cams: Dict[str, _Camera] = {c.key: _Camera(c, self.window_s) for c in cameras}
        self._latency: Dict[str, _Window] = {s: _Window(self.window_s) for s in STAGES}
        self._errors = _Window(self.window_s)
        self.error_total = 0
        self._batches = _Window(self.window_s)  # frames per batch
        self.batch_total = 0

    # -- events ----------------------------------------------------------------------------
    def received(self, camera: str) -> None:
        """An image of ``camera`` arrived (before pairing / decoding)."""
        now = self._clock()
        with self._lock:
            c = self._cams[camera]
            c.received.add(now)
            c.totals["received"] += 1
            c.first_image = now if c.first_image is None else c.first_image
            c.last_image = now

    def dropped(self, camera: str) -> None:
        """A pending frame of ``camera`` was replaced by a newer one (latest frame wins)."""
        self._count(camera, "dropped", self._cams[camera].dropped)

    def skipped(self, camera: str, reason: str) -> None:
        """A frame of ``camera`` was not processed, for ``reason`` (e.g. ``unsupported_encoding``)."""
        now = self._clock()
        with self._lock:
            c = self._cams[camera]
            c.skipped.add(now)
            c.skipped_by_reason.setdefault(reason, _Window(self.window_s)).add(now)
            c.skip_totals[reason] += 1
            c.totals["skipped"] += 1

    def depth(self, camera: str, outcome: str) -> None:
        """Depth of a processed frame: ``paired``, ``unsynchronized`` or ``undecodable``."""
        now = self._clock()
        with self._lock:
            c = self._cams[camera]
            c.totals["depth " + outcome] += 1
            c.depth_missing.add(now, float(outcome != "paired"))

    def processed(self, camera: str, timings_ms: Mapping[str, float]) -> None:
        """A frame of ``camera`` was processed and its results published; ``timings_ms`` has
        some of ``STAGES``."""
        now = self._clock()
        with self._lock:
            c = self._cams[camera]
            c.processed.add(now)
            c.totals["processed"] += 1
            for stage, ms in timings_ms.items():
                if stage in self._latency:
                    self._latency[stage].add(now, float(ms))

    def batch(self, n_frames: int) -> None:
        """The worker processed ``n_frames`` frames (the newest of each camera that had one
        waiting) in one ``process_batch`` call."""
        now = self._clock()
        with self._lock:
            self._batches.add(now, float(n_frames))
            self.batch_total += 1

    def error(self) -> None:
        """Processing raised an exception (the node went on)."""
        now = self._clock()
        with self._lock:
            self._errors.add(now)
            self.error_total += 1

    def set_camera_info(self, camera: str, state: str) -> None:
        """The CameraInfo state of ``camera`` (one of the ``CAMERA_INFO_*`` strings)."""
        with self._lock:
            self._cams[camera].camera_info = state

    def _count(self, camera: str, what: str, window: _Window) -> None:
        now = self._clock()
        with self._lock:
            window.add(now)
            self._cams[camera].totals[what] += 1

    # -- totals ----------------------------------------------------------------------------
    def totals(self) -> Dict[str, object]:
        """Totals over all cameras since the start: ``received``, ``processed``, ``dropped``,
        ``skipped``, ``in_flight`` (received and not yet processed, dropped or skipped:
        waiting for CameraInfo, for the worker, or in work), ``errors`` (processing errors),
        and ``skipped_by_reason``. Every received frame ends in exactly one of processed,
        dropped and skipped, so ``received == processed + dropped + skipped + in_flight``."""
        with self._lock:
            out = {k: sum(c.totals[k] for c in self._cams.values())
                   for k in ("received", "processed", "dropped", "skipped")}
            reasons: Dict[str, int] = collections.Counter()
            for c in self._cams.values():
                reasons.update(c.skip_totals)
        out["in_flight"] = _in_flight(out)
        out["errors"] = self.error_total
        out["skipped_by_reason"] = dict(reasons)
        return out

    # -- reports ---------------------------------------------------------------------------
    def reports(self, pipeline_values: Sequence[Tuple[str, str]] = (),
                pipeline_skipped: Mapping[str, int] = ()) -> List[Report]:
        """One report per camera (in the order given), then the pipeline's.

        Args:
            pipeline_values: fixed (key, value) pairs first in the pipeline report (device,
                models).
            pipeline_skipped: the pipeline's own counters of skipped hands by reason
                (``HandMeshPipeline.skipped``), reported as ``hands skipped <reason>``.
        """
        now = self._clock()
        with self._lock:
            out = [self._camera_report(c, now) for c in self._cams.values()]
            out.append(self._pipeline_report(now, pipeline_values, dict(pipeline_skipped or {})))
        return out

    def _rate(self, n: int, now: float) -> float:
        return n / max(min(self.window_s, now - self._start), 1e-3)

    def _camera_report(self, c: _Camera, now: float) -> Report:
        n_in, n_out, n_drop = c.received.count(now), c.processed.count(now), c.dropped.count(now)
        n_skip = c.skipped.count(now)
        since = now - (c.last_image if c.last_image is not None else self._start)
        errors, warnings = [], []
        if c.camera_info == CAMERA_INFO_REQUIRED:
            errors.append("no CameraInfo (require_camera_info): frames skipped")
        if n_in and not n_out and c.first_image is not None and now - c.first_image >= self.window_s:
            errors.append(f"{n_in} frames received, none processed in {self.window_s:g} s")
        if since >= self.stale_after_s:
            warnings.append(f"no image for {since:.1f} s" if c.last_image is not None else
                            f"no image since start ({since:.1f} s)")
        if n_in and n_drop > 0.5 * n_in:
            warnings.append(f"dropped {n_drop} of {n_in} frames (processing slower than the camera)")
        if n_skip:
            why = ", ".join(f"{r} {w.count(now)}" for r, w in sorted(c.skipped_by_reason.items()) if w.count(now))
            warnings.append(f"skipped {n_skip} frames in {self.window_s:g} s ({why})")
        if c.camera_info == CAMERA_INFO_ASSUMED:
            warnings.append("no CameraInfo: assumed intrinsics")
        depth_missing = c.depth_missing.values(now)
        if self.use_depth and depth_missing.size and depth_missing.sum() > 0.5 * depth_missing.size:
            warnings.append(f"{int(depth_missing.sum())} of {depth_missing.size} frames without depth")
        level = ERROR if errors else WARN if warnings else OK
        rate_in, rate_out = self._rate(n_in, now), self._rate(n_out, now)
        message = "; ".join(errors + warnings) or f"{rate_in:.1f} Hz in, {rate_out:.1f} Hz processed"
        t = c.topics
        values = [("image topic", t.image), ("camera_info topic", t.camera_info or "-"),
                  ("camera_info", c.camera_info)]
        if t.depth:
            values.append(("depth topic", t.depth))
        values += [("input rate [Hz]", f"{rate_in:.2f}"), ("processed rate [Hz]", f"{rate_out:.2f}"),
                   ("dropped in window", str(n_drop)), ("skipped in window", str(n_skip)),
                   ("seconds since last image", f"{since:.2f}" if c.last_image is not None else "never"),
                   ("window [s]", f"{self.window_s:g}")]
        for key in ("received", "processed", "dropped", "skipped"):
            values.append((f"{key} total", str(c.totals[key])))
        values.append(("in flight", str(_in_flight(c.totals))))
        values += [(f"skipped {reason}", str(n)) for reason, n in sorted(c.skip_totals.items())]
        if t.depth:
            values += [(f"depth {k} total", str(c.totals["depth " + k]))
                       for k in ("paired", "unsynchronized", "undecodable")]
        return Report(f"camera {t.image}", level, message, values)

    def _pipeline_report(self, now: float, fixed: Sequence[Tuple[str, str]], skipped: Dict[str, int]) -> Report:
        values = list(fixed)
        for stage in STAGES:
            v = self._latency[stage].values(now)
            p50, vmax = (f"{np.median(v):.1f}", f"{v.max():.1f}") if v.size else ("-", "-")
            values += [(f"latency {stage} p50 [ms]", p50), (f"latency {stage} max [ms]", vmax)]
        per_batch = self._batches.values(now)
        values += [("batches total", str(self.batch_total)),
                   ("frames per batch mean", f"{per_batch.mean():.2f}" if per_batch.size else "-"),
                   ("frames per batch max", f"{per_batch.max():.0f}" if per_batch.size else "-")]
        values += [(f"hands skipped {reason}", str(n)) for reason, n in sorted(skipped.items())]
        n_err = self._errors.count(now)
        values.append(("processing errors total", str(self.error_total)))
        if n_err:
            return Report("pipeline", ERROR, f"{n_err} processing errors in {self.window_s:g} s (see the log)", values)
        total = self._latency["total"].values(now)
        message = (f"latency p50 {np.median(total):.1f} ms, max {total.max():.1f} ms" if total.size
                   else f"no frame processed in {self.window_s:g} s")
        return Report("pipeline", OK, message, values)


def to_diagnostic_array(reports: Sequence[Report], node_name: str, hardware_id: str, stamp=None):
    """``diagnostic_msgs/DiagnosticArray`` of ``reports``, status names prefixed
    ``"<node_name>: "`` as ``diagnostic_updater`` names them; ``stamp`` = header stamp."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    arr = DiagnosticArray()
    if stamp is not None:
        arr.header.stamp = stamp
    for r in reports:
        arr.status.append(DiagnosticStatus(
            level=bytes([r.level]), name=f"{node_name}: {r.name}", message=r.message,
            hardware_id=hardware_id, values=[KeyValue(key=k, value=v) for k, v in r.values]))
    return arr


class DiagnosticsPublisher:
    """Publish :class:`Report` s on ``/diagnostics`` every ``period_s``.

    Where ``diagnostic_updater`` is importable (a real ROS 2 install; unless
    ``HAND_MESH_ROS_STANDINS=1``, ``ros.real_packages``) its ``Updater`` does
    the publishing (one task per report name, hardware id set; the updater's own
    ``diagnostic_updater.period`` parameter, default ``period_s``); else a
    ``DiagnosticArray`` publisher driven by a steady-clock timer (so diagnostics go on
    while a replayed bag is paused under ``use_sim_time``), stamped with the node's clock.

    Args:
        node: the rclpy node.
        names: report names, fixed at start-up (the updater's tasks).
        make_reports: returns the current reports (``NodeDiagnostics.reports`` bound to the
            node's pipeline values).
        hardware_id: e.g. the compute device.
        period_s: publishing period [s].
    """

    def __init__(self, node, names: Sequence[str], make_reports: Callable[[], List[Report]],
                 hardware_id: str, period_s: float = 1.0):
        self._node, self._make, self.hardware_id = node, make_reports, hardware_id
        diagnostic_updater = real_packages.load("diagnostic_updater")  # None: stand-in (ros.real_packages)
        self.via = "diagnostic_updater" if diagnostic_updater is not None else "DiagnosticArray publisher"
        from rclpy.clock import Clock, ClockType

        steady = Clock(clock_type=ClockType.STEADY_TIME)
        if diagnostic_updater is not None:
            try:
                self._updater = diagnostic_updater.Updater(node, period=period_s)
            except TypeError:  # older diagnostic_updater: no period argument
                self._updater = diagnostic_updater.Updater(node)
            self._updater.setHardwareID(hardware_id)
            for name in names:
                self._updater.add(name, lambda stat, n=name: self._fill(n, stat))
            if not hasattr(self._updater, "timer"):  # older ones publish only when told to
                self._timer = node.create_timer(period_s, self._updater.force_update, clock=steady)
            return
        from diagnostic_msgs.msg import DiagnosticArray

        self._pub = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._timer = node.create_timer(period_s, self.publish, clock=steady)

    def _fill(self, name: str, stat):
        report = next(r for r in self._make() if r.name == name)
        stat.summary(bytes([report.level]), report.message)
        for k, v in report.values:
            stat.add(k, v)
        return stat

    def publish(self) -> None:
        """Publish the current reports now (the timer's callback)."""
        self._pub.publish(to_diagnostic_array(self._make(), self._node.get_name(), self.hardware_id,
                                              self._node.get_clock().now().to_msg()))
