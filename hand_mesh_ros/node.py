"""``hand_mesh_node``: the ROS 2 adapter around ``core.pipeline.HandMeshPipeline``.

The node only wires:

* parameters: every entry of ``hand_mesh_ros.config.PARAMETERS`` (``ros/parameters.py``);
* inputs: one ``ros.camera_stream.CameraStream`` per camera: ``image`` (raw, or
  ``<image>/compressed`` with ``image_transport: compressed``) and ``camera_info`` paired by
  stamp (``message_filters`` where installed), optionally ``depth``; ``image_topics: [T, ...]``
  for several cameras (camera info on ``<namespace of T>/camera_info``);
* a worker loop (``work``; the console script runs it in the main thread and spins the
  executor in a second one, ``ros.executor_thread``, see ``worker_thread``): takes the
  newest frame of every camera (``LatestFrames``: when processing is slower than the
  cameras, old frames are dropped and counted, never queued), runs the pipeline on them as
  one batch, and publishes;
* outputs (``ros.publishers.HandPublishers``): ``hands/mesh``, ``hands/markers``, ``/tf``,
  ``hands/overlay``, all with the source image's header;
* ``/diagnostics`` (``ros.diagnostics``), from the one set of counters (``self.counters``)
  that the shutdown line reads too: every received frame ends as processed, dropped or
  skipped with a reason.

Bad input (unsupported encoding, empty or corrupt image, CameraInfo of another size, NaN /
zero intrinsics, a re-sent stamp, an image whose CameraInfo never pairs) logs a warning
throttled per (camera, reason), is counted by reason, and the node goes on.

Composable: ``HandMeshNode(**node_kwargs)`` never calls ``rclpy.init``/``spin``/``shutdown``;
``main()`` is the console-script wrapper (``hand_mesh_node`` / ``python -m hand_mesh_ros.node``).
"""
from __future__ import annotations

import collections
import signal
import sys
import threading
import time
import traceback
from typing import Dict, List, Optional

import rclpy
import rclpy.executors
from rclpy.node import Node

from hand_mesh_ros.config import NODE_NAME, NodeParams, PipelineConfig
from hand_mesh_ros.core.pipeline import HandMeshPipeline
from hand_mesh_ros.core.throttle import WARN_THROTTLE_S, ReasonThrottle, with_held_count
from hand_mesh_ros.ros import camera_inputs, dds_profile, diagnostics
from hand_mesh_ros.ros.camera_inputs import Frame, LatestFrames, transport_topic
from hand_mesh_ros.ros.camera_stream import CameraStream, FrameSkip
from hand_mesh_ros.ros.diagnostics import CameraTopics, DiagnosticsPublisher, NodeDiagnostics
from hand_mesh_ros.ros.executor_thread import ExecutorThread
from hand_mesh_ros.ros.parameters import declare_parameters
from hand_mesh_ros.ros.publishers import HandPublishers
from hand_mesh_ros.ros.sync import stamp_ns

#: /diagnostics period [s] and the window of its rates and latency statistics [s].
DIAGNOSTICS_PERIOD_S = 1.0
DIAGNOSTICS_WINDOW_S = 5.0
#: a camera with no image for this long is WARN on /diagnostics [s].
STALE_AFTER_S = 2.0


def camera_topics(params: NodeParams) -> List[CameraTopics]:
    """The topics of every camera, as subscribed before remapping and transport suffix
    (``ros.camera_inputs.camera_topics``)."""
    return camera_inputs.camera_topics(params.image_topics, params.depth_topics, params.use_camera_info,
                                       params.use_depth)


class HandMeshNode(Node):
    """Camera images in, hand meshes out (see the module docstring for topics and threading).

    Args:
        node_name: default ``hand_mesh_node`` (the key in config/hands.yaml).
        worker_thread: process frames in a thread of the node's own (True: the node is
            composable, any executor spins it); False: the caller runs :meth:`work` (what
            ``main`` does, in the process's main thread: PyTorch's OpenMP runs a forward of
            MediaPipe's networks 2-2.4x slower from a second thread than from the main thread
            on a 2-core CPU, measured 11 vs 26 ms for the palm network; with
            ``detector: mediapipe`` it makes no difference).
        **kwargs: standard ``rclpy.node.Node`` arguments (namespace, context,
            parameter_overrides, ...).

    Raises (at construction, before anything is subscribed):
        ValueError: an invalid parameter (the message names it and the allowed values), or a
            pipeline configuration error; FileNotFoundError: e.g. a missing MANO folder.
    """

    def __init__(self, node_name: str = NODE_NAME, worker_thread: bool = True, **kwargs):
        super().__init__(node_name, **kwargs)
        self.params = p = declare_parameters(self)
        render = _overlay_renderer() if p.publish_overlay else None
        self.pipe = HandMeshPipeline(PipelineConfig.from_values(p.as_dict()))
        self.cameras = [self._resolved(c) for c in camera_topics(p)]
        self.counters = NodeDiagnostics(self.cameras, DIAGNOSTICS_WINDOW_S, STALE_AFTER_S, p.use_depth)
        self._throttle = ReasonThrottle(WARN_THROTTLE_S)
        self.frames = LatestFrames(on_drop=self.counters.dropped)
        self.outputs = HandPublishers(self, p, self.pipe.hand_model.faces_for, render)
        # first-call costs (MediaPipe's graph per camera: ~0.45 s) paid now, not on the first frame
        warm_s = self.pipe.warm_up([c.key for c in self.cameras])
        self.streams: Dict[str, CameraStream] = {
            c.key: CameraStream(self, c, p, self.frames, self.counters, self._skip, self._warn) for c in self.cameras}
        self._diag_pub = DiagnosticsPublisher(
            self, [f"camera {c.image}" for c in self.cameras] + ["pipeline"], self._reports,
            str(self.pipe.device), DIAGNOSTICS_PERIOD_S)
        self._stop = threading.Event()
        self._worker = None
        if worker_thread:
            self._worker = threading.Thread(target=self.work, name="hand_mesh_worker", daemon=True)
            self._worker.start()
        #: what pairs images with CameraInfo, sends /tf, publishes /diagnostics: the real ROS
        #: packages where installed, else the node's stand-ins (``ros.real_packages``)
        self.sync_via = next(iter(self.streams.values())).sync_via
        self.get_logger().info(
            f"ready: hand model '{self.pipe.hand_model.name}', detector '{self.pipe.detector_name}', regressor "
            f"'{p.regressor}', device {self.pipe.device}, cameras {[c.image for c in self.cameras]} "
            f"({p.image_transport}; warmed up in {warm_s:.2f} s), sync via {self.sync_via}, tf via "
            f"{self.outputs.tf.via}, /diagnostics via {self._diag_pub.via}")

    def _resolved(self, cam: CameraTopics) -> CameraTopics:
        """``cam`` with each topic remapped and fully qualified, plus the transport suffix
        (image_transport resolves the base name first: a remapping of ``image`` also moves
        ``image/compressed``)."""
        t = self.params.image_transport

        def res(name: str, depth: bool = False) -> str:
            return transport_topic(self.resolve_topic_name(name), t, depth) if name else ""

        info = self.resolve_topic_name(cam.camera_info) if cam.camera_info else ""
        return CameraTopics(cam.key, res(cam.image), info, res(cam.depth, depth=True))

    # -- counting and logging ----------------------------------------------------------------
    @property
    def stats(self) -> Dict[str, object]:
        """Frame totals since the start (``NodeDiagnostics.totals``): received, processed,
        dropped, skipped, in_flight, errors, skipped_by_reason."""
        return self.counters.totals()

    @property
    def skip_reasons(self) -> "collections.Counter[str]":
        """Skipped frames by reason, all cameras (0 for a reason never seen)."""
        return collections.Counter(self.counters.totals()["skipped_by_reason"])

    def _warn(self, key: tuple, text: str) -> None:
        """A warning, at most one per ``key`` per ``WARN_THROTTLE_S`` (saying how many were held)."""
        held = self._throttle(key)
        if held is not None:
            self.get_logger().warning(with_held_count(text, held))

    def _skip(self, camera: str, reason: str, text: str) -> None:
        """Count a skipped frame and warn, throttled per (camera, reason)."""
        self.counters.skipped(camera, reason)
        self._warn((camera, reason), f"skipping a frame of '{self.streams[camera].topics.image}' ({reason}): {text}")

    # -- the worker loop ----------------------------------------------------------------------
    def work(self) -> None:
        """Process frames until the node is destroyed or its context shut down (the worker
        thread's loop; with ``worker_thread=False`` the caller's)."""
        while not self._stop.is_set() and self.context.ok():
            frames = self.frames.take(timeout=0.1)
            if frames and not self._stop.is_set():
                self._process(frames)

    def _process(self, frames: Dict[str, Frame]) -> None:
        """Decode the frames (skipping bad ones), run the pipeline on them as one batch, publish."""
        batch, taken = [], []
        for camera, frame in frames.items():
            frame = Frame(*frame)  # (image, info[, received]) tuples are taken too (the tests' direct calls)
            t0 = time.perf_counter()
            try:
                stamp = stamp_ns(frame.image)
                if self.frames.last_processed(camera) == stamp:
                    raise FrameSkip("duplicate_stamp", f"stamp {stamp * 1e-9:.9f} s was processed already")
                batch.append(self.streams[camera].decode(frame))
            except FrameSkip as e:
                self._skip(camera, e.reason, str(e))
                continue
            except Exception:  # a fault decoding this frame: counted, logged; the others go on
                self._failed([camera])
                continue
            taken.append((frame, (time.perf_counter() - t0) * 1e3))
        if not batch:
            return
        self.counters.batch(len(batch))
        done = 0
        try:
            results = self.pipe.process_batch(batch)
            for item, (frame, decode_ms), res in zip(batch, taken, results):
                t0 = time.perf_counter()
                self.outputs.publish(item.image, frame.image.header, res)
                self.frames.finished(item.camera, frame)
                self.counters.processed(item.camera, dict(res.timings_ms, decode=decode_ms,
                                                          publish=(time.perf_counter() - t0) * 1e3,
                                                          total=_since_ms(frame.received)))
                done += 1
        except Exception:  # keep the node alive; the traceback says what broke
            self._failed([item.camera for item in batch[done:]])

    def _failed(self, cameras: List[str]) -> None:
        """The frames of ``cameras`` failed with the exception being handled: each counted as
        skipped (``processing_error``), the traceback logged; nothing while shutting down
        (Ctrl-C shut rclpy down under the batch: stopping, not an error)."""
        if not self.context.ok():
            return
        self.counters.error()
        for camera in cameras:
            self.counters.skipped(camera, "processing_error")
        self.get_logger().error("processing failed:\n" + traceback.format_exc(), throttle_duration_sec=WARN_THROTTLE_S)

    def _reports(self) -> List[diagnostics.Report]:
        for stream in self.streams.values():
            stream.sweep()  # images whose CameraInfo never came, also when the stream stopped
        p, pipe = self.params, self.pipe
        fixed = [("device", str(pipe.device)), ("detector", pipe.detector_name), ("detector parameter", p.detector),
                 ("regressor", p.regressor), ("hand model", pipe.hand_model.name),
                 ("mano model dir", p.mano_model_dir or "-"), ("checkpoint", p.checkpoint or "-"),
                 ("image transport", p.image_transport),
                 ("frames processed total", str(self.counters.totals()["processed"])),
                 ("detector re-detections total", str(pipe.redetections))]
        return self.counters.reports(fixed, dict(pipe.skipped))

    def summary(self) -> Dict[str, object]:
        """What the node did, for its shutdown line: frame totals and skipped hands."""
        return dict(self.counters.totals(), hands_skipped=dict(self.pipe.skipped))

    def destroy_node(self):
        """Stop and join the worker thread, release the pipeline, then destroy the node."""
        self._stop_worker()
        pipe = getattr(self, "pipe", None)
        if pipe is not None:
            pipe.close()
        return super().destroy_node()

    def _stop_worker(self, timeout: float = 10.0) -> None:
        stop = getattr(self, "_stop", None)
        if stop is None:
            return
        stop.set()
        self.frames.wake()
        worker = getattr(self, "_worker", None)
        if worker is not None and worker.is_alive() and worker is not threading.current_thread():
            worker.join(timeout)


def _since_ms(t: Optional[float]) -> float:
    """Milliseconds from the monotonic time ``t`` [s] to now (0 when unknown)."""
    return (time.monotonic() - t) * 1e3 if t is not None else 0.0


def _overlay_renderer():
    try:
        from hand_mesh_ros.core.render import render_overlay
    except ImportError as e:
        raise ValueError(f"parameter 'publish_overlay': true needs hand_mesh_ros.core.render ({e})") from None
    return render_overlay


def main(args=None) -> int:
    """Console script ``hand_mesh_node``: init, spin until Ctrl-C / shutdown, clean up.
    Returns 2 on a start-up error (bad parameter, missing model file), logged as FATAL."""
    dds = dds_profile.apply()  # before the first participant (markers and overlays are large)
    rclpy.init(args=args)
    logger = rclpy.logging.get_logger(NODE_NAME)
    logger.info(dds)
    try:
        node = HandMeshNode(worker_thread=False)  # frames are processed in this (the main) thread
    except (ValueError, FileNotFoundError, ImportError) as e:
        logger.fatal(f"start-up failed: {e}")
        rclpy.try_shutdown()
        return 2
    except KeyboardInterrupt:  # Ctrl-C while the models load
        logger.info("interrupted during start-up")
        rclpy.try_shutdown()
        return 0
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(node)
    spinner = ExecutorThread(executor, logger, on_error=node.counters.error, name="hand_mesh_executor").start()
    try:
        node.work()  # until Ctrl-C / shutdown
    except KeyboardInterrupt:
        pass
    finally:
        # Ctrl-C in a terminal reaches `ros2 launch` too, which sends one more SIGINT: it must
        # not interrupt the clean-up (a KeyboardInterrupt traceback, exit code -2)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        summary = node.summary()
        spinner.stop()  # no callback runs under destroy_node
        node.destroy_node()
        logger.info(f"stopped: {summary}")
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
