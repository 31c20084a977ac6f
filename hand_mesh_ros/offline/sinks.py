"""Output sinks of ``hand-mesh run``: each is given every processed frame and writes one kind
of output; :class:`Sinks` is all of a run's as one.

``--output DIR``:

* :class:`FrameJsonSink` ``frames/NNNNNN.json`` (``records.frame_record``);
* :class:`MeshSink` ``meshes/NNNNNN_<side>_<track_id>.<ply|obj>``: each hand's mesh [m,
  camera optical frame] with that side's outward face winding (trimesh);
* :class:`OverlaySink` (unless ``--no-overlay``) ``overlay/NNNNNN.png``: the meshes drawn
  over the frame (``core.render``), and for a video ``overlay.mp4`` (mp4v).

``--output-bag OUT.mcap``: :class:`BagSink`, ``/hands/mesh``, ``/tf``, ``/hands/markers``
(and with ``--bag-images`` the input images and CameraInfo) as the node publishes them.

A sink's files are complete once it is closed, also when the run stops with an error (a
valid bag, a playable video of the frames processed so far).
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Protocol

import numpy as np

from hand_mesh_ros.bag import BagFrame
from hand_mesh_ros.core.types import FrameResult
from hand_mesh_ros.frames import Frame, FrameStream
from hand_mesh_ros.offline.records import frame_record, mesh_file
from hand_mesh_ros.offline.stamps import Stamp

#: side (0 left, 1 right) -> (F, 3) int faces of that side's mesh (``HandModel.faces_for``)
FacesFor = Callable[[int], np.ndarray]


class OutputSink(Protocol):
    """One kind of output of a run.

    Attributes:
        needs_stamp: the sink writes messages, which need a stamp also for frames that have
            none of their own (``stamps.StampClock`` then synthesizes one).
    """

    needs_stamp: bool

    def write(self, frame: Frame, result: FrameResult, stamp: Optional[Stamp]) -> None:
        """Write the outputs of one processed frame (``stamp``: ``StampClock``'s)."""

    def close(self) -> Dict[str, object]:
        """Finish the files (also after an error); returns the sink's entries of summary.json."""


class FrameJsonSink:
    """``DIR/frames/NNNNNN.json``, one per frame (``records.frame_record``); the hands' mesh
    files are named for ``mesh_format`` (written by :class:`MeshSink`)."""

    needs_stamp = False

    def __init__(self, out: Path, mesh_format: str):
        self.folder, self.mesh_format = Path(out) / "frames", mesh_format
        self.folder.mkdir(parents=True, exist_ok=True)

    def write(self, frame: Frame, result: FrameResult, stamp: Optional[Stamp]) -> None:
        record = frame_record(frame, result, stamp, self.mesh_format)
        (self.folder / f"{frame.index:06d}.json").write_text(json.dumps(record, indent=1))

    def close(self) -> Dict[str, object]:
        return {}


class MeshSink:
    """``DIR/meshes/NNNNNN_<side>_<track_id>.<ply|obj>`` (``records.mesh_file``): each hand's
    vertices [m, camera optical frame] with ``faces_for(side)``, exported by trimesh."""

    needs_stamp = False

    def __init__(self, out: Path, mesh_format: str, faces_for: FacesFor):
        self.out, self.mesh_format, self.faces_for = Path(out), mesh_format, faces_for
        (self.out / "meshes").mkdir(parents=True, exist_ok=True)

    def write(self, frame: Frame, result: FrameResult, stamp: Optional[Stamp]) -> None:
        import trimesh

        for hand in result.hands:
            faces = np.asarray(self.faces_for(hand.side), np.int64)
            trimesh.Trimesh(np.asarray(hand.vertices, np.float64), faces, process=False).export(
                self.out / mesh_file(frame.index, hand, self.mesh_format))

    def close(self) -> Dict[str, object]:
        return {}


class OverlaySink:
    """``DIR/overlay/NNNNNN.png``: the hands' meshes drawn over the frame
    (``core.render.render_overlay``, lens distortion included); with ``video_fps`` also
    ``DIR/overlay.mp4`` (mp4v, that frame rate [Hz], the first frame's size).

    Raises:
        OSError (on write): OpenCV cannot open ``overlay.mp4`` for writing.
    """

    needs_stamp = False

    def __init__(self, out: Path, faces_for: FacesFor, video_fps: Optional[float] = None):
        self.out, self.faces_for, self.video_fps = Path(out), faces_for, video_fps
        (self.out / "overlay").mkdir(parents=True, exist_ok=True)
        self._video = None

    def write(self, frame: Frame, result: FrameResult, stamp: Optional[Stamp]) -> None:
        import cv2

        from hand_mesh_ros.core.render import render_overlay

        over = render_overlay(frame.image, result.hands, result.intrinsics, self.faces_for)
        bgr = cv2.cvtColor(over, cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(self.out / "overlay" / f"{frame.index:06d}.png"), bgr)
        if self.video_fps is None:
            return
        if self._video is None:
            path = self.out / "overlay.mp4"
            h, w = bgr.shape[:2]
            self._video = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), self.video_fps, (w, h))
            if not self._video.isOpened():
                raise OSError(f"cannot write video: {path}")
        self._video.write(bgr)

    def close(self) -> Dict[str, object]:
        if self._video is not None:
            self._video.release()
            self._video = None
        return {}


class BagSink:
    """``--output-bag``: ``/hands/mesh`` (HandMeshArray), ``/tf`` (the joint frames) and
    ``/hands/markers``, built by ``ros.messages`` as the node publishes them, in an MCAP
    rosbag2 (``bag.BagWriter``); each frame's messages carry its stamp and are logged at
    the input bag's log time of the image, else at the stamp.

    Args:
        path, overwrite: as ``bag.BagWriter``.
        tf_prefix: TF frame prefix (``hand_`` -> ``hand_right/index_tip``).
        faces_for: the mesh faces of a side, for the markers.
        images_of: with ``--bag-images``, the run's source: its images and CameraInfo are
            written too (a bag's messages as recorded, on their topics; a video's or images'
            as ``/image`` rgb8 and ``/camera_info`` of the intrinsics used), else None.

    Raises:
        InputError: the output exists and not ``overwrite``.
        ImportError: the ROS 2 Python messages are not importable.
    """

    needs_stamp = True

    def __init__(self, path, overwrite: bool, tf_prefix: str, faces_for: FacesFor,
                 images_of: Optional[FrameStream] = None):
        from hand_mesh_ros.bag import BagWriter

        self.path, self.writer = str(path), BagWriter(path, overwrite)
        self.tf_prefix, self.faces_for, self.images_of = tf_prefix, faces_for, images_of

    def write(self, frame: Frame, result: FrameResult, stamp: Optional[Stamp]) -> None:
        from tf2_msgs.msg import TFMessage

        from hand_mesh_ros.ros import messages

        header, w = stamp.header(), self.writer
        log_time = (frame.log_time_ns if isinstance(frame, BagFrame) else 0) or stamp.ns
        w.write("/hands/mesh", messages.hand_mesh_array(result.hands, header), log_time)
        w.write("/tf", TFMessage(transforms=messages.joint_transforms(result.hands, header, self.tf_prefix)),
                log_time)
        w.write("/hands/markers", messages.marker_array(result.hands, header, self.faces_for), log_time)
        if self.images_of is not None:
            self._write_input(frame, result, header, log_time)

    def _write_input(self, frame: Frame, result: FrameResult, header, log_time: int) -> None:
        w, s = self.writer, self.images_of
        if isinstance(frame, BagFrame) and frame.raw is not None:  # the bag's own messages, as recorded
            w.write_raw(s.image_topic, s.image_type, frame.raw, log_time, s.image_msgdef)
            if frame.info_raw is not None:
                w.write_raw(s.camera_info_topic, "sensor_msgs/msg/CameraInfo", frame.info_raw, log_time, s.info_msgdef)
            return
        from hand_mesh_ros.ros.camera_publisher import camera_info_msg
        from hand_mesh_ros.ros.image_conversion import rgb_to_image

        k = result.intrinsics
        h, wd = frame.image.shape[:2]
        w.write("/image", rgb_to_image(frame.image, header), log_time)
        w.write("/camera_info", camera_info_msg(wd, h, header, k.fx, k.fy, k.cx, k.cy), log_time)

    def close(self) -> Dict[str, object]:
        """Finish the bag (a valid bag of what was written, also after an error); its path
        and message counts by topic."""
        self.writer.close()
        return {"output_bag": self.path, "output_bag_messages": dict(self.writer.counts)}


class Sinks:
    """A run's sinks as one ``OutputSink``: ``write`` writes to each in order; ``close``
    closes each, also when one fails (then raising the first error), and merges their
    summary entries.

    Use :meth:`open` to make them: a sink that cannot be made closes those made before it.
    """

    def __init__(self, sinks: Iterable[OutputSink]):
        self.sinks: List[OutputSink] = list(sinks)
        self.needs_stamp = any(s.needs_stamp for s in self.sinks)

    @classmethod
    def open(cls, makers: Iterable[Callable[[], OutputSink]]) -> "Sinks":
        """The sinks ``makers`` make, in order."""
        sinks: List[OutputSink] = []
        try:
            for make in makers:
                sinks.append(make())
        except BaseException:
            with contextlib.suppress(Exception):  # the error that matters is the one making a sink
                cls(sinks).close()
            raise
        return cls(sinks)

    def write(self, frame: Frame, result: FrameResult, stamp: Optional[Stamp]) -> None:
        for sink in self.sinks:
            sink.write(frame, result, stamp)

    def close(self) -> Dict[str, object]:
        entries: Dict[str, object] = {}
        error: Optional[BaseException] = None
        for sink in self.sinks:
            try:
                entries.update(sink.close())
            except BaseException as e:  # the other sinks' files are finished all the same
                error = error or e
        if error is not None:
            raise error
        return entries
