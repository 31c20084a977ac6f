"""Depth frames beside a colour input (offline CLI), ROS-free.

Accepted inputs, each frame registered to the colour frame of the same index:

* a folder of depth images, sorted by name (as ``frames.FrameSource`` sorts colour images):
  16-bit PNG / TIFF in millimetres (0 = no measurement; what RealSense, Azure Kinect, TUM
  RGB-D, ScanNet... datasets store) or ``.npy`` arrays (float metres, or uint16 millimetres);
* one such file (beside a single colour image);
* a 16-bit single-channel lossless video in millimetres, e.g. FFV1 ``gray16le`` in ``.mkv``
  (``ffmpeg -i %06d.png -c:v ffv1 -pix_fmt gray16le depth.mkv``). Lossy codecs are 8-bit and
  refused: 8-bit values are not a metric depth.

Frames are yielded as read (uint16 millimetres or float metres, (H, W));
``core.depth.depth_in_metres`` turns them into metres. OpenEXR is not read (OpenCV needs
``OPENCV_IO_ENABLE_OPENEXR`` set before it is imported); convert to ``.npy``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, List

import numpy as np

from hand_mesh_ros.frames import InputError, list_files

DEPTH_EXTS = (".png", ".tif", ".tiff", ".npy")


def read_depth_file(path: Path) -> np.ndarray:
    """One depth file: (H, W) uint16 [mm] (PNG / TIFF / .npy) or float32 [m] (.npy).

    Raises:
        InputError: unreadable, not single-channel, or not 16-bit / float (the message
            names the file).
    """
    import cv2

    if path.suffix.lower() == ".npy":
        try:
            d = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise InputError(f"cannot read depth array {path}: {e}") from e
    else:
        d = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if d is None:
            raise InputError(f"cannot read depth image: {path}")
    if d.ndim == 3 and d.shape[2] == 1:
        d = d[:, :, 0]
    if d.ndim != 2:
        raise InputError(f"depth must be single-channel (H, W), got {d.shape}: {path}")
    if d.dtype == np.uint16:
        return d
    if d.dtype in (np.float32, np.float64):
        return d.astype(np.float32)
    raise InputError(f"depth must be 16-bit millimetres or float metres, got {d.dtype}: {path}")


class DepthSource:
    """Depth frames of a folder, a file or a 16-bit video (see the module docstring).

    Args:
        path: the depth input.

    Raises:
        InputError: missing path, a folder without depth files, or a file that is neither
            a depth image / array nor a 16-bit video. Iterating raises InputError for a
            frame that cannot be read.
    """

    def __init__(self, path):
        self.path = Path(path)
        self.is_video = False
        self._files: List[Path] = list_files(self.path, DEPTH_EXTS, "depth input", "depth files") or []
        if self._files:
            return
        cap = self._open()
        ok, frame = cap.read()
        cap.release()
        if not ok:
            raise InputError(f"cannot read depth input as a depth image, array or video: {self.path}")
        if frame.dtype != np.uint16:
            raise InputError(f"depth video decodes as {frame.dtype}, not 16-bit millimetres (use a lossless "
                             f"16-bit codec, e.g. FFV1 gray16le): {self.path}")
        self.is_video = True

    def _open(self):
        import cv2

        return cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_CONVERT_RGB, 0])

    def __len__(self) -> int:
        """Number of frames (a video's count is the container's)."""
        if self.is_video:
            import cv2

            cap = self._open()
            n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            cap.release()
            return n
        return len(self._files)

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.is_video:
            cap = self._open()
            try:
                while True:
                    ok, frame = cap.read()
                    if not ok:
                        return
                    yield frame[:, :, 0] if frame.ndim == 3 else frame
            finally:
                cap.release()
        for f in self._files:
            yield read_depth_file(f)
