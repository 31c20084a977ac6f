"""``sensor_msgs/Image`` <-> numpy, without cv_bridge.

Choice: this module always uses its own converter, also where ``cv_bridge`` is installed.
For the 8-bit colour / mono encodings a camera publishes, cv_bridge adds nothing the
few numpy lines below do not do (it also goes through a copy and an OpenCV colour
conversion), and using one converter everywhere keeps behaviour (error messages, the
handling of ``step`` padding) identical between a user's ROS 2 install and the pip-wheel
environment in which the tests run.

Supported input encodings (``sensor_msgs/image_encodings``):

* ``rgb8``, ``bgr8``, ``8UC3`` (OpenCV order, i.e. BGR, as cv_bridge treats it)
* ``rgba8``, ``bgra8``, ``8UC4`` (BGRA) -- alpha is dropped
* ``mono8``, ``8UC1`` -- grey replicated to three channels
* ``mono16``, ``16UC1`` -- grey, scaled to 8 bits (``>> 8``), byte order from ``is_bigendian``

Everything else raises ``ValueError`` naming the encoding and the supported list.
"""
from __future__ import annotations

import numpy as np

#: encoding -> (channels, bytes per channel, channel order of the result before conversion)
_ENCODINGS = {
    "rgb8": (3, 1, "rgb"),
    "bgr8": (3, 1, "bgr"),
    "8UC3": (3, 1, "bgr"),
    "rgba8": (4, 1, "rgba"),
    "bgra8": (4, 1, "bgra"),
    "8UC4": (4, 1, "bgra"),
    "mono8": (1, 1, "mono"),
    "8UC1": (1, 1, "mono"),
    "mono16": (1, 2, "mono"),
    "16UC1": (1, 2, "mono"),
}

#: encodings accepted by :func:`image_to_rgb`.
SUPPORTED_ENCODINGS = tuple(_ENCODINGS)


def image_to_rgb(msg) -> np.ndarray:
    """Convert a ``sensor_msgs/Image`` to an RGB array.

    Args:
        msg: ``sensor_msgs.msg.Image`` (or any object with ``height``, ``width``,
            ``encoding``, ``is_bigendian``, ``step``, ``data``). Rows may be padded:
            ``step`` [bytes] >= ``width * channels * bytes_per_channel``.

    Returns:
        (H, W, 3) uint8 C-contiguous array, RGB order. Always a copy: it does not alias
        ``msg.data``.

    Raises:
        ValueError: unsupported encoding; zero width or height; ``step`` smaller than one
            row; ``data`` shorter than ``step * height``.
    """
    enc = msg.encoding
    if enc not in _ENCODINGS:
        raise ValueError(
            f"unsupported image encoding '{enc}' (supported: {', '.join(SUPPORTED_ENCODINGS)})")
    channels, bpc, order = _ENCODINGS[enc]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise ValueError(f"empty image: {w}x{h} ({enc})")
    row_bytes = w * channels * bpc
    if step < row_bytes:
        raise ValueError(f"image step {step} B is smaller than one row ({w} px x {channels * bpc} B = {row_bytes} B)")
    buf = np.frombuffer(memoryview(msg.data).cast("B"), dtype=np.uint8)
    if buf.size < step * h:
        raise ValueError(f"image data is {buf.size} B, expected at least step*height = {step}*{h} = {step * h} B")
    rows = buf[: step * h].reshape(h, step)[:, :row_bytes]
    if bpc == 2:
        dt = np.dtype(">u2") if msg.is_bigendian else np.dtype("<u2")
        grey = (np.ascontiguousarray(rows).view(dt).reshape(h, w) >> 8).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    px = rows.reshape(h, w, channels)
    if order == "rgb":
        return px.copy()
    if order == "bgr":
        return np.ascontiguousarray(px[:, :, ::-1])
    if order == "rgba":
        return np.ascontiguousarray(px[:, :, :3])
    if order == "bgra":
        return np.ascontiguousarray(px[:, :, 2::-1])
    # mono
    return np.repeat(px, 3, axis=2)


def rgb_to_image(rgb: np.ndarray, header=None, encoding: str = "rgb8"):
    """Build a ``sensor_msgs/Image`` from an RGB array (for ``hands/overlay``).

    Args:
        rgb: (H, W, 3) uint8, RGB order.
        header: ``std_msgs/Header`` to copy (stamp and frame of the source image), or None.
        encoding: ``"rgb8"`` (default, no copy besides ``tobytes``) or ``"bgr8"``.

    Returns:
        ``sensor_msgs.msg.Image`` with ``step = 3 * W`` (no padding), ``is_bigendian = 0``.

    Raises:
        ValueError: wrong shape / dtype, empty image or another encoding.
    """
    from sensor_msgs.msg import Image

    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 array, got {rgb.shape} {rgb.dtype}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"empty image: {rgb.shape[1]}x{rgb.shape[0]}")
    if encoding == "rgb8":
        px = np.ascontiguousarray(rgb)
    elif encoding == "bgr8":
        px = np.ascontiguousarray(rgb[:, :, ::-1])
    else:
        raise ValueError(f"rgb_to_image: unsupported output encoding '{encoding}' (supported: rgb8, bgr8)")
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(px.shape[0]), int(px.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = 3 * msg.width
    msg.data = px.tobytes()
    return msg
