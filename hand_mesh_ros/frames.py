"""Frames of a video file, one image file or a folder of images — ROS-free input reading.

Used by the offline CLI (``hand-mesh run``), the ``camera_publisher`` node and the
benchmark, so that all three read a path the same way. Frames are (H, W, 3) uint8 RGB.
:class:`FrameStream` is what ``hand-mesh run`` reads: :class:`FrameSource` here and
``bag.BagFrameSource`` (rosbag2) both are one.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Protocol

import numpy as np

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class InputError(Exception):
    """The input cannot be used (missing, unreadable, empty); the message names the path."""


def list_files(path: Path, exts, name: str = "input", contents: str = "images") -> Optional[List[Path]]:
    """The files an input path names: a folder's files with an extension in ``exts`` (sorted
    by name), ``[path]`` for a file with such an extension, None for another readable file
    (e.g. a video, for the caller to open).

    Raises:
        InputError: the path does not exist, the folder holds no such file, or the file is
            not readable (messages "<name> not found: ...", "no <contents> (...) in folder: ...").
    """
    if not path.exists():
        raise InputError(f"{name} not found: {path}")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in exts)
        if not files:
            raise InputError(f"no {contents} ({', '.join(exts)}) in folder: {path}")
        return files
    if not os.access(path, os.R_OK):
        raise InputError(f"cannot read {name} (permission denied): {path}")
    return [path] if path.suffix.lower() in exts else None


@dataclass
class Frame:
    """One input frame.

    Attributes:
        index: 0-based position in the source.
        image: (H, W, 3) uint8 RGB.
        file: the image file (image and folder inputs), else None.
        time_s: [s] from the start of the video (video and bag inputs), else None.
        stamp_ns: the image's own stamp [ns since the epoch] where the input has one (a
            bag image's ``header.stamp``), else None; 0 counts as none.
        frame_id: the image's optical frame where the input names one, else "".
        camera_info: the image's ``sensor_msgs/CameraInfo`` where the input has one (a
            bag's, as deserialized by rosbags), else None.
    """

    index: int
    image: np.ndarray
    file: Optional[str] = None
    time_s: Optional[float] = None
    stamp_ns: Optional[int] = None
    frame_id: str = ""
    camera_info: object = None


class FrameStream(Protocol):
    """An input of ``hand-mesh run``: a re-iterable sequence of :class:`Frame`.

    Attributes:
        is_video: True when the frames are a sequence of one camera (MediaPipe's tracking
            mode, track ids carried over), False for independent images.
        fps: the frame rate [Hz] where known, else None.
    """

    is_video: bool
    fps: Optional[float]

    def __len__(self) -> int:
        """Number of frames one pass yields (for progress; a container's count may be off)."""

    def __iter__(self) -> Iterator[Frame]:
        """The frames, from the first; raises ``InputError`` for an input that turns out
        unusable while it is read."""

    def summary(self) -> Dict[str, object]:
        """The source's entries of ``summary.json`` (e.g. a bag's topics and skipped messages)."""


class FrameSource:
    """Frames of a video file, one image file, or a folder of images (sorted by name).

    The input is checked when the source is made (not on the first frame); iterating again
    starts from the first frame.

    Args:
        path: the input path.
        max_frames: yield at most this many frames per pass (None: all).

    Attributes:
        is_video: True for a video file.
        fps: the video's frame rate [Hz] from its container (None for images or unknown).

    Raises:
        InputError: the path does not exist, a folder holds no images, or a file is neither
            a readable image nor a readable video. Iteration raises InputError for an
            image file of a folder that cannot be decoded.
    """

    def __init__(self, path, max_frames: Optional[int] = None):
        import cv2

        self.path = Path(path)
        self.max_frames = max_frames
        self.fps: Optional[float] = None
        self.is_video = False
        self._files: List[Path] = list_files(self.path, IMAGE_EXTS) or []
        if self._files:
            return
        cap = cv2.VideoCapture(str(self.path))
        ok = cap.isOpened() and cap.grab()
        fps = cap.get(cv2.CAP_PROP_FPS) if ok else 0.0
        cap.release()
        if not ok:
            if cv2.imread(str(self.path)) is not None:  # an image with an unusual extension
                self._files = [self.path]
                return
            raise InputError(f"cannot read input as an image or a video: {self.path}")
        self.is_video = True
        self.fps = float(fps) if fps and np.isfinite(fps) and fps > 0 else None

    def __len__(self) -> int:
        """Number of frames one pass yields (a video's count is the container's)."""
        if self.is_video:
            import cv2

            cap = cv2.VideoCapture(str(self.path))
            n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            cap.release()
        else:
            n = len(self._files)
        return n if self.max_frames is None else min(n, self.max_frames)

    def __iter__(self) -> Iterator[Frame]:
        import cv2

        if self.is_video:
            cap = cv2.VideoCapture(str(self.path))
            try:
                i = 0
                while self.max_frames is None or i < self.max_frames:
                    ok, bgr = cap.read()
                    if not ok:
                        break
                    t = i / self.fps if self.fps else cap.get(cv2.CAP_PROP_POS_MSEC) / 1e3
                    yield Frame(i, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), time_s=float(t))
                    i += 1
            finally:
                cap.release()
            return
        for i, f in enumerate(self._files):
            if self.max_frames is not None and i >= self.max_frames:
                break
            bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if bgr is None:
                raise InputError(f"cannot read image: {f}")
            yield Frame(i, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), file=str(f))

    def summary(self) -> Dict[str, object]:
        """No entries: a video or images add nothing to the run's (``FrameStream.summary``)."""
        return {}
