"""The stamp of a frame's outputs: one place for the header of the messages written to an
output bag and the ``stamp_ns`` / ``frame_id`` of the frame JSON."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

from hand_mesh_ros.frames import Frame

#: optical frame of inputs that name none (videos, images), ``--frame-id``
DEFAULT_FRAME_ID = "camera_color_optical_frame"


@dataclass(frozen=True)
class Stamp:
    """A frame's output stamp: ``ns`` [ns since the epoch] and ``frame_id`` (the optical
    frame its hands are in)."""

    ns: int
    frame_id: str

    def header(self):
        """As a ``std_msgs/Header`` (needs the ROS 2 Python messages)."""
        from std_msgs.msg import Header

        h = Header(frame_id=self.frame_id)
        h.stamp.sec, h.stamp.nanosec = divmod(self.ns, 1_000_000_000)
        return h


class StampClock:
    """Gives each frame its output :class:`Stamp`.

    A frame with its own stamp (a bag image's ``header.stamp``) keeps it, in its own optical
    frame or else ``frame_id``. A frame without one (video, images) is stamped only when
    ``synthesize`` (a sink writes messages: ROS messages need a stamp, and one of 0 would mean
    "latest" to tf2): the clock's start + the frame's video time (images: 0.1 s apart), in
    ``frame_id``; else its stamp is None (unknown).

    Args:
        frame_id: the optical frame of inputs that name none.
        synthesize: stamp frames that have no stamp of their own.
        start_ns: [ns since the epoch] the synthesized stamp of a video's first frame
            (default: the wall clock when the clock is made).
    """

    def __init__(self, frame_id: str = DEFAULT_FRAME_ID, synthesize: bool = False, start_ns: Optional[int] = None):
        self.frame_id, self.synthesize = frame_id, synthesize
        self.start_ns = time.time_ns() if start_ns is None else int(start_ns)

    def __call__(self, frame: Frame) -> Optional[Stamp]:
        if frame.stamp_ns:
            return Stamp(int(frame.stamp_ns), frame.frame_id or self.frame_id)
        if not self.synthesize:
            return None
        t = frame.time_s if frame.time_s is not None else 0.1 * frame.index
        return Stamp(self.start_ns + int(round(t * 1e9)), self.frame_id)
